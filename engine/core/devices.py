"""The compute device of encoders and deep models: the GPU when asked for (or found by ``auto``), else the CPU."""

from __future__ import annotations

from .errors import InputError


def choose_device(device: str = "auto") -> str:
    """``cuda`` when asked for or when ``auto`` finds a GPU, else ``cpu``; asking for an absent GPU is an error.

    ``auto`` follows the user's preference in ``LANDPROBE_DEVICE`` (the plugin's "Device" setting) when it is set.
    """
    # Lazy: keeps a trivial job's start-up light.
    import os

    # Lazy: keeps a trivial job's start-up light.
    import torch

    if device == "auto":
        device = os.environ.get("LANDPROBE_DEVICE", "").strip().lower() or "auto"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("A GPU was asked for but torch sees none; choose the CPU or 'auto'.")
    return device
