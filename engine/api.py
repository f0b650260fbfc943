"""The operations the worker and the command line call, by name, with plain-data parameters and results."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__
from .core.errors import InputError
from .core.feedback import Feedback
from .core.seam import DEVICE_VARIABLE
from .core.versions import package_versions


def ping(feedback: Feedback | None = None) -> dict[str, Any]:
    """A trivial job: answers at once with the engine's version and Python (measures start-up)."""
    return {"pong": True, "engine_version": __version__, "python": sys.executable}


def engine_status(feedback: Feedback | None = None) -> dict[str, Any]:
    """The engine's Python, the versions of its main libraries and the compute devices it can use."""
    feedback = feedback or Feedback()
    packages = package_versions(("torch", "torchvision", "torchgeo", "lightning", "scikit-learn", "xgboost-cpu",
                                 "llvmlite", "rasterio", "geopandas", "numpy"))
    feedback.progress(0.3, "Looking for compute devices")
    devices: list[dict[str, Any]] = [{"type": "cpu", "name": platform.processor() or platform.machine(),
                                      "cores": os.cpu_count()}]
    try:
        # Lazy: keeps a trivial job's start-up light.
        import torch

        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append({"type": "cuda", "index": i, "name": props.name,
                            "memory_gb": round(props.total_memory / 2**30, 1)})
        torch_threads = torch.get_num_threads()
    except ImportError:
        torch_threads = None
    preferred = os.environ.get(DEVICE_VARIABLE, "").strip().lower() or "auto"
    try:
        # Lazy: keeps a trivial job's start-up light.
        from .core.devices import choose_device

        default_device = choose_device("auto")  # what "auto" means under the user's device preference
    except (ImportError, InputError) as exc:
        default_device = f"none: {exc}"
    feedback.progress(1.0, "Done")
    return {"python": sys.executable, "python_version": platform.python_version(), "engine_version": __version__,
            "packages": packages, "devices": devices, "torch_threads": torch_threads,
            "default_device": default_device, "device_preference": preferred,
            "weights_cache": os.environ.get("TORCH_HOME") or None}


#: Every operation, by name: a function here, or ``"module:function"`` imported only when the job runs, so that a
#: trivial job does not pay for numpy, rasterio or scikit-learn. The command line is made from this table and the
#: functions' signatures and docstrings (:mod:`engine.cli`).
OPERATIONS: dict[str, Callable[..., Any] | str] = {
    "ping": ping,
    "engine_status": engine_status,
    "train_classifier": "jobs.train_classifier:train_classifier",
    "classify_raster": "jobs.classify_raster:classify_raster",
    "assess_accuracy": "jobs.assess_accuracy:assess_accuracy",
    "extract_embeddings": "embeddings.encode:extract_embeddings",
    "finetune": "deep.finetune:finetune",
    "export_onnx": "deep.onnx_export:export_onnx",
    "label_polygons": "jobs.label_polygons:label_raster_to_polygons",
    "import_mat": "io.hsi:import_mat",
}


def resolve_operation(operation: str) -> Callable[..., Any]:
    """The function that implements ``operation``.

    Raises:
        InputError: for an unknown operation; the message lists the known ones.

    """
    target = OPERATIONS.get(operation)
    if target is None:
        raise InputError(f"Unknown operation {operation!r}; the engine knows: {', '.join(sorted(OPERATIONS))}.")
    if callable(target):
        return target
    # Lazy: keeps a trivial job's start-up light.
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


def operation_doc(operation: str) -> str:
    """The docstring of the function behind ``operation``, read from its source without importing its module.

    The command line's ``--help`` lists every operation with the first paragraph of this: reading the source keeps
    the listing from importing every job module (each is light, but they add up). Falls back to importing the
    function when its source cannot be read (an installed package without sources).

    Raises:
        InputError: for an unknown operation.

    """
    target = OPERATIONS.get(operation)
    if isinstance(target, str):
        module, _, name = target.partition(":")
        path = Path(__file__).parent.joinpath(*module.split(".")).with_suffix(".py")
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            tree = ast.Module(body=[], type_ignores=[])
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                return ast.get_docstring(node) or ""
    return inspect.getdoc(resolve_operation(operation)) or ""


def call_operation(operation: str, params: dict[str, Any], feedback: Feedback) -> dict[str, Any]:
    """Check ``params`` against the operation's signature, run it and return its result as plain data.

    Raises:
        InputError: for an unknown operation, an unknown parameter or a missing required one.

    """
    function = resolve_operation(operation)
    signature = inspect.signature(function)
    accepted = {n for n in signature.parameters if n != "feedback"}
    unknown = set(params) - accepted
    if unknown:
        raise InputError(f"Operation {operation} has no parameter {', '.join(sorted(unknown))}; "
                         f"it takes: {', '.join(sorted(accepted))}.")
    missing = [n for n, p in signature.parameters.items()
               if p.default is inspect.Parameter.empty and n != "feedback" and n not in params]
    if missing:
        raise InputError(f"Operation {operation} needs {', '.join(missing)}.")
    result = function(**params, feedback=feedback)
    return dataclasses.asdict(result) if dataclasses.is_dataclass(result) else dict(result)
