"""CPU probes: light classifiers trained on pixel features (raw bands today, embeddings later).

The default is the RBF support vector machine (:mod:`engine.probes.svm`).

A probe is one class in :data:`PROBES`; adding one is one class and one entry. Every probe saves its fitted state
as JSON-able parameters, numpy arrays and raw bytes in a non-executable format (no pickle), see
:mod:`engine.probes.model_file`.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from ..accel import enabled as accel_enabled
from ..accel import tree_predictor
from ..accel.tree_predictor import LazyPredictor, TreePredictor, from_sklearn, from_softprob_booster
from ..accel.tree_predictor import build as build_trees
from ..core.errors import InputError, MissingDependencyError
from ..core.numbers import mean_and_scale
from .base import Probe, State, check_class_weight, full_proba, sample_weights
from .svm import SvmProbe

if TYPE_CHECKING:
    import numpy as np

class LogisticRegressionProbe(Probe):
    """Multinomial logistic regression on standardised features; applied with numpy alone."""

    name = "logistic_regression"
    label = "Logistic regression"

    def __init__(self, c: float = 1.0, class_weight: str = "balanced") -> None:
        """Keep the inverse regularisation strength ``c`` and the class weighting (``balanced`` or ``none``)."""
        self.c = c
        self.class_weight = check_class_weight(class_weight)

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> LogisticRegressionProbe:
        """Standardise, then fit scikit-learn's lbfgs logistic regression, weighting classes as asked."""
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        x = np.asarray(x, dtype="float64")
        self.mean_, self.scale_ = mean_and_scale(x)
        model = LogisticRegression(C=self.c, max_iter=2000)
        model.fit((x - self.mean_) / self.scale_, y, sample_weight=sample_weights(y, n_classes, self.class_weight))
        coef = np.zeros((n_classes, x.shape[1]))
        intercept = np.zeros(n_classes)
        if len(model.classes_) == 2:  # binary: sklearn keeps one row, the logit of the second class
            coef[model.classes_[1]] = model.coef_[0]
            intercept[model.classes_[1]] = model.intercept_[0]
        else:
            coef[model.classes_] = model.coef_
            intercept[model.classes_] = model.intercept_
            missing = np.setdiff1d(np.arange(n_classes), model.classes_)
            intercept[missing] = -np.inf
        # Fold the standardisation into the linear map: logits = x @ w + b.
        self.weights_ = (coef / self.scale_).T.astype("float32")
        self.bias_ = (intercept - (coef * self.mean_ / self.scale_).sum(axis=1)).astype("float32")
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Softmax of the linear logits."""
        import numpy as np

        logits = np.asarray(x, dtype="float32") @ self.weights_ + self.bias_
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits

    def state(self) -> State:
        """Weights and bias as arrays."""
        arrays = {"weights": self.weights_, "bias": self.bias_, "mean": self.mean_, "scale": self.scale_}
        return {"c": self.c, "class_weight": self.class_weight}, arrays, {}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> Probe:
        """Rebuild from arrays."""
        probe = cls(c=float(params.get("c", 1.0)), class_weight=str(params.get("class_weight", "balanced")))
        probe.weights_ = arrays["weights"].astype("float32")
        probe.bias_ = arrays["bias"].astype("float32")
        probe.mean_ = arrays["mean"]
        probe.scale_ = arrays["scale"]
        return probe


def _xgboost() -> Any:
    try:
        import xgboost
    except ImportError as exc:
        raise MissingDependencyError(
            "XGBoost is not installed in the engine's environment: run `pip install xgboost-cpu` with the engine's "
            "Python, or re-run the set-up."
        ) from exc
    return xgboost


class XGBoostProbe(Probe):
    """Gradient-boosted trees (XGBoost ``hist``), all CPU cores; saved as XGBoost UBJSON.

    XGBoost's own defaults (100 rounds, depth 6, learning rate 0.3): on the sample they validate better than 300
    slower rounds, and the prediction cost grows with the number of trees (rounds x classes).
    """

    name = "xgboost"
    label = "XGBoost (gradient-boosted trees)"

    def __init__(self, n_estimators: int = 100, max_depth: int = 6, learning_rate: float = 0.3,
                 class_weight: str = "balanced") -> None:
        """Keep the boosting settings and the class weighting (``balanced`` or ``none``)."""
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.class_weight = check_class_weight(class_weight)

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> XGBoostProbe:
        """Train a booster with the softprob objective."""
        xgb = _xgboost()
        params = {"objective": "multi:softprob", "num_class": n_classes, "max_depth": self.max_depth,
                  "eta": self.learning_rate, "tree_method": "hist",
                  "nthread": self.fit_threads or os.cpu_count() or 1,
                  "eval_metric": "mlogloss", "seed": 0}
        data = xgb.DMatrix(x, label=y, weight=sample_weights(y, n_classes, self.class_weight))
        self.booster_ = xgb.train(params, data, num_boost_round=self.n_estimators)
        self.n_classes_ = n_classes
        self._prepare()
        return self

    def _prepare(self) -> None:
        self.fast_ = LazyPredictor(self._build_fast, os.cpu_count() or 1)
        self.booster_.set_param({"nthread": os.cpu_count() or 1})

    def _build_fast(self) -> TreePredictor | None:
        """Each round's per-class trees grafted into one vector-leaf tree (:mod:`engine.accel.tree_predictor`)."""
        try:
            trees, base = from_softprob_booster(self.booster_, self.n_classes_, tree_predictor.COMPILED_GRAFT_NODES)
        except (KeyError, ValueError, TypeError, IndexError):  # another model schema: XGBoost's own walk
            return None
        return build_trees(trees, self.booster_.num_features(), self.n_classes_, self._booster_proba, base,
                           softmax=True, walker_trees=lambda: from_softprob_booster(self.booster_, self.n_classes_)[0])

    def _booster_proba(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.asarray(self.booster_.inplace_predict(x), dtype="float32").reshape(len(x), self.n_classes_)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """The booster's probabilities (to 1e-6); maps come from the grafted trees when they could be built."""
        fast = self.fast_.get(len(x))
        return fast(x) if fast is not None else self._booster_proba(x)

    def predict(self, x: np.ndarray, proba: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Class per sample and, when ``proba``, the probabilities; classes alone skip the softmax."""
        fast = None if proba else self.fast_.get(len(x))
        if fast is None:
            return super().predict(x, proba)
        return fast.scores(x).argmax(axis=1), None

    def set_threads(self, n: int) -> None:
        """Threads of the booster's prediction."""
        self.booster_.set_param({"nthread": n})
        self.fast_.set_threads(n)

    def state(self) -> State:
        """The booster as UBJSON bytes."""
        params = {"n_estimators": self.n_estimators, "max_depth": self.max_depth,
                  "learning_rate": self.learning_rate, "n_classes": self.n_classes_,
                  "class_weight": self.class_weight}
        return params, {}, {"booster.ubj": bytes(self.booster_.save_raw(raw_format="ubj"))}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> Probe:
        """Load the booster from UBJSON bytes."""
        xgb = _xgboost()
        probe = cls(int(params["n_estimators"]), int(params["max_depth"]), float(params["learning_rate"]),
                    str(params.get("class_weight", "balanced")))
        probe.booster_ = xgb.Booster()
        probe.booster_.load_model(bytearray(blobs["booster.ubj"]))
        probe.n_classes_ = int(params["n_classes"])
        probe._prepare()
        return probe


COMPILED_KNN_MAX_SAMPLES = 10_000  # k-NN: up to here the compiled search beats the k-d tree (7 and 12 dimensions)
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
        import numpy as np

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
        import numpy as np

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
        import numpy as np

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
        import numpy as np

        x = np.ascontiguousarray(x, dtype="float32")
        chunks = [x[i:i + _RF_CHUNK] for i in range(0, len(x), _RF_CHUNK)] or [x]
        if self.threads_ > 1 and len(chunks) > 1:
            from concurrent.futures import ThreadPoolExecutor

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
        import numpy as np

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
        import numpy as np
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.tree import DecisionTreeClassifier
        from sklearn.tree._tree import Tree

        from ..core.errors import ModelFileError

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
        import numpy as np

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
        from scipy.spatial import cKDTree

        self.tree_ = cKDTree(self.x_)
        # compiled for the first map-sized prediction only: validation folds and small predictions skip the compile
        self.blocks_: LazyPredictor[Any] = LazyPredictor(self._compiled_search, self.workers_)

    def _compiled_search(self) -> Any:
        """The compiled search (:mod:`engine.accel.knn_blocks`) if it can be built and agrees with the k-d tree."""
        if len(self.y_) > COMPILED_KNN_MAX_SAMPLES or not accel_enabled():  # LANDPROBE_NO_JIT: the k-d tree
            return None
        try:
            from ..accel.knn_blocks import BlockNeighbours

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
        import numpy as np

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
        import numpy as np

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
        import numpy as np

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


PROBES: dict[str, type[Probe]] = {
    p.name: p for p in (SvmProbe, LogisticRegressionProbe, XGBoostProbe, RandomForestProbe, KNearestNeighborsProbe)
}
DEFAULT_PROBE = SvmProbe.name


def get_probe(name: str) -> type[Probe]:
    """The probe class registered under ``name``.

    Raises:
        InputError: for an unknown name; the message lists the choices.

    """
    try:
        return PROBES[name]
    except KeyError:
        raise InputError(f"Unknown method {name!r}; choose one of: {', '.join(PROBES)}.") from None
