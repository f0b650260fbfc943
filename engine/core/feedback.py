"""The engine's small feedback protocol: progress, cancel, and a view of a sub-range of the work.

Engine code reports progress with :meth:`Feedback.progress` and calls :meth:`Feedback.check_cancel` once per
tile, batch or epoch. Messages for the user go through :mod:`logging` (``logging.getLogger(__name__)``); the
worker maps both to JSON event lines and the command line prints them.
"""

from __future__ import annotations

import threading
import time

from .errors import CancelledError


class Feedback:
    """Progress and cancel for one job. The base class reports nothing; subclasses decide where it goes."""

    def __init__(self) -> None:
        """Start with no progress reported and not cancelled."""
        self._cancel = threading.Event()

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report that ``fraction`` (0..1) of the job is done, with an optional message of what is going on."""
        self._report(min(max(float(fraction), 0.0), 1.0), message)

    def _report(self, fraction: float, message: str | None) -> None:
        """Deliver a progress report; override in subclasses."""

    def cancel(self) -> None:
        """Ask the job to stop at the next check."""
        self._cancel.set()

    def is_canceled(self) -> bool:
        """Whether the job was asked to stop."""
        return self._cancel.is_set()

    def check_cancel(self) -> None:
        """Raise :class:`CancelledError` if the job was asked to stop.

        Raises:
            CancelledError: when :meth:`cancel` was called.

        """
        if self._cancel.is_set():
            raise CancelledError()

    def stage(self, start: float, end: float) -> Feedback:
        """A feedback whose 0..1 maps onto ``start..end`` of this one, sharing its cancel state."""
        return _StageFeedback(self, start, end)


class _StageFeedback(Feedback):
    """A sub-range of a parent feedback."""

    def __init__(self, parent: Feedback, start: float, end: float) -> None:
        super().__init__()
        self._parent = parent
        self._start = start
        self._span = end - start
        self._cancel = parent._cancel

    def _report(self, fraction: float, message: str | None) -> None:
        self._parent.progress(self._start + self._span * fraction, message)


class ThrottledFeedback(Feedback):
    """Base for feedbacks that write somewhere: drops reports closer than ``interval`` seconds apart."""

    def __init__(self, interval: float = 0.2) -> None:
        """Report at most every ``interval`` seconds, always when the message changes or the job ends."""
        super().__init__()
        self._interval = interval
        self._last_time = 0.0
        self._last_message: str | None = None

    def _report(self, fraction: float, message: str | None) -> None:
        now = time.monotonic()
        changed = message is not None and message != self._last_message
        if not changed and fraction < 1.0 and now - self._last_time < self._interval:
            return
        self._last_time = now
        if message is not None:
            self._last_message = message
        self.emit_progress(fraction, self._last_message)

    def emit_progress(self, fraction: float, message: str | None) -> None:
        """Write one progress report; override in subclasses."""
