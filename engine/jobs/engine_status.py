"""The ``ping`` and ``engine_status`` operations: the engine answers with its version, libraries and devices.

``ping`` is the trivial job that measures start-up: it imports nothing beyond the standard library. So does this
module; ``engine_status`` imports torch only when it runs.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from .. import __version__
from ..core.devices import choose_device
from ..core.errors import InputError
from ..core.feedback import Feedback
from ..core.seam import DEVICE_VARIABLE, SCHEDULER_VARIABLE
from ..core.versions import package_versions


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
        default_device = choose_device("auto")  # what "auto" means under the user's device preference
    except (ImportError, InputError) as exc:
        default_device = f"none: {exc}"
    feedback.progress(1.0, "Done")
    return {"python": sys.executable, "python_version": platform.python_version(), "engine_version": __version__,
            "packages": packages, "devices": devices, "torch_threads": torch_threads,
            "default_device": default_device, "device_preference": preferred,
            "weights_cache": os.environ.get("TORCH_HOME") or None,
            "dask_scheduler": os.environ.get(SCHEDULER_VARIABLE, "").strip() or None}
