"""The engine worker: runs one job and speaks JSON lines.

The plugin starts ``<engine python> -m engine worker --stdin-control`` and writes the job as one JSON line on
standard input::

    {"protocol": 1, "operation": "classify_raster", "params": {"raster": "...", "model": "...", "output": "..."}}

The worker answers on standard output with one JSON object per line, each with an ``event`` key:

- ``{"event": "started", "pid": 123, "protocol": 1, "version": "0.1.0", "workspace": "/tmp/landprobe-jobs-1000/123-x"}``
  (the job's temporary folder, :mod:`engine.core.workspace`: removed at exit, by the next job, or by the plugin when it
  has to kill the engine)
- ``{"event": "progress", "value": 0.42, "message": "Classifying window 3 of 8"}``
- ``{"event": "log", "level": "info" | "warning" | "debug", "text": "..."}``
- ``{"event": "result", "outputs": {...}}`` — the last line of a job that succeeded (exit code 0);
- ``{"event": "error", "kind": "input" | "model" | "output" | "dependency" | "memory" | "cancelled" | "internal",
  "message": "...", "traceback": "..."}`` — the last line of a job that failed (exit code 1; 3 when cancelled).

The protocol version, the command, the event names, the error kinds, the exit codes and the temporary names are
written once, in :mod:`engine.core.seam`, which the plugin reads too.

With ``--stdin-control``, a later line ``cancel`` on standard input, the end of standard input (the parent went
away) or SIGTERM cancel the job: it stops at its next check and removes what it had started writing.
Anything a library prints is sent to standard error, so standard output carries nothing but events. Log records
of other packages than the engine at warning level or above, and warnings (:func:`logging.captureWarnings`), become
``debug`` events (their information lines are dropped); during
a fine-tune they go to the run's debug log file instead, named once in an ``info`` event (:mod:`engine.deep.logs`).

A distributed fine-tune (DDP) started from the worker makes Lightning run this command again once per extra
process; those processes read the job from the ``LANDPROBE_JOB`` environment variable and write their events to
standard error, so the plugin still reads exactly one job's events.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import traceback
from typing import IO, Any

from . import __version__
from .core.errors import CancelledError, InputError, LandprobeError, user_fault
from .core.feedback import ThrottledFeedback
from .core.seam import CANCEL_LINE, JOB_VARIABLE, PROTOCOL, STDIN_CONTROL, THREADS_VARIABLE, ErrorKind, Event, ExitCode
from .core.seam import Level as LogLevel
from .core.workspace import job_workspace

_PACKAGE = __name__.rpartition(".")[0]


class JsonLinesFeedback(ThrottledFeedback):
    """Writes progress as ``progress`` events on an event stream."""

    def __init__(self, stream: IO[str]) -> None:
        """Write events to ``stream``."""
        super().__init__()
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        """Write one event as a JSON line and flush it."""
        line = json.dumps(event, default=str)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def emit_progress(self, fraction: float, message: str | None) -> None:
        """Write a ``progress`` event."""
        self.emit({"event": Event.PROGRESS, "value": round(fraction, 4), "message": message})


class _EventLogHandler(logging.Handler):
    """Turns log records into ``log`` events; other packages' records are demoted to debug."""

    def __init__(self, feedback: JsonLinesFeedback) -> None:
        super().__init__()
        self._feedback = feedback

    def emit(self, record: logging.LogRecord) -> None:
        ours = record.name == _PACKAGE or record.name.startswith(_PACKAGE + ".")
        if not ours and record.levelno < logging.WARNING:  # a library's news ("generated new fontManager"): not ours
            return
        level = record.levelname.lower() if ours else LogLevel.DEBUG
        if level == "critical":
            level = LogLevel.ERROR
        try:
            text = record.getMessage()
        except Exception:  # a malformed log call must not kill the job
            text = str(record.msg)
        self._feedback.emit({"event": Event.LOG, "level": level, "text": text})


def _watch_stdin(feedback: JsonLinesFeedback) -> None:
    """Cancel on a ``cancel`` line or at the end of standard input."""
    for line in sys.stdin:
        if line.strip().lower() == CANCEL_LINE:
            break
    feedback.cancel()


