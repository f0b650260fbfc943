"""Similarity to examples: a value per pixel from 0 (unlike) to 1 (like the examples), saved and applied as a model.

The model holds reference vectors taken from the example pixels: their mean direction (``mean``: the cosine to the
examples' centroid, smooth, the usual choice), or the examples themselves (``best``: the cosine to the best-matching
example, which keeps examples of several looks apart; at most :data:`MAX_EXAMPLES`, a seeded sample). Embeddings are
compared as they are (cosine similarity, as for AlphaEarth and TESSERA); band values are first standardised with the
raster's own band means and spreads, so that every band counts alike and the cosine compares shapes of standardised
spectra. The cosine ``s`` (-1..1) is mapped to ``(1 + s) / 2``; with counter-examples, to ``(1 + s_examples -
s_counter) / 2`` clipped to 0..1: above 0.5 a pixel is closer to the examples than to the counter-examples.

Like a cluster model, it is a :class:`~engine.probes.base.Probe` (``target = "value"``) held in a Landprobe model
file, so that *Classify raster* maps it window by window and *Map region* maps a region with it block by block.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Probe, State

#: Most example pixels kept as references in ``best`` mode (each pixel is compared with all of them).
MAX_EXAMPLES = 512
#: Rows compared with the references at once in ``best`` mode (bounds the memory of one window).
CHUNK = 16_384
#: How the examples are summarised.
MODES = ("mean", "best")


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1)


class SimilarityModel(Probe):
    """Cosine similarity to example pixels (and away from counter-examples), as a 0..1 value."""

    name = "similarity"
    label = "Similarity to examples"
    target = "value"

    def __init__(self, mode: str = "mean", seed: int = 0) -> None:
        """Keep how the examples are summarised (``mean`` or ``best``) and the seed of the examples kept."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode, self.seed = mode, seed

    def fit_examples(self, examples: np.ndarray, counter: np.ndarray | None, mean: np.ndarray,
                     scale: np.ndarray) -> SimilarityModel:
        """Take the references from ``examples`` (and ``counter``), standardised by ``mean`` and ``scale``."""
        self.mean_, self.scale_ = np.asarray(mean, dtype="float32"), np.asarray(scale, dtype="float32")
        self.examples_ = self._references(examples)
        self.counter_ = self._references(counter) if counter is not None and len(counter) else None
        return self

    def _references(self, x: np.ndarray) -> np.ndarray:
        z = _unit(self._standardised(x))
        if self.mode == "mean":
            return _unit(z.mean(axis=0, keepdims=True)).astype("float32")
        if len(z) > MAX_EXAMPLES:
            z = z[np.sort(np.random.default_rng(self.seed).choice(len(z), MAX_EXAMPLES, replace=False))]
        return z.astype("float32")

    def _standardised(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype="float32") - self.mean_) / self.scale_

    def predict_value(self, x: np.ndarray) -> np.ndarray:
        """The similarity of each pixel of ``x`` (n, features): float32 in 0..1.

        The cosine is each dot product with the (unit) references divided by the pixel's norm: the pixels are not
        normalised first, which would copy them once more (this runs on every pixel of the map).
        """
        z = np.asarray(x, dtype="float32")
        if self.mean_.any() or (self.scale_ != 1).any():
            z = self._standardised(z)
        norm = np.sqrt(np.einsum("ij,ij->i", z, z))
        norm[norm == 0] = 1
        score = self._best(z, self.examples_)
        if self.counter_ is not None:
            score = score - self._best(z, self.counter_)
        score /= norm
        return np.clip((1 + score) / 2, 0, 1).astype("float32")

    @staticmethod
    def _best(z: np.ndarray, references: np.ndarray) -> np.ndarray:
        """The largest dot product of each row of ``z`` with the references, :data:`CHUNK` rows at a time.

        512 references against a 512 px window would otherwise take half a gigabyte at once.
        """
        if len(references) == 1:
            return (z @ references[0]).astype("float32")
        return np.concatenate([(z[i:i + CHUNK] @ references.T).max(axis=1) for i in range(0, len(z), CHUNK)]
                              or [np.empty(0, dtype="float32")])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Not a classifier: use :meth:`predict_value`."""
        raise NotImplementedError("a similarity model maps a value, not classes")

    def state(self) -> State:
        """References and standardisation as arrays."""
        arrays = {"examples": self.examples_, "mean": self.mean_, "scale": self.scale_}
        if self.counter_ is not None:
            arrays["counter"] = self.counter_
        return {"mode": self.mode, "seed": self.seed}, arrays, {}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> Probe:
        """Rebuild from arrays."""
        model = cls(mode=str(params.get("mode", "mean")), seed=int(params.get("seed", 0)))
        model.examples_ = arrays["examples"].astype("float32")
        model.counter_ = arrays["counter"].astype("float32") if "counter" in arrays else None
        model.mean_, model.scale_ = arrays["mean"].astype("float32"), arrays["scale"].astype("float32")
        return model
