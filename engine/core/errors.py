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


#: Packages of the engine's own environment: missing one means a broken or wrong engine Python, not a bug.
ENGINE_PACKAGES = ("rasterio", "numpy", "geopandas", "shapely", "pyproj", "sklearn", "xgboost", "torch", "torchvision",
                   "torchgeo", "lightning", "safetensors", "pyogrio", "scipy", "dask", "distributed", "timm")


def user_fault(exc: BaseException) -> LandprobeError | None:
    """The error a user can act on behind a library's exception, or ``None`` when it is a genuine bug.

    Covers an engine Python without the engine's packages, a full disk, a refused write and a raster that fails while
    it is read (truncated, damaged, or a VRT whose source file is missing); each becomes one sentence that says what to
    do. The raster readers name the file themselves (:func:`engine.io.rasters.read_block`); this is the net below them.
    """
    # Lazy: keeps a trivial job's start-up light.
    import errno

    # Lazy: keeps a trivial job's start-up light.
    import sys

    text = str(exc)
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in ENGINE_PACKAGES:
        return MissingDependencyError(
            f"The engine's Python ({sys.executable}) lacks the package '{exc.name}': it is not the engine's "
            "environment, or that environment is incomplete. Run 'Install engine' in the Processing toolbox (or "
            "'make setup'), or set the plugin's engine Python to the environment it created.")
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in text:
        where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
        return OutputError(f"The disk is full{where}: free some space, or write the outputs to another disk.")
    if isinstance(exc, PermissionError):
        return OutputError(f"Permission denied on {exc.filename or 'a file'}: check that you may read it (an input) "
                           "or write there (an output: choose a folder you can write to), and that no other program "
                           "holds it.")
    if type(exc).__name__ == "RasterioIOError":
        if "Write failed" in text or ("write" in text.lower() and "read" not in text.lower()):
            return OutputError(f"Writing a raster failed ({text}): the disk may be full or the folder not "
                               "writable. Free some space or choose another output folder.")
        return InputError(f"A raster could not be read ({text}): it may be truncated or damaged, or a file it "
                          "refers to (a VRT's source) may be missing. Check the file, or export it again.")
    return None
