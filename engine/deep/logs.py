"""The fine-tune's debug log: library messages go to a file in the run folder, not to the user's log.

Lightning, torch, torchgeo and timm talk a lot while a network trains: the accelerators found ("GPU available:
False, used: False"), tips for their cloud products, deprecation warnings naming files in site-packages. None of it
is for the analyst reading QGIS's Processing log, but all of it may matter to whoever debugs a run. While
:func:`library_log` is open, every record that is not the engine's own (``engine.*``) and every warning go only to a
file, ``landprobe-debug.log`` in the run folder; the engine's records go to both, so the file reads in order. The
log names the file once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

logger = logging.getLogger(__name__)

DEBUG_LOG = "landprobe-debug.log"
#: loggers that come with their own console handler (Lightning prints "INFO: ..." on standard error besides
#: passing the record on): while the debug log is open, their records reach only the root logger's handlers
SELF_PRINTING = ("lightning", "lightning.pytorch", "lightning.fabric")
_OURS = __name__.split(".")[0]
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def is_ours(record: logging.LogRecord) -> bool:
    """Whether a record comes from the engine's own loggers (``engine`` and ``engine.*``)."""
    return record.name == _OURS or record.name.startswith(_OURS + ".")


class _OnlyOurs(logging.Filter):
    """Lets through the engine's records only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return is_ours(record)


@contextlib.contextmanager
def library_log(path: str | Path) -> Iterator[Path]:
    """Send library messages and warnings to the file ``path`` (appended to) instead of the other log handlers.

    The file gets every record that reaches the root logger (the engine's too, for context) and the warnings;
    the root logger's other handlers (the worker's events, a console) get the engine's records only. Everything
    is restored on exit.
    """
    # Lazy: the torch stack takes seconds to import.
    import lightning  # noqa: F401  # its loggers and their console handler exist from here on

    path = Path(path)
    root = logging.getLogger()
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    only_ours = _OnlyOurs()
    others = list(root.handlers)
    for other in others:
        other.addFilter(only_ours)
    root.addHandler(handler)
    captured = _warnings_go_to_logging()
    logging.captureWarnings(True)
    try:
        with _self_printing_quiet():
            handler.stream.write(f"---- Landprobe fine-tune, {datetime.now().isoformat(timespec='seconds')}, "
                                 f"process {os.getpid()} ----\n")
            logger.info("Library messages: %s", path)
            yield path
    finally:
        root.removeHandler(handler)
        for other in others:
            other.removeFilter(only_ours)
        handler.close()
        if not captured:
            logging.captureWarnings(False)


def _warnings_go_to_logging() -> bool:
    """Whether :func:`logging.captureWarnings` is on."""
    return getattr(warnings.showwarning, "__module__", None) == logging.__name__


@contextlib.contextmanager
def _self_printing_quiet() -> Iterator[None]:
    """Detach the console handlers of :data:`SELF_PRINTING` and let their records reach the root logger."""
    saved = []
    for name in SELF_PRINTING:
        own = logging.getLogger(name)
        saved.append((own, list(own.handlers), own.propagate))
        for h in list(own.handlers):
            own.removeHandler(h)
        own.propagate = True
    try:
        yield
    finally:
        for own, handlers, propagate in saved:
            for h in handlers:
                own.addHandler(h)
            own.propagate = propagate
