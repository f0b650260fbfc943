"""The networks a user can fine-tune, for three tasks, described by a :class:`NetworkSpec` stored in the model.

- ``patch``: a chip of ``chip`` x ``chip`` px around a pixel gives that pixel's class. The default backbone is a
  small CNN trained from scratch (:mod:`engine.deep.small_cnn`), which suits the few hundred labelled pixels of a
  typical project; the others are encoders of :mod:`engine.embeddings.encoders` (ResNet-18/50 and ViT-S/16 from torchgeo
  weights, a user's checkpoint, from scratch, or frozen random convolutional features). A linear head follows.
- ``segmentation``: a U-Net (segmentation_models_pytorch) whose ResNet encoder can start from torchgeo weights;
  it maps a tile to a class score per pixel.
- ``hyperspectral``: the spectral-spatial attention network of :mod:`engine.deep.ssan` on a chip per pixel.

:func:`build_network` makes a network for training (loading starting weights); :func:`network_skeleton` makes the
same architecture with unset weights, into which a model package loads its trained state.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import InputError
from ..embeddings.encoders import (
    EncoderRequest,
    build_encoder,
    download_weights,
    encoder_skeleton,
    get_encoder,
    load_into,
    load_state_dict,
    map_bands,
    weights_enum,
    weights_normalisation,
)

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

TASKS = ("patch", "segmentation", "hyperspectral")
#: Backbones per task; for ``patch`` they are encoder names of :data:`engine.embeddings.encoders.ENCODERS`.
BACKBONES: dict[str, tuple[str, ...]] = {
    "patch": ("small_cnn", "resnet18", "resnet50", "vit_small16", "checkpoint", "rcf_gaussian"),
    "segmentation": ("resnet18", "resnet34"),
    "hyperspectral": ("ssan",),
}
DEFAULT_CHIP = {"patch": 32, "segmentation": 64, "hyperspectral": 11}
SMALL_CNN_CHIP = 15


def default_chip(task: str, backbone: str) -> int:
    """The chip (or tile) size used when none is given."""
    return SMALL_CNN_CHIP if backbone == "small_cnn" else DEFAULT_CHIP[task]


@dataclass
class NetworkSpec:
    """Everything needed to rebuild a trained network's architecture (stored in the model's manifest)."""

    task: str
    backbone: str
    n_bands: int
    n_classes: int
    chip: int
    dim: int = 0  # the backbone's feature size (patch task)
    architecture: str | None = None  # timm name of a checkpoint backbone
    options: dict[str, Any] = field(default_factory=dict)  # task-specific (e.g. n_pca for hyperspectral)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the manifest."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkSpec:
        """The spec a manifest stored."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class StartingPoint:
    """What the network starts from: torchgeo weights by name, a weights file, or nothing (random init)."""

    weights: str | None = None
    weights_file: str | None = None
    band_map: str | None = None
    architecture: str | None = None
    seed: int = 0


def check_task(task: str, backbone: str | None) -> str:
    """The backbone to use for ``task`` (its first when ``backbone`` is empty).

    Raises:
        InputError: for an unknown task or a backbone the task does not offer.

    """
    if task not in TASKS:
        raise InputError(f"Unknown task {task!r}; choose one of: {', '.join(TASKS)}.")
    backbone = backbone or BACKBONES[task][0]
    if backbone not in BACKBONES[task]:
        raise InputError(f"Task {task} has no backbone {backbone!r}; choose one of: {', '.join(BACKBONES[task])}.")
    return backbone


