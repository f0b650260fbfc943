"""The operations the worker and the command line call, by name, with plain-data parameters and results."""

from __future__ import annotations

import dataclasses
import inspect
import os
import platform
import sys
from collections.abc import Callable
from typing import Any

from . import __version__
from .errors import InputError
from .feedback import Feedback


def ping(feedback: Feedback | None = None) -> dict[str, Any]:
    """A trivial job: answers at once with the engine's version and Python (measures start-up)."""
    return {"pong": True, "engine_version": __version__, "python": sys.executable}


def engine_status(feedback: Feedback | None = None) -> dict[str, Any]:
    """The engine's Python, the versions of its main libraries and the compute devices it can use."""
    from importlib import metadata

    feedback = feedback or Feedback()
    packages: dict[str, str | None] = {}
    for name in ("torch", "torchvision", "torchgeo", "lightning", "scikit-learn", "xgboost-cpu", "rasterio",
                 "geopandas", "numpy"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    feedback.progress(0.3, "Looking for compute devices")
    devices: list[dict[str, Any]] = [{"type": "cpu", "name": platform.processor() or platform.machine(),
                                      "cores": os.cpu_count()}]
    try:
        import torch

        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append({"type": "cuda", "index": i, "name": props.name,
                            "memory_gb": round(props.total_memory / 2**30, 1)})
        torch_threads = torch.get_num_threads()
    except ImportError:
        torch_threads = None
    feedback.progress(1.0, "Done")
    return {"python": sys.executable, "python_version": platform.python_version(), "engine_version": __version__,
            "packages": packages, "devices": devices, "torch_threads": torch_threads,
            "default_device": "cuda" if len(devices) > 1 else "cpu"}


def train_classifier(**kwargs: Any) -> Any:
    """See :func:`engine.training.train_classifier`."""
    from .training import train_classifier as run

    return run(**kwargs)


def classify_raster(**kwargs: Any) -> Any:
    """See :func:`engine.predict.classify_raster`."""
    from .predict import classify_raster as run

    return run(**kwargs)


def assess_accuracy(**kwargs: Any) -> Any:
    """See :func:`engine.accuracy.assess_accuracy`."""
    from .accuracy import assess_accuracy as run

    return run(**kwargs)


OPERATIONS: dict[str, Callable[..., Any]] = {
    "ping": ping,
    "engine_status": engine_status,
    "train_classifier": train_classifier,
    "classify_raster": classify_raster,
    "assess_accuracy": assess_accuracy,
}

_TARGETS = {
    "train_classifier": ("training", "train_classifier"),
    "classify_raster": ("predict", "classify_raster"),
    "assess_accuracy": ("accuracy", "assess_accuracy"),
}


def _signature(operation: str) -> inspect.Signature:
    """The signature of the function that really implements ``operation``."""
    if operation in _TARGETS:
        import importlib

        module, name = _TARGETS[operation]
        return inspect.signature(getattr(importlib.import_module(f"{__package__}.{module}"), name))
    return inspect.signature(OPERATIONS[operation])


def call_operation(operation: str, params: dict[str, Any], feedback: Feedback) -> dict[str, Any]:
    """Check ``params`` against the operation's signature, run it and return its result as plain data.

    Raises:
        InputError: for an unknown operation, an unknown parameter or a missing required one.

    """
    if operation not in OPERATIONS:
        raise InputError(f"Unknown operation {operation!r}; the engine knows: {', '.join(sorted(OPERATIONS))}.")
    signature = _signature(operation)
    accepted = {n for n in signature.parameters if n != "feedback"}
    unknown = set(params) - accepted
    if unknown:
        raise InputError(f"Operation {operation} has no parameter {', '.join(sorted(unknown))}; "
                         f"it takes: {', '.join(sorted(accepted))}.")
    missing = [n for n, p in signature.parameters.items()
               if p.default is inspect.Parameter.empty and n != "feedback" and n not in params]
    if missing:
        raise InputError(f"Operation {operation} needs {', '.join(missing)}.")
    result = OPERATIONS[operation](**params, feedback=feedback)
    return dataclasses.asdict(result) if dataclasses.is_dataclass(result) else dict(result)
