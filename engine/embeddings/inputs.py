"""Embedding rasters as inputs: Landprobe's own, Google Satellite Embedding (AlphaEarth), TESSERA, any float raster.

An embedding raster is described once (:func:`describe_embeddings`) and that description goes into the model, so that
a model trained on one kind of embeddings refuses another (:func:`check_same_embeddings`):

- ``landprobe``: written by ``extract_embeddings``; its ``LANDPROBE_EMBEDDING`` metadata names the encoder, the
  weights, patch size and stride.
- ``alphaearth``: Google Satellite Embedding V1 GeoTIFFs, 64 bands of int8. Values are de-quantised as
  ``sign(q) * (q / 127.5) ** 2`` and -128 is nodata, whatever the file declares.
- ``tessera``: 128 float bands (TESSERA exports).
- ``float``: any other floating-point raster, taken as it is (NaN or the declared nodata are nodata).

Embeddings are never interpolated: a map on another grid takes each pixel's nearest cell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import InputError, ModelFileError
from ..io.rasters import band_scaling, open_raster

ALPHAEARTH_NODATA = -128
ALPHAEARTH_BANDS = 64
TESSERA_BANDS = 128

#: Keys of a Landprobe embedding's metadata that must match between training and prediction.
_IDENTITY_KEYS = ("encoder", "weights", "pretrained", "architecture", "dim", "patch_size", "stride", "features",
                  "seed", "kernel_size")


@dataclass
class EmbeddingSource:
    """What kind of embedding raster a file is, and how to read its values."""

    kind: str  # "landprobe", "alphaearth", "tessera" or "float"
    dim: int
    dequantize: str | None = None  # "alphaearth" or None
    nodata: float | None = None  # a nodata value that overrides the file's
    identity: dict[str, Any] = field(default_factory=dict)
    scales: list[float] | None = None  # the bands' scale and offset tags: value = stored x scale + offset
    offsets: list[float] | None = None

    def label(self) -> str:
        """A short human description, e.g. ``rcf_gaussian embeddings (128 dimensions, patch 16 px, stride 16 px)``."""
        if self.kind == "landprobe":
            ident = self.identity
            weights = f", weights {ident['weights']}" if ident.get("weights") else ""
            return (f"{ident.get('encoder')} embeddings ({self.dim} dimensions, patch {ident.get('patch_size')} px, "
                    f"stride {ident.get('stride')} px{weights})")
        names = {"alphaearth": "Google Satellite Embedding (AlphaEarth, int8 de-quantised)",
                 "tessera": "TESSERA embeddings", "float": "float embeddings",
                 "scaled": "embeddings stored as whole numbers"}
        tags = ", scale and offset tags applied" if self.scales is not None else ""
        return f"{names[self.kind]} ({self.dim} dimensions{tags})"

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the model's manifest."""
        tags = {"scales": self.scales, "offsets": self.offsets} if self.scales is not None else {}
        return {"kind": self.kind, "dim": self.dim, "dequantize": self.dequantize, "nodata": self.nodata,
                "identity": self.identity, **tags}

#: The GeoTIFF tag holding an embedding raster's description (encoder, weights, patch, stride, statistics).
METADATA_KEY = "LANDPROBE_EMBEDDING"


def describe_embeddings(path: str) -> EmbeddingSource:
    """Recognise the embedding raster ``path``.

    Raises:
        InputError: for a raster of whole numbers that is not an AlphaEarth file (most likely raw bands).

    """
    with open_raster(path) as src:
        tag = src.tags().get(METADATA_KEY)
        count, dtype = src.count, src.dtypes[0]
        scaling = band_scaling(src)
    if tag:
        meta = json.loads(tag)
        identity = {k: meta.get(k) for k in _IDENTITY_KEYS if k in meta}
        return EmbeddingSource("landprobe", count, identity=identity)
    if scaling is not None:  # the file says how its values become embeddings: that wins over any guess
        kind = "scaled" if not dtype.startswith("float") else "tessera" if count == TESSERA_BANDS else "float"
        return EmbeddingSource(kind, count, identity={"product": kind, "dim": count}, scales=scaling[0],
                               offsets=scaling[1])
    if dtype == "int8" and count == ALPHAEARTH_BANDS:
        return EmbeddingSource("alphaearth", count, "alphaearth", ALPHAEARTH_NODATA,
                               {"product": "Google Satellite Embedding V1", "dim": count})
    if dtype.startswith("float"):
        kind = "tessera" if count == TESSERA_BANDS else "float"
        return EmbeddingSource(kind, count, identity={"product": kind, "dim": count})
    raise InputError(
        f"Raster {path} holds {count} bands of {dtype}, which does not look like an embedding raster (expected "
        "floating-point bands, an AlphaEarth file of 64 int8 bands, or a raster written by 'Extract embeddings'). "
        "To classify band values, choose 'raw bands' as features."
    )


def _alphaearth_table() -> np.ndarray:
    """``sign(q) * (q / 127.5) ** 2`` for every int8 ``q``, indexed by its bits read as uint8."""
    q = np.arange(256, dtype="int16")
    scaled = (np.where(q > 127, q - 256, q).astype("float32") / np.float32(127.5)).astype("float32")
    return (np.sign(scaled) * scaled * scaled).astype("float32")


_ALPHAEARTH_TABLE = _alphaearth_table()


def dequantize(x: np.ndarray, how: str | None, scales: list[float] | None = None,
               offsets: list[float] | None = None) -> np.ndarray:
    """Values (n, bands) as float32, in embedding units.

    With the bands' scale and offset tags, ``stored x scale + offset``; AlphaEarth's int8 (no tags) become
    ``sign(q) * (q / 127.5) ** 2``.
    """
    if how == "alphaearth" and scales is None and np.asarray(x).dtype == np.int8:
        # a look-up of the 256 values: half the time of the arithmetic below, the same numbers; done in the memory
        # order of ``x`` (a window's pixels come as a transposed view), and handed back in its layout
        q = np.asarray(x)
        if not q.flags.c_contiguous and q.T.flags.c_contiguous:
            return _ALPHAEARTH_TABLE[q.T.view(np.uint8)].T
        return _ALPHAEARTH_TABLE[q.view(np.uint8)]
    values = np.asarray(x, dtype="float32")
    if scales is not None:
        return (values * np.asarray(scales, dtype="float32") + np.asarray(offsets or 0.0, dtype="float32")
                ).astype("float32")
    if how == "alphaearth":
        scaled = values / 127.5
        return np.sign(scaled) * scaled * scaled
    if how is not None:
        raise ModelFileError(f"Unknown de-quantisation {how!r} in the model: update Landprobe.")
    return values


def check_same_embeddings(trained: dict[str, Any], source: EmbeddingSource, raster: str) -> None:
    """Refuse to apply a model trained on one kind of embeddings to another.

    Raises:
        ModelFileError: naming both embeddings and what differs.

    """
    same_kind = trained.get("kind") == source.kind
    a, b = trained.get("identity", {}), source.identity
    differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if same_kind and not differing:
        return
    was = EmbeddingSource(trained.get("kind", "?"), int(trained.get("dim", 0)), identity=a)
    detail = ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in differing) if same_kind else "another kind"
    raise ModelFileError(
        f"The model was trained on {was.label()} but raster {raster} holds {source.label()} ({detail}). "
        "Embeddings of different encoders (or settings) are not comparable: extract the embeddings with the "
        "model's settings, or train a model on these embeddings."
    )