def check_chip(task: str, backbone: str, chip: int) -> None:
    """Refuse a chip or tile size the network cannot take, saying which sizes it can.

    Raises:
        InputError: for a size out of range.

    """
    if task == "patch" and backbone == "small_cnn":
        if chip < 3:
            raise InputError(f"The small CNN needs chips of at least 3 px (got {chip}).")
    elif task == "patch":
        spec = get_encoder(backbone)
        if chip < spec.min_patch:
            raise InputError(f"{spec.label} needs chips of at least {spec.min_patch} px (got {chip}).")
        if spec.architecture.startswith("vit") and chip % 16:
            raise InputError(f"{spec.label} needs a chip size that is a multiple of 16 (got {chip}).")
    elif task == "segmentation" and (chip < 32 or chip % 32):
        raise InputError(f"The U-Net needs tiles whose size is a multiple of 32 px, such as 64 or 128 (got {chip}).")
    elif task == "hyperspectral" and chip < 3:
        raise InputError(f"The hyperspectral network needs chips of at least 3 px (got {chip}).")


def patch_classifier(backbone: torch.nn.Module, dim: int, n_classes: int) -> torch.nn.Module:
    """``backbone`` (B, C, p, p) -> (B, dim), then dropout and a linear layer to class scores.

    Index 0 of the result is the backbone, frozen and unfrozen as a whole.
    """
    # Lazy: the torch stack takes seconds to import.
    import torch

    return torch.nn.Sequential(backbone, torch.nn.Dropout(0.2), torch.nn.Linear(dim, n_classes))


def _unet(backbone: str, n_bands: int, n_classes: int) -> torch.nn.Module:
    # Lazy: the torch stack takes seconds to import.
    import segmentation_models_pytorch as smp

    return smp.Unet(encoder_name=backbone, encoder_weights=None, in_channels=n_bands, classes=n_classes)


def network_skeleton(spec: NetworkSpec) -> torch.nn.Module:
    """The architecture ``spec`` describes, with unset weights."""
    if spec.task == "patch" and spec.backbone == "small_cnn":
        # Lazy: it loads torch: the torch stack takes seconds to import.
        from .small_cnn import SmallCNN

        return patch_classifier(SmallCNN(spec.n_bands), spec.dim, spec.n_classes)
    if spec.task == "patch":
        backbone = encoder_skeleton(spec.backbone, spec.n_bands, spec.dim, spec.architecture)
        return patch_classifier(backbone, spec.dim, spec.n_classes)
    if spec.task == "segmentation":
        return _unet(spec.backbone, spec.n_bands, spec.n_classes)
    # Lazy: it loads torch: the torch stack takes seconds to import.
    from .ssan import SpectralSpatialAttentionNet

    return SpectralSpatialAttentionNet(spec.n_bands, spec.n_classes, window=spec.chip,
                                       n_pca=int(spec.options.get("n_pca", 30)))


def backbone_of(spec: NetworkSpec, module: torch.nn.Module) -> torch.nn.Module | None:
    """The part of the network that a frozen-backbone phase freezes (``None`` when the task has none)."""
    if spec.task == "patch":
        return module[0]
    if spec.task == "segmentation":
        return module.encoder
    return None


@dataclass
class BuiltNetwork:
    """A network ready to train, the bands it reads (1-based), their normalisation, and what it started from."""

    spec: NetworkSpec
    module: torch.nn.Module
    bands: list[int]
    mean: np.ndarray
    std: np.ndarray
    metadata: dict[str, Any]


