"""Encoders that turn image patches into embedding vectors, in one registry.

Adding an encoder is one :class:`EncoderSpec` entry in :data:`ENCODERS` (and, for a new family, one builder).
Every encoder is built into a :class:`BuiltEncoder`: a torch module mapping normalised patches (B, C, p, p) to
embeddings (B, D), the per-band normalisation, the bands it reads, and metadata recorded in the embedding raster.

- ``rcf_gaussian`` / ``rcf_empirical``: random convolutional features (MOSAIKS, torchgeo's ``RCF``); no weights,
  always available offline. Empirical filters are patches drawn from the user's raster (seeded).
- ``resnet18``, ``resnet50``, ``vit_small16``: torchgeo backbones. With weights (a torchgeo weight name such as
  ``SENTINEL2_ALL_MOCO`` or ``LANDSAT_ETM_SR_MOCO``) the raster's bands are mapped to the bands the weights expect
  and the weights' normalisation is applied. Weights come from a local file (loaded with ``weights_only=True``) or
  are downloaded by torchgeo; without network and file, the error says where to put the file. Without weights
  they are random-initialised (reported as such: not a pretrained result).
- ``checkpoint``: a timm architecture name and a state-dict file of the user's.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import InputError, ModelFileError
from ..core.numbers import band_assignments

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


@dataclass
class BuiltEncoder:
    """A ready encoder: module, normalisation of the raw band values, bands read (1-based), and metadata."""

    module: torch.nn.Module
    dim: int
    bands: list[int]
    mean: np.ndarray
    std: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EncoderSpec:
    """A registry entry: how to build one encoder and what it needs."""

    name: str
    label: str
    family: str  # "rcf", "torchgeo" or "checkpoint"
    architecture: str = ""
    weight_enum: str = ""  # torchgeo enum class name, e.g. "ResNet18_Weights"
    default_patch: int = 32
    min_patch: int = 4


ENCODERS: dict[str, EncoderSpec] = {spec.name: spec for spec in (
    EncoderSpec("rcf_gaussian", "Random convolutional features, Gaussian filters (MOSAIKS)", "rcf", default_patch=16),
    EncoderSpec("rcf_empirical", "Random convolutional features, filters from the raster (MOSAIKS)", "rcf",
                default_patch=16),
    EncoderSpec("resnet18", "ResNet-18 (torchgeo)", "torchgeo", "resnet18", "ResNet18_Weights", 32, 32),
    EncoderSpec("resnet50", "ResNet-50 (torchgeo)", "torchgeo", "resnet50", "ResNet50_Weights", 32, 32),
    EncoderSpec("vit_small16", "ViT-S/16 (torchgeo)", "torchgeo", "vit_small_patch16_224", "ViTSmall16_Weights",
                32, 16),
    EncoderSpec("checkpoint", "Your checkpoint (timm architecture + state dict)", "checkpoint", default_patch=32),
)}


def get_encoder(name: str) -> EncoderSpec:
    """The registry entry ``name``; an error listing the choices otherwise."""
    try:
        return ENCODERS[name]
    except KeyError:
        raise InputError(f"Unknown encoder {name!r}; choose one of: {', '.join(ENCODERS)}.") from None


@dataclass
class EncoderOptions:
    """The encoder asked for with ``features="encoder"`` (see :func:`engine.embeddings.encode.extract_embeddings`)."""

    encoder: str = "rcf_gaussian"
    patch_size: int | None = None
    stride: int | None = None
    weights: str | None = None
    weights_file: str | None = None
    band_map: str | None = None
    architecture: str | None = None
    n_features: int = 128
    seed: int = 0


@dataclass
class EncoderRequest:
    """What the user asked for, plus what the builder may need from the raster."""

    spec: EncoderSpec
    band_names: list[str]
    band_stats: tuple[np.ndarray, np.ndarray]  # per-band mean and std of the raster (a decimated read)
    sample_patches: Callable[[int, int, int], np.ndarray]  # (n, size, seed) -> (n, C, size, size) raw values
    weights: str | None = None
    weights_file: str | None = None
    band_map: str | None = None
    architecture: str | None = None
    features: int = 128
    seed: int = 0


def build_encoder(request: EncoderRequest) -> BuiltEncoder:
    """Build the encoder ``request`` asks for (see the module's notes)."""
    builders = {"rcf": _build_rcf, "torchgeo": _build_torchgeo, "checkpoint": _build_checkpoint}
    return builders[request.spec.family](request)


def _build_rcf(request: EncoderRequest) -> BuiltEncoder:
    # Lazy: the torch stack takes seconds to import.
    from torchgeo.models import RCF

    if request.features < 2 or request.features % 2:
        raise InputError(f"Random convolutional features: the number of features must be even, not "
                         f"{request.features}.")
    mean, std = request.band_stats
    bands = list(range(1, len(request.band_names) + 1))
    dataset = None
    if request.spec.name == "rcf_empirical":
        patches = (request.sample_patches(request.features // 2, 3, request.seed) - mean[:, None, None])
        dataset = _PatchDataset((patches / std[:, None, None]).astype("float32"))
    with warnings.catch_warnings():  # torchgeo's ZCA whitening casts tiny imaginary eigenvalue parts away
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        module = RCF(in_channels=len(bands), features=request.features, kernel_size=3, bias=-1.0,
                     seed=request.seed + 1, mode="empirical" if dataset is not None else "gaussian",
                     dataset=dataset)
    module.eval()
    metadata = {"weights": None, "kernel_size": 3, "features": request.features, "seed": request.seed,
                "normalisation": "per-band standardisation with the raster's mean and std"}
    return BuiltEncoder(module, request.features, bands, mean.astype("float64"), std.astype("float64"),
                        metadata)


class _PatchDataset:
    """The minimal dataset torchgeo's empirical RCF samples its filters from: one 3 x 3 patch per item."""

    def __init__(self, patches: np.ndarray) -> None:
        # Lazy: the torch stack takes seconds to import.
        import torch

        self._patches = torch.from_numpy(patches)

    def __len__(self) -> int:
        return len(self._patches)

    def __getitem__(self, index: int) -> dict[str, Any]:
        # torchgeo draws a 3 x 3 window at offsets below (size - 3): give it a 4 x 4 item whose corner is the patch
        # Lazy: the torch stack takes seconds to import.
        import torch.nn.functional as F

        return {"image": F.pad(self._patches[index], (0, 1, 0, 1), mode="replicate")}


def weights_enum(spec: EncoderSpec, name: str) -> Any:
    """The torchgeo weights ``name`` of ``spec``'s architecture; an error listing the choices otherwise."""
    # Lazy: the torch stack takes seconds to import.
    import torchgeo.models as tgm

    enum = getattr(tgm, spec.weight_enum)
    try:
        return enum[name]
    except KeyError:
        choices = ", ".join(m.name for m in enum)
        raise InputError(f"{spec.label} has no weights {name!r}; choose one of: {choices}.") from None


def map_bands(band_names: list[str], expected: list[str], band_map: str | None) -> list[int]:
    """The raster band (1-based) for each band the weights expect, by explicit map or by band name.

    Raises:
        InputError: listing the bands the weights expect and those that could not be matched.

    """
    assigned = band_assignments(band_map, len(band_names), "Band map", "B4=3, B8=4")
    lookup = {key.upper(): band for key, band in assigned.items()}
    names = {n.strip().upper(): i for i, n in enumerate(band_names, start=1) if n}
    bands, missing = [], []
    for wanted in expected:
        key = wanted.upper()
        short = key.removeprefix("SR_")
        candidates = [key, short, re.sub(r"^B0(\d)$", r"B\1", short), re.sub(r"^B(\d)$", r"B0\1", short)]
        band = lookup.get(key) or next((names[c] for c in candidates if c in names), None)
        if band is None:
            missing.append(wanted)
        bands.append(band or 0)
    if missing:
        raise InputError(
            f"The weights expect the bands {', '.join(expected)}; none of the raster's bands ({', '.join(band_names)}) "
            f"matches {', '.join(missing)}. Name the bands, or give a band map such as "
            f"'{expected[0]}=1, {expected[1] if len(expected) > 1 else expected[0]}=2'."
        )
    return bands


def weights_normalisation(weights: Any, n_bands: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the weights' transforms, composed into one affine map per band."""
    # Lazy: the torch stack takes seconds to import.
    from torchvision.transforms import v2

    mean, std = np.zeros(n_bands), np.ones(n_bands)
    for transform in getattr(weights.transforms, "children", lambda: [])():
        if isinstance(transform, v2.Normalize):
            m = np.broadcast_to(np.asarray(transform.mean, dtype="float64"), (n_bands,))
            s = np.broadcast_to(np.asarray(transform.std, dtype="float64"), (n_bands,))
            mean, std = mean + m * std, std * s  # ((x - a) / b - m) / s == (x - (a + m b)) / (b s)
    return mean, std


def load_state_dict(path: str | Path) -> dict[str, Any]:
    """A state dict from a file, never executing code (``weights_only=True``); unwraps Lightning checkpoints."""
    # Lazy: the torch stack takes seconds to import.
    import torch

    if not Path(path).is_file():
        raise ModelFileError(f"Weights file {path} does not exist.")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelFileError(f"Cannot read weights file {path} as a plain state dict ({exc}).") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelFileError(f"Weights file {path} does not hold a state dict.")
    return state


def _timm_model(architecture: str, in_chans: int) -> torch.nn.Module:
    # Lazy: the torch stack takes seconds to import.
    import timm

    kwargs: dict[str, Any] = {"pretrained": False, "in_chans": in_chans, "num_classes": 0}
    if architecture.startswith("vit"):
        kwargs["dynamic_img_size"] = True
    try:
        return timm.create_model(architecture, **kwargs)
    except RuntimeError as exc:
        raise InputError(f"Unknown architecture {architecture!r} ({exc}); give a timm model name such as "
                         "'resnet18'.") from None


def load_into(module: torch.nn.Module, state: dict[str, Any], source: str) -> None:
    """Load ``state`` leniently about the classifier head only; anything else missing is an error."""
    state = {k.removeprefix("model.").removeprefix("backbone."): v for k, v in state.items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    head = ("fc.", "head.", "classifier.")
    missing = [k for k in missing if not k.startswith(head)]
    unexpected = [k for k in unexpected if not k.startswith(head)]
    if missing or len(unexpected) > 0:
        raise ModelFileError(f"{source} does not fit the architecture: missing {missing[:5]}, unexpected "
                             f"{unexpected[:5]}.")


def _build_torchgeo(request: EncoderRequest) -> BuiltEncoder:
    spec = request.spec
    if not request.weights:
        logger.warning("%s without weights: random initialisation, NOT a pretrained encoder.", spec.label)
        # Lazy: the torch stack takes seconds to import.
        import torch

        bands = list(range(1, len(request.band_names) + 1))
        with torch.random.fork_rng(devices=[]):  # seeded: the same random encoder every time
            torch.manual_seed(request.seed)
            module = _timm_model(spec.architecture, len(bands))
        mean, std = request.band_stats
        metadata = {"weights": None, "pretrained": False, "seed": request.seed,
                    "normalisation": "per-band standardisation with the raster's mean and std"}
    else:
        weights = weights_enum(spec, request.weights)
        expected = list(weights.meta["bands"])
        bands = map_bands(request.band_names, expected, request.band_map)
        module = _timm_model(spec.architecture, len(bands))
        if request.weights_file:
            state, source = load_state_dict(request.weights_file), f"weights file {request.weights_file}"
        else:
            state, source = download_weights(weights), f"torchgeo weights {request.weights}"
        load_into(module, state, source)
        mean, std = weights_normalisation(weights, len(bands))
        metadata = {"weights": f"{spec.weight_enum}.{request.weights}", "pretrained": True, "url": weights.url,
                    "weights_bands": expected, "normalisation": "the weights' transforms (torchgeo)"}
    module.eval()
    return BuiltEncoder(module, int(module.num_features), bands, np.asarray(mean, dtype="float64"),
                        np.asarray(std, dtype="float64"), metadata)


def download_weights(weights: Any) -> dict[str, Any]:
    """The weights' state dict through torchgeo (torch hub cache); a clear error when offline."""
    # Lazy: the torch stack takes seconds to import.
    import torch

    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url.split("?")[0]).name
    try:
        return dict(weights.get_state_dict(progress=False))
    except Exception as exc:
        raise ModelFileError(
            f"Cannot download the weights from {weights.url} ({type(exc).__name__}). Download the file on a "
            f"machine with internet access and put it at {target}, or give its path as the weights file."
        ) from exc


def _build_checkpoint(request: EncoderRequest) -> BuiltEncoder:
    if not request.architecture or not request.weights_file:
        raise InputError("A checkpoint encoder needs an architecture (a timm name such as 'resnet18') and a "
                         "weights file.")
    bands = list(range(1, len(request.band_names) + 1))
    module = _timm_model(request.architecture, len(bands))
    load_into(module, load_state_dict(request.weights_file), f"weights file {request.weights_file}")
    module.eval()
    mean, std = request.band_stats
    metadata = {"weights": Path(request.weights_file).name, "architecture": request.architecture,
                "pretrained": True, "normalisation": "per-band standardisation with the raster's mean and std"}
    return BuiltEncoder(module, int(module.num_features), bands, np.asarray(mean, dtype="float64"),
                        np.asarray(std, dtype="float64"), metadata)


def encoder_state(built: BuiltEncoder) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A built encoder as plain data and arrays (its module's state dict), to store in a model file."""
    params = {"dim": built.dim, "bands": list(built.bands), "mean": built.mean.tolist(), "std": built.std.tolist(),
              "metadata": built.metadata}
    arrays = {key: value.detach().cpu().numpy() for key, value in built.module.state_dict().items()}
    return params, arrays


def encoder_skeleton(name: str, n_bands: int, dim: int, architecture: str | None = None) -> torch.nn.Module:
    """The module of encoder ``name`` for ``n_bands`` input bands with unset weights, to load a stored state into."""
    spec = get_encoder(name)
    if spec.family == "rcf":
        # Lazy: the torch stack takes seconds to import.
        from torchgeo.models import RCF

        return RCF(in_channels=n_bands, features=dim, kernel_size=3, bias=-1.0, seed=0, mode="gaussian")
    return _timm_model(spec.architecture or architecture or "", n_bands)


def rebuild_encoder(name: str, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> BuiltEncoder:
    """The encoder :func:`encoder_state` stored: same module, weights, bands and normalisation.

    Raises:
        ModelFileError: when the stored weights do not fit the architecture.

    """
    # Lazy: the torch stack takes seconds to import.
    import torch

    spec = get_encoder(name)
    bands = [int(b) for b in params["bands"]]
    module = encoder_skeleton(name, len(bands), int(params["dim"]), params["metadata"].get("architecture"))
    try:
        module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"The model's {spec.label} weights do not fit: {exc}. Retrain the model.") from exc
    module.eval()
    return BuiltEncoder(module, int(params["dim"]), bands, np.asarray(params["mean"], dtype="float64"),
                        np.asarray(params["std"], dtype="float64"), dict(params["metadata"]))
