"""The operations the worker and the command line call, by name, with plain-data parameters and results."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .core.errors import InputError
from .core.feedback import Feedback

#: Every operation, by name: a function, or ``"module:function"`` imported only when the job runs, so that a
#: trivial job does not pay for numpy, rasterio or scikit-learn. Each operation's module in ``jobs/`` is named after
#: the plugin's algorithm file that calls it (``plugin/algorithms/<name>.py``). The command line is made from this
#: table and the functions' signatures and docstrings (:mod:`engine.cli`).
OPERATIONS: dict[str, Callable[..., Any] | str] = {
    "ping": "jobs.engine_status:ping",
    "engine_status": "jobs.engine_status:engine_status",
    "train_classifier": "jobs.train_classifier:train_classifier",
    "train_regressor": "jobs.train_regressor:train_regressor",
    "suggest_labels": "jobs.suggest_labels:suggest_labels",
    "classify_raster": "jobs.classify_raster:classify_raster",
    "map_region": "jobs.map_region:map_region",
    "cluster": "jobs.cluster:cluster",
    "similarity": "jobs.similarity:similarity",
    "change": "jobs.change:change",
    "assess_accuracy": "jobs.assess_accuracy:assess_accuracy",
    "extract_embeddings": "jobs.extract_embeddings:extract_embeddings",
    "finetune": "jobs.finetune:finetune",
    "export_onnx": "jobs.export_onnx:export_onnx",
    "label_polygons": "jobs.hyperspectral:label_raster_to_polygons",
    "import_mat": "jobs.hyperspectral:import_mat",
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
