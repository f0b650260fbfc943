"""One error hierarchy for the engine.

Every error a user can cause derives from :class:`LandprobeError` and carries a message written for a GIS
analyst: it names the layer, field or value at fault and says what to do. The worker turns these into
``error`` events; anything else is a bug and is reported with its traceback.
"""

from __future__ import annotations


class LandprobeError(Exception):
    """Root of all errors the engine raises on purpose."""

    kind = "error"


class InputError(LandprobeError, ValueError):
    """A raster, label layer, field or option the user gave cannot be used as it is."""

    kind = "input"


class ModelFileError(LandprobeError, ValueError):
    """A model file is unreadable, from another version, or does not fit the raster it is applied to."""

    kind = "model"


class OutputError(LandprobeError, OSError):
    """An output cannot be written (folder missing, no permission, disk full)."""

    kind = "output"


class MissingDependencyError(LandprobeError, ImportError):
    """An optional package the chosen option needs is not installed in the engine's environment."""

    kind = "dependency"


class CancelledError(LandprobeError):
    """The user cancelled the job; nothing was written."""

    kind = "cancelled"

    def __init__(self, message: str = "Cancelled by the user; no output was written.") -> None:
        super().__init__(message)