def _read_job(text: str) -> tuple[str, dict[str, Any]]:
    """Parse and check a job line."""
    try:
        job = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"The job is not valid JSON: {exc}.") from exc
    if not isinstance(job, dict) or not isinstance(job.get("operation"), str):
        raise InputError('The job must be a JSON object with an "operation" name and a "params" object.')
    if job.get("protocol", PROTOCOL) != PROTOCOL:
        raise InputError(
            f"The plugin speaks job protocol {job.get('protocol')} but this engine speaks {PROTOCOL}: "
            "update the plugin and the engine together."
        )
    params = job.get("params") or {}
    if not isinstance(params, dict):
        raise InputError('The job\'s "params" must be a JSON object.')
    return job["operation"], params


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m engine worker``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    threads = os.environ.get(THREADS_VARIABLE, "").strip()
    if threads.isdigit() and int(threads) > 0:  # the plugin's "Threads" setting, read by torch and BLAS at import
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[name] = threads
    # A process that Lightning started for a distributed job (it runs this command again with LOCAL_RANK set):
    # it takes the job from the environment and reports on standard error, leaving the event stream to rank 0.
    helper = os.environ.get(JOB_VARIABLE) is not None and os.environ.get("LOCAL_RANK", "0") != "0"
    stdin_control = STDIN_CONTROL in argv and not helper
    # Keep the real stdout for events; send everything else that writes to fd 1 to stderr.
    events = os.fdopen(os.dup(2 if helper else 1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    feedback = JsonLinesFeedback(events)
    handler = _EventLogHandler(feedback)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    signal.signal(signal.SIGTERM, lambda *_: feedback.cancel())
    with contextlib.ExitStack() as stack:
        # the processes of a distributed job share the first one's workspace (TMPDIR) instead of making their own
        workspace = None if helper else stack.enter_context(job_workspace())
        feedback.emit({"event": Event.STARTED, "pid": os.getpid(), "protocol": PROTOCOL, "version": __version__,
                       "workspace": str(workspace) if workspace else None})
        return _run(helper, stdin_control, feedback, root)


def _run(helper: bool, stdin_control: bool, feedback: JsonLinesFeedback, root: logging.Logger) -> int:
    """Read the job, run it and emit its result or its error; returns the exit code."""
    try:
        line = os.environ[JOB_VARIABLE] if helper else sys.stdin.readline()
        os.environ[JOB_VARIABLE] = line  # for the processes of a distributed job
        operation, params = _read_job(line)
        if params.pop("debug", False):
            root.setLevel(logging.DEBUG)
        if stdin_control:
            threading.Thread(target=_watch_stdin, args=(feedback,), daemon=True).start()
        # Lazy: keeps a trivial job's start-up light.
        from .api import call_operation

        outputs = call_operation(operation, params, feedback)
    except LandprobeError as exc:
        feedback.emit({"event": Event.ERROR, "kind": exc.kind, "message": str(exc)})
        return ExitCode.CANCELLED if isinstance(exc, CancelledError) else ExitCode.ERROR
    except MemoryError:
        feedback.emit({
            "event": Event.ERROR,
            "kind": ErrorKind.MEMORY,
            "message": "The engine ran out of memory. Close other programs or process a smaller extent.",
        })
        return ExitCode.ERROR
    except Exception as exc:
        fault = user_fault(exc)
        if fault is not None:
            logging.getLogger(__name__).debug("%s", traceback.format_exc())
            feedback.emit({"event": Event.ERROR, "kind": fault.kind, "message": str(fault)})
            return ExitCode.ERROR
        feedback.emit({
            "event": Event.ERROR,
            "kind": ErrorKind.INTERNAL,
            "message": f"Unexpected engine error: {type(exc).__name__}: {exc}. "
            "Please report it with the log at the Landprobe issue tracker.",
            "traceback": traceback.format_exc(),
        })
        return ExitCode.ERROR
    feedback.emit({"event": Event.RESULT, "outputs": outputs})
    return ExitCode.OK
