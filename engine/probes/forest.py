"""Random forest (scikit-learn), predicted through :mod:`engine.accel` when its check passes."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..accel import tree_predictor
from ..accel.tree_predictor import LazyPredictor, TreePredictor, from_sklearn
from ..accel.tree_predictor import build as build_trees
from ..core.errors import ModelFileError
from .base import Probe, State, check_class_weight, full_proba

logger = logging.getLogger(__name__)


_RF_CHUNK = 16_384  # pixels per chunk in the forest's prediction: the sums stay in the CPU cache


class RandomForestProbe(Probe):
    """scikit-learn random forest (balanced per bootstrap sample, or unweighted), all CPU cores.

    The trees are saved as their node arrays (the numbers scikit-learn keeps for each node), never pickled, and
    rebuilt on loading; a model from another scikit-learn node layout is refused with a message to retrain.
    """

    name = "random_forest"
    label = "Random forest"

    def __init__(self, n_estimators: int = 100, min_samples_leaf: int = 1, seed: int = 0,
                 class_weight: str = "balanced") -> None:
        """Keep the forest settings and the class weighting (``balanced`` or ``none``)."""
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.seed = seed
        self.class_weight = check_class_weight(class_weight)

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> RandomForestProbe:
        """Grow the forest."""
        # Lazy: scikit-learn takes half a second to import, and not every job needs it here.
        from sklearn.ensemble import RandomForestClassifier

        self.model_ = RandomForestClassifier(
            n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf, n_jobs=self.fit_threads or -1,
            class_weight="balanced_subsample" if self.class_weight == "balanced" else None, random_state=self.seed,
        ).fit(x, y)
        self.n_classes_ = n_classes
        self._prepare()
        return self

    def _prepare(self) -> None:
        """Each tree's leaf class frequencies, normalised and divided by the number of trees (float64)."""
        trees = [estimator.tree_ for estimator in self.model_.estimators_]
        values = []
        for tree in trees:
            v = tree.value[:, 0, :]
            values.append(v / np.maximum(v.sum(axis=1, keepdims=True), 1e-300) / len(trees))
        self.trees_, self.leaf_values_, self.threads_ = trees, values, os.cpu_count() or 1
        self.fast_ = LazyPredictor(self._build_fast, self.threads_)

    def _build_fast(self) -> TreePredictor | None:
        """The trees as vector-leaf trees, compiled or for XGBoost's predictor (:mod:`engine.accel.tree_predictor`)."""
        if sum(t.node_count for t in self.trees_) > tree_predictor.MAX_TOTAL_NODES:  # before converting any node
            return None
        trees = [from_sklearn(t, v) for t, v in zip(self.trees_, self.leaf_values_, strict=True)]
        return build_trees(trees, int(self.model_.n_features_in_), len(self.model_.classes_), self._chunked_proba)

    def _proba_chunk(self, x: np.ndarray) -> np.ndarray:
        """The trees' leaves for one cache-sized chunk of pixels, their class frequencies summed."""
        acc = np.zeros((len(x), len(self.model_.classes_)), dtype="float64")
        buf = np.empty_like(acc)
        for tree, values in zip(self.trees_, self.leaf_values_, strict=True):
            np.take(values, tree.apply(x), axis=0, out=buf)
            acc += buf
        return acc

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Mean of the trees' class frequencies (scikit-learn's figure, to 1e-6).

        Maps run the trees compiled to machine code (:mod:`engine.accel.tree_predictor`, about 5x scikit-learn's speed)
        or through XGBoost's predictor (about 1.4x); without either, through :meth:`_chunked_proba`.
        """
        x = np.ascontiguousarray(x, dtype="float32")
        fast = self.fast_.get(len(x))
        proba = fast(x) if fast is not None else self._chunked_proba(x)
        return full_proba(proba, self.model_.classes_, self.n_classes_)

    def predict(self, x: np.ndarray, proba: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Class per sample and, when ``proba``, the probabilities; classes alone come from the float64 sums."""
        if proba:
            return super().predict(x, proba)
        fast = self.fast_.get(len(x))
        scores = fast.scores(x) if fast is not None else self._chunked_proba(x)
        return self.model_.classes_[scores.argmax(axis=1)], None  # absent classes (probability 0) never win

    def _chunked_proba(self, x: np.ndarray) -> np.ndarray:
        """The forest with scikit-learn's tree walk, in chunks of pixels, one column per class seen in training.

        scikit-learn predicts tree by tree over all rows and adds arrays as large as the input; here each chunk of
        16,384 pixels goes through every tree while its sums stay in the CPU cache.
        Chunks run on ``set_threads`` threads (the traversal releases the GIL).
        """
        x = np.ascontiguousarray(x, dtype="float32")
        chunks = [x[i:i + _RF_CHUNK] for i in range(0, len(x), _RF_CHUNK)] or [x]
        if self.threads_ > 1 and len(chunks) > 1:
            with ThreadPoolExecutor(max_workers=self.threads_) as pool:
                parts = list(pool.map(self._proba_chunk, chunks))
        else:
            parts = [self._proba_chunk(c) for c in chunks]
        return np.concatenate(parts)

    def set_threads(self, n: int) -> None:
        """Threads of one prediction call."""
        self.threads_ = max(1, n)
        self.fast_.set_threads(self.threads_)

    def state(self) -> State:
        """Every tree's nodes and leaf values, concatenated, with offsets."""
        states = [t.tree_.__getstate__() for t in self.model_.estimators_]
        arrays = {
            "nodes": np.concatenate([s["nodes"] for s in states]),
            "values": np.concatenate([s["values"] for s in states]).astype("float64"),
            "node_counts": np.array([s["node_count"] for s in states], dtype="int64"),
            "max_depths": np.array([s["max_depth"] for s in states], dtype="int64"),
            "classes": self.model_.classes_.astype("int64"),
        }
        params = {"n_estimators": self.n_estimators, "min_samples_leaf": self.min_samples_leaf, "seed": self.seed,
                  "n_classes": self.n_classes_, "n_features": int(self.model_.n_features_in_),
                  "class_weight": self.class_weight}
        return params, arrays, {}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> Probe:
        """Rebuild the trees from their node arrays."""
        # Lazy: scikit-learn takes half a second to import, and not every job needs it here.
        from sklearn.ensemble import RandomForestClassifier

        # Lazy: scikit-learn takes half a second to import, and not every job needs it here.
        from sklearn.tree import DecisionTreeClassifier

        # Lazy: scikit-learn takes half a second to import, and not every job needs it here.
        from sklearn.tree._tree import Tree


        classes = arrays["classes"]
        n_features = int(params["n_features"])
        forest_classes = np.array([len(classes)], dtype=np.intp)
        trees = []
        start = 0
        for count, depth in zip(arrays["node_counts"], arrays["max_depths"], strict=True):
            tree = Tree(n_features, forest_classes, 1)
            try:
                tree.__setstate__({"max_depth": int(depth), "node_count": int(count),
                                   "nodes": arrays["nodes"][start:start + count],
                                   "values": arrays["values"][start:start + count]})
            except (ValueError, TypeError) as exc:
                raise ModelFileError(
                    f"This random forest was saved by another scikit-learn version ({exc}); retrain the model."
                ) from exc
            start += int(count)
            estimator = DecisionTreeClassifier()
            estimator.tree_, estimator.n_outputs_, estimator.n_features_in_ = tree, 1, n_features
            estimator.classes_, estimator.n_classes_ = classes, len(classes)
            trees.append(estimator)
        probe = cls(int(params["n_estimators"]), int(params["min_samples_leaf"]), int(params["seed"]),
                    str(params.get("class_weight", "balanced")))
        model = RandomForestClassifier(n_estimators=len(trees), n_jobs=-1)
        model.estimators_, model.classes_, model.n_classes_ = trees, classes, len(classes)
        model.n_outputs_, model.n_features_in_ = 1, n_features
        probe.model_, probe.n_classes_ = model, int(params["n_classes"])
        probe._prepare()
        return probe