def build_network(task: str, backbone: str, band_names: list[str], band_stats: tuple[np.ndarray, np.ndarray],
                  n_classes: int, chip: int, start: StartingPoint, sample_patches: Any = None,
                  options: dict[str, Any] | None = None) -> BuiltNetwork:
    """A network for ``task`` on a raster with ``band_names``, starting from ``start``.

    Args:
        task: one of :data:`TASKS`.
        backbone: one of ``BACKBONES[task]``.
        band_names: the raster's band descriptions.
        band_stats: per-band mean and std of the raster (used when the weights bring no normalisation).
        n_classes: number of classes.
        chip: chip (patch, hyperspectral) or tile (segmentation) size in pixels.
        start: starting weights.
        sample_patches: the raster's patch sampler (empirical random features).
        options: task-specific options (``n_pca`` for hyperspectral).

    """
    # Lazy: the torch stack takes seconds to import.
    import torch

    options = dict(options or {})
    torch.manual_seed(start.seed)
    if task == "patch" and backbone == "small_cnn":
        if start.weights or start.weights_file:
            raise InputError("The small CNN is trained from scratch: leave the weights empty.")
        # Lazy: it loads torch: the torch stack takes seconds to import.
        from .small_cnn import SmallCNN

        cnn = SmallCNN(len(band_names))
        spec = NetworkSpec(task, backbone, len(band_names), n_classes, chip, cnn.num_features, options=options)
        mean, std = (np.asarray(v, dtype="float64") for v in band_stats)
        return BuiltNetwork(spec, patch_classifier(cnn, cnn.num_features, n_classes),
                            list(range(1, len(band_names) + 1)), mean, std,
                            {"weights": None, "pretrained": False, "seed": start.seed,
                             "normalisation": "per-band standardisation with the raster's mean and std"})
    if task == "patch":
        request = EncoderRequest(get_encoder(backbone), band_names, band_stats, sample_patches, start.weights,
                                 start.weights_file, start.band_map, start.architecture, seed=start.seed)
        encoder = build_encoder(request)
        module = patch_classifier(encoder.module.train(), encoder.dim, n_classes)
        spec = NetworkSpec(task, backbone, len(encoder.bands), n_classes, chip, encoder.dim, start.architecture,
                           options)
        return BuiltNetwork(spec, module, encoder.bands, encoder.mean, encoder.std, encoder.metadata)
    bands = list(range(1, len(band_names) + 1))
    mean, std = (np.asarray(v, dtype="float64") for v in band_stats)
    metadata: dict[str, Any] = {"weights": None, "pretrained": False, "seed": start.seed,
                                "normalisation": "per-band standardisation with the raster's mean and std"}
    spec = NetworkSpec(task, backbone, len(bands), n_classes, chip, options=options)
    if task == "segmentation":
        state = None
        if start.weights or start.weights_file:
            bands, mean, std, metadata, state = _encoder_start(backbone, band_names, (mean, std), start)
            spec.n_bands = len(bands)
        module = _unet(backbone, len(bands), n_classes)
        if state is not None:
            load_into(module.encoder, state, f"weights {start.weights or start.weights_file}")
        return BuiltNetwork(spec, module, bands, mean, std, metadata)
    if start.weights or start.weights_file:
        raise InputError("The hyperspectral network has no pretrained weights: leave the weights empty.")
    return BuiltNetwork(spec, network_skeleton(spec), bands, mean, std, metadata)


def _encoder_start(backbone: str, band_names: list[str], band_stats: tuple[np.ndarray, np.ndarray],
                   start: StartingPoint) -> tuple[list[int], np.ndarray, np.ndarray, dict[str, Any], dict[str, Any]]:
    """Bands, normalisation, metadata and state dict of the starting weights of a U-Net's ResNet encoder."""
    if start.weights:
        if backbone != "resnet18":
            raise InputError(f"torchgeo weights are offered for the resnet18 U-Net encoder, not {backbone}; use a "
                             "weights file or no weights.")
        weights = weights_enum(get_encoder("resnet18"), start.weights)
        bands = map_bands(band_names, list(weights.meta["bands"]), start.band_map)
        state = load_state_dict(start.weights_file) if start.weights_file else download_weights(weights)
        mean, std = weights_normalisation(weights, len(bands))
        metadata = {"weights": f"ResNet18_Weights.{start.weights}", "pretrained": True, "url": weights.url,
                    "normalisation": "the weights' transforms (torchgeo)"}
    else:
        bands = list(range(1, len(band_names) + 1))
        state = load_state_dict(str(start.weights_file))
        mean, std = band_stats
        metadata = {"weights": str(start.weights_file), "pretrained": True,
                    "normalisation": "per-band standardisation with the raster's mean and std"}
    return bands, np.asarray(mean, dtype="float64"), np.asarray(std, dtype="float64"), metadata, state
