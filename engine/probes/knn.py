"""k-nearest neighbours on standardised features: a k-d tree, or the blocked search of :mod:`engine.accel`."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from ..accel import enabled as accel_enabled
from ..accel.knn_blocks import BlockNeighbours
from ..accel.tree_predictor import LazyPredictor
from ..core.numbers import mean_and_scale
from .base import Probe, State

logger = logging.getLogger(__name__)


COMPILED_KNN_MAX_SAMPLES = 10_000  # k-NN: up to here the compiled search beats the k-d tree (7 and 12 dimensions)


class KNearestNeighborsProbe(Probe):
    """k nearest neighbours on standardised features, weighted by distance; keeps a random ``max_samples``.

    For maps (:data:`engine.accel.tree_predictor.MIN_ROWS` pixels or more at once) and up to
    :data:`COMPILED_KNN_MAX_SAMPLES` reference samples, the neighbours and votes come from a compiled
    search over blocks of samples (:mod:`engine.accel.knn_blocks`: float32, confirmed and finished in float64; about 10x
    the k-d tree with the sample's 718, 1.2x to 1.6x with 10,000); the few pixels it cannot confirm, and larger
    reference sets, go to SciPy's k-d tree (``cKDTree``). Both find the same neighbours and release the GIL.
    """

    name = "knn"
    label = "k-nearest neighbours"

    def __init__(self, k: int = 7, max_samples: int = 50_000, seed: int = 0) -> None:
        """Keep ``k`` and the size of the reference set."""
        self.k = k
        self.max_samples = max_samples
        self.seed = seed

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> KNearestNeighborsProbe:
        """Keep (a random subset of) the standardised samples as the reference set."""
        if len(y) > self.max_samples:
            rng = np.random.default_rng(self.seed)
            keep = rng.choice(len(y), self.max_samples, replace=False)
            x, y = x[keep], y[keep]
        x = np.asarray(x, dtype="float32")
        self.mean_, self.scale_ = mean_and_scale(x)
        self.x_, self.y_, self.n_classes_ = (x - self.mean_) / self.scale_, y.astype("int64"), n_classes
        self._build()
        return self

    def _build(self) -> None:
        self.workers_ = os.cpu_count() or 1
        # Lazy: scipy takes half a second to import, and not every job needs it here.
        from scipy.spatial import cKDTree

        self.tree_ = cKDTree(self.x_)
        # compiled for the first map-sized prediction only: validation folds and small predictions skip the compile
        self.blocks_: LazyPredictor[Any] = LazyPredictor(self._compiled_search, self.workers_)

    def _compiled_search(self) -> Any:
        """The compiled search (:mod:`engine.accel.knn_blocks`) if it can be built and agrees with the k-d tree."""
        if len(self.y_) > COMPILED_KNN_MAX_SAMPLES or not accel_enabled():  # LANDPROBE_NO_JIT: the k-d tree
            return None
        try:
            blocks = BlockNeighbours(self.x_, self.y_, self.n_classes_, min(self.k, len(self.y_)), self.mean_,
                                     self.scale_)
            return blocks if self._same_search(blocks) else None
        except Exception as exc:  # no llvmlite, k over 15, or LLVM failed: the k-d tree finds the same neighbours
            logging.getLogger(__name__).debug("Compiled neighbour search not used: %s", exc)
            return None

    def _same_search(self, blocks: Any) -> bool:
        """Whether the compiled search gives the k-d tree's neighbours and votes where it confirms them (a check).

        On rows around the reference samples, and on some of the samples themselves (distance 0).
        """
        rng = np.random.default_rng(0)
        rows = self.x_[rng.integers(0, len(self.x_), 512)]
        rows[64:] += rng.normal(0, 0.1, rows[64:].shape)
        raw = (rows * self.scale_ + self.mean_).astype("float32")
        xs = self._standardise(raw)
        dist, _, proba, sure = blocks.query(raw)
        expected_dist, expected_idx = self._neighbours(xs, blocks.k)
        expected = self._votes(expected_dist, expected_idx)
        return bool(sure.mean() > 0.9 and np.allclose(dist[sure], expected_dist[sure], rtol=1e-9, atol=1e-12)
                    and np.allclose(proba[sure], expected[sure], rtol=0, atol=1e-6))

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        """The rows standardised in float32, as the reference set was."""
        return (x.astype("float32", copy=False) - self.mean_) / self.scale_

    def _neighbours(self, xs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Distances and reference rows of the ``k`` nearest samples of standardised rows ``xs`` (k-d tree)."""
        dist, idx = self.tree_.query(xs, k=k, workers=self.workers_)
        return dist.reshape(len(xs), k), idx.reshape(len(xs), k)

    def _votes(self, dist: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Class shares of the neighbours' votes weighted by 1 / distance (exact matches take all)."""
        exact = dist == 0
        with np.errstate(divide="ignore"):
            weights = np.where(exact.any(axis=1, keepdims=True), exact.astype("float64"), 1.0 / dist)
        votes = np.zeros((len(dist), self.n_classes_), dtype="float64")
        rows = np.arange(len(dist))
        for j in range(dist.shape[1]):  # one neighbour per row at a time: no repeated (row, class) pair per update
            votes[rows, self.y_[idx[:, j]]] += weights[:, j]
        return (votes / votes.sum(axis=1, keepdims=True)).astype("float32")

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Votes of the ``k`` nearest reference samples weighted by 1 / distance (exact matches take all)."""
        k = min(self.k, len(self.y_))
        blocks = self.blocks_.get(len(x))
        if blocks is None:
            return self._votes(*self._neighbours(self._standardise(x), k))
        proba, sure = blocks.votes(np.ascontiguousarray(x, dtype="float32"))
        if not sure.all():  # a near tie between a pixel's k-th and k+1-th neighbour: the k-d tree decides
            unsure = np.flatnonzero(~sure)
            proba[unsure] = self._votes(*self._neighbours(self._standardise(x[unsure]), k))
        return proba

    def set_threads(self, n: int) -> None:
        """Threads of the neighbour search."""
        self.workers_ = max(1, n)
        self.blocks_.set_threads(self.workers_)

    def state(self) -> State:
        """The reference set and the standardisation."""
        params = {"k": self.k, "max_samples": self.max_samples, "seed": self.seed, "n_classes": self.n_classes_}
        return params, {"x": self.x_, "y": self.y_, "mean": self.mean_, "scale": self.scale_}, {}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> Probe:
        """Rebuild the neighbour index from the reference set."""
        probe = cls(int(params["k"]), int(params["max_samples"]), int(params["seed"]))
        probe.x_, probe.y_, probe.n_classes_ = arrays["x"], arrays["y"], int(params["n_classes"])
        probe.mean_, probe.scale_ = arrays["mean"], arrays["scale"]
        probe._build()
        return probe
