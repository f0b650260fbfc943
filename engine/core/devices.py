"""Compute resources: the device of encoders and deep models, and the CPU threads a job may use.

Both follow the user's settings, which the plugin passes as environment variables named in :mod:`engine.core.seam`
(``LANDPROBE_DEVICE``, the "Device" setting; ``LANDPROBE_THREADS``, the "CPU threads" setting).
"""

from __future__ import annotations

import logging
import os

from .errors import InputError
from .seam import DEVICE_VARIABLE, THREADS_VARIABLE

logger = logging.getLogger(__name__)


def choose_device(device: str = "auto") -> str:
    """``cuda`` when asked for or when ``auto`` finds a GPU, else ``cpu``; asking for an absent GPU is an error.

    ``auto`` follows the user's preference in ``LANDPROBE_DEVICE`` (the plugin's "Device" setting) when it is set.
    """
    # Lazy: keeps a trivial job's start-up light.
    import torch

    if device == "auto":
        device = os.environ.get(DEVICE_VARIABLE, "").strip().lower() or "auto"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("A GPU was asked for but torch sees none; choose the CPU or 'auto'.")
    return device


def cpu_threads() -> int:
    """The CPU threads a job may use: ``LANDPROBE_THREADS`` when it is a positive whole number, else every core."""
    cores = os.cpu_count() or 1
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    if not value:
        return cores
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        logger.warning("%s=%r is not a positive whole number of threads: using all %d cores.", THREADS_VARIABLE,
                       value, cores)
        return cores
    return threads
