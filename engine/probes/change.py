"""How much each pixel changed between two dates: a value model on the two dates' values stacked band after band.

The model reads a pixel's ``2 d`` values: the first date's ``d`` features, then the second date's. Embeddings are
compared by their cosine distance, ``1 - cos(a, b)`` (0: the same direction, 1: unrelated, 2: opposite), as the
embedding products' own change tools do; band values by the change-vector magnitude on standardised bands,
``|| (b - a) / s ||`` with ``s`` each band's spread over both dates, so that every band counts alike. AlphaEarth's
int8 values are de-quantised first. Like the other value models it sits in a Landprobe model file, so *Classify
raster* maps it window by window and *Map region* block by block.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..embeddings.inputs import dequantize
from .base import Probe, State

#: How change is measured, by the kind of features.
MEASURES = {"cosine": "cosine distance of the embeddings (1 - cos)",
            "change_vector": "change-vector magnitude on standardised bands"}


class ChangeMagnitude(Probe):
    """The change between two dates stacked in one pixel's values, as a number (0: none)."""

    name = "change"
    label = "Change magnitude"
    target = "value"

    def __init__(self, dims: int, measure: str = "change_vector", how: str | None = None) -> None:
        """Keep the features per date, the measure (a key of :data:`MEASURES`) and the de-quantisation."""
        if measure not in MEASURES:
            raise ValueError(f"measure must be one of {', '.join(MEASURES)}, not {measure!r}")
        self.dims, self.measure, self.how = dims, measure, how
        self.scale_ = np.ones(dims, dtype="float32")

    def fit_spread(self, x: np.ndarray) -> list[int]:
        """Take each band's spread over both dates from the sample ``x`` (n, 2 d) (change vectors only).

        A band constant on either date (an empty band, a quality mask filled on one date only) says nothing about
        change there, and its tiny spread would blow any difference up: it is left out (its spread set to infinity,
        so it adds nothing). Returns the bands left out (0-based).
        """
        if self.measure != "change_vector":
            return []
        a, b = self._dates(x)
        std = np.concatenate([a, b]).std(axis=0)
        constant = (a.std(axis=0) == 0) | (b.std(axis=0) == 0)
        self.scale_ = np.where(constant, np.inf, np.where(std > 0, std, 1)).astype("float32")
        return [int(i) for i in np.flatnonzero(constant)]

    def _dates(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype="float32")
        a, b = x[:, :self.dims], x[:, self.dims:]
        if self.how:
            a, b = dequantize(a, self.how), dequantize(b, self.how)
        return a, b

    def predict_value(self, x: np.ndarray) -> np.ndarray:
        """The change of each pixel of ``x`` (n, 2 d): float32, 0 for none."""
        a, b = self._dates(x)
        if self.measure == "cosine":
            norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
            cosine = (a * b).sum(axis=1) / np.where(norms > 0, norms, 1)
            return np.clip(1 - cosine, 0, 2).astype("float32")
        return np.linalg.norm((b - a) / self.scale_, axis=1).astype("float32")

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Not a classifier: use :meth:`predict_value`."""
        raise NotImplementedError("a change model maps a value, not classes")

    def state(self) -> State:
        """The measure, the de-quantisation and the spreads."""
        return {"dims": self.dims, "measure": self.measure, "how": self.how}, {"scale": self.scale_}, {}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> Probe:
        """Rebuild from arrays."""
        model = cls(int(params["dims"]), str(params["measure"]), params.get("how"))
        model.scale_ = arrays["scale"].astype("float32")
        return model
