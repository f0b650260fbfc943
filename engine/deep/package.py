"""Deep model packages: the same ``.lpmodel`` zip as probes, with the weights as safetensors.

Layout::

    manifest.json         format, "method": "deep", the network spec (task, backbone, bands, chip...), the bands
                          read and their normalisation, classes, validation figures and training history
    weights.safetensors   the trained network's state dict (safetensors: plain tensors, no code)

Loading rebuilds the architecture from the manifest and loads the tensors strictly.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import ModelFileError
from ..probes.model_file import read_manifest, read_member, write_model_zip
from .networks import NetworkSpec, network_skeleton

if TYPE_CHECKING:
    import torch

METHOD = "deep"
WEIGHTS = "weights.safetensors"


@dataclass
class DeepModel:
    """A loaded deep model: manifest, network in eval mode, bands read (1-based) and their normalisation."""

    manifest: dict[str, Any]
    spec: NetworkSpec
    network: torch.nn.Module
    bands: list[int]
    mean: np.ndarray
    std: np.ndarray


def is_deep(manifest: dict[str, Any]) -> bool:
    """Whether a manifest is a deep model's."""
    return manifest.get("method") == METHOD


def save_deep_model(path: str | Path, manifest: dict[str, Any], network: torch.nn.Module) -> Path:
    """Write ``manifest`` and ``network``'s weights to ``path`` atomically."""
    # Lazy: only deep model files need it.
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    return write_model_zip(path, {**manifest, "method": METHOD}, {WEIGHTS: save(state)})


def load_deep_model(path: str | Path, device: str = "cpu") -> DeepModel:
    """Load a deep model package; never executes code from the file.

    Raises:
        ModelFileError: when the file is not a deep model or its weights do not fit the architecture.

    """
    # Lazy: only deep model files need it.
    from safetensors import SafetensorError

    # Lazy: only deep model files need it.
    from safetensors.torch import load

    manifest = read_manifest(path)
    if not is_deep(manifest):
        raise ModelFileError(f"{path} is a probe model, not a deep model.")
    try:
        with zipfile.ZipFile(path) as zf:
            data = read_member(zf, WEIGHTS, manifest, path)
        state = load(data)
    except (KeyError, OSError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise ModelFileError(f"Model file {path} is damaged ({exc}). Train the model again, or use the original "
                             "file.") from exc
    except SafetensorError as exc:  # a header that lies about its tensors
        raise ModelFileError(f"Model file {path} is damaged: its weights do not match their own header ({exc}). "
                             "Train the model again, or use the original file.") from exc
    spec = NetworkSpec.from_dict(manifest["network"])
    network = network_skeleton(spec)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"The weights in {path} do not fit its {spec.task} {spec.backbone} network: {exc}.") \
            from exc
    network.eval().to(device)
    inputs = manifest["input"]
    return DeepModel(manifest, spec, network, [int(b) for b in inputs["bands_read"]],
                     np.asarray(inputs["mean"], dtype="float64"), np.asarray(inputs["std"], dtype="float64"))
