"""Regression probes: a quantity per pixel (biomass, canopy cover, impervious fraction), saved and mapped as values.

Four probes, each a :class:`~engine.probes.base.Probe` whose ``target`` is ``value``, so that *Classify raster* maps
it as a float32 Cloud-Optimized GeoTIFF on a ramp and *Map region* block by block:

- ``ridge``: ridge regression on standardised features (the linear probe; its penalty chosen by scikit-learn's
  efficient leave-one-out over a small grid);
- ``random_forest_regressor``: scikit-learn's random forest, saved as its trees' node arrays (never pickled); the
  spread of its trees' predictions is the per-pixel uncertainty;
- ``xgboost_regressor``: XGBoost's squared-error boosting, saved as XGBoost UBJSON;
- ``knn_regressor``: the mean of the k nearest training pixels (standardised features); their spread is the
  uncertainty.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..core.errors import ModelFileError
from ..core.numbers import mean_and_scale
from .base import Probe, State
from .boosting import _xgboost


class Regressor(Probe):
    """A probe that predicts a number: :meth:`fit_values`, :meth:`predict_value` and :meth:`predict_spread`."""

    target = "value"
    #: What :meth:`predict_spread` measures, in words (``None``: the probe gives no per-pixel uncertainty).
    spread: str | None = None

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int = 0) -> Regressor:
        """Fit on features ``x`` and values ``y`` (``n_classes`` is ignored)."""
        return self.fit_values(np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64"))

    def fit_values(self, x: np.ndarray, y: np.ndarray) -> Regressor:
        """Fit on features ``x`` (n, f) and values ``y`` (n,)."""
        raise NotImplementedError

    def predict_spread(self, x: np.ndarray) -> np.ndarray | None:
        """A per-pixel uncertainty in the values' unit (the spread of the trees or neighbours), or ``None``."""
        return None

    def predict_value_and_spread(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`predict_value` and :meth:`predict_spread` together (the ensembles walk their members once)."""
        return self.predict_value(x), self.predict_spread(x)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Not a classifier: use :meth:`predict_value`."""
        raise NotImplementedError("a regression probe maps a value, not classes")


class RidgeRegressor(Regressor):
    """Ridge regression on standardised features, applied as one dot product."""

    name = "ridge"
    label = "Ridge regression (scaled)"

    def fit_values(self, x: np.ndarray, y: np.ndarray) -> RidgeRegressor:
        """Standardise, then fit scikit-learn's ``RidgeCV`` (alphas 0.01 to 1,000)."""
        # Lazy: scikit-learn takes half a second to import.
        from sklearn.linear_model import RidgeCV

        self.mean_, self.scale_ = mean_and_scale(x)
        model = RidgeCV(alphas=np.logspace(-2, 3, 11)).fit((x - self.mean_) / self.scale_, y)
        self.alpha_ = float(model.alpha_)
        self.weights_ = (model.coef_ / self.scale_).astype("float64")
        self.bias_ = float(model.intercept_ - (model.coef_ * self.mean_ / self.scale_).sum())
        return self

    def predict_value(self, x: np.ndarray) -> np.ndarray:
        """``x @ w + b``."""
        return (np.asarray(x, dtype="float64") @ self.weights_ + self.bias_).astype("float32")

    def state(self) -> State:
        """Weights and bias."""
        return {"alpha": self.alpha_, "bias": self.bias_}, {"weights": self.weights_}, {}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> Probe:
        """Rebuild from arrays."""
        probe = cls()
        probe.alpha_, probe.bias_ = float(params["alpha"]), float(params["bias"])
        probe.weights_ = arrays["weights"].astype("float64")
        return probe


class ForestRegressor(Regressor):
    """scikit-learn's random forest regressor; its trees' spread is the uncertainty."""

    name = "random_forest_regressor"
    label = "Random forest"
    spread = "the standard deviation of the trees' predictions"

    def __init__(self, n_estimators: int = 100, min_samples_leaf: int = 2, seed: int = 0) -> None:
        """Keep the forest settings."""
        self.n_estimators, self.min_samples_leaf, self.seed = n_estimators, min_samples_leaf, seed

    def fit_values(self, x: np.ndarray, y: np.ndarray) -> ForestRegressor:
        """Grow the forest on every core."""
        # Lazy: scikit-learn takes half a second to import.
        from sklearn.ensemble import RandomForestRegressor

        self.model_ = RandomForestRegressor(n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                            n_jobs=self.fit_threads or -1, random_state=self.seed).fit(x, y)
        return self

    def _trees(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype="float32")
        return np.stack([t.predict(x) for t in self.model_.estimators_])

    def predict_value(self, x: np.ndarray) -> np.ndarray:
        """The mean of the trees."""
        return self._trees(x).mean(axis=0).astype("float32")

    def predict_spread(self, x: np.ndarray) -> np.ndarray | None:
        """The standard deviation of the trees' predictions."""
        return self._trees(x).std(axis=0).astype("float32")

    def predict_value_and_spread(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The trees' mean and standard deviation, from one walk of the trees."""
        trees = self._trees(x)
        return trees.mean(axis=0).astype("float32"), trees.std(axis=0).astype("float32")

    def set_threads(self, n: int) -> None:
        """Threads of one prediction call (the trees are walked one after the other)."""

    def state(self) -> State:
        """Every tree's nodes and leaf values, concatenated, with offsets."""
        states = [t.tree_.__getstate__() for t in self.model_.estimators_]
        arrays = {"nodes": np.concatenate([s["nodes"] for s in states]),
                  "values": np.concatenate([s["values"] for s in states]).astype("float64"),
                  "node_counts": np.array([s["node_count"] for s in states], dtype="int64"),
                  "max_depths": np.array([s["max_depth"] for s in states], dtype="int64")}
        params = {"n_estimators": self.n_estimators, "min_samples_leaf": self.min_samples_leaf, "seed": self.seed,
                  "n_features": int(self.model_.n_features_in_)}
        return params, arrays, {}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> Probe:
        """Rebuild the trees from their node arrays."""
        # Lazy: scikit-learn takes half a second to import.
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.tree import DecisionTreeRegressor
        from sklearn.tree._tree import Tree

        n_features = int(params["n_features"])
        trees, start = [], 0
        for count, depth in zip(arrays["node_counts"], arrays["max_depths"], strict=True):
            tree = Tree(n_features, np.array([1], dtype=np.intp), 1)
            try:
                tree.__setstate__({"max_depth": int(depth), "node_count": int(count),
                                   "nodes": arrays["nodes"][start:start + count],
                                   "values": arrays["values"][start:start + count]})
            except (ValueError, TypeError) as exc:
                raise ModelFileError(f"This random forest was saved by another scikit-learn version ({exc}); "
                                     "retrain the model.") from exc
            start += int(count)
            estimator = DecisionTreeRegressor()
            estimator.tree_, estimator.n_outputs_, estimator.n_features_in_ = tree, 1, n_features
            trees.append(estimator)
        probe = cls(int(params["n_estimators"]), int(params["min_samples_leaf"]), int(params["seed"]))
        model = RandomForestRegressor(n_estimators=len(trees))
        model.estimators_, model.n_outputs_, model.n_features_in_ = trees, 1, n_features
        probe.model_ = model
        return probe


class BoostedRegressor(Regressor):
    """XGBoost with squared error (XGBoost's defaults: 100 rounds, depth 6, learning rate 0.3)."""

    name = "xgboost_regressor"
    label = "XGBoost"

    def fit_values(self, x: np.ndarray, y: np.ndarray) -> BoostedRegressor:
        """Train a booster."""
        xgb = _xgboost()
        params = {"objective": "reg:squarederror", "max_depth": 6, "eta": 0.3, "tree_method": "hist",
                  "nthread": self.fit_threads or os.cpu_count() or 1, "seed": 0}
        self.booster_ = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=100)
        return self

    def predict_value(self, x: np.ndarray) -> np.ndarray:
        """The booster's prediction."""
        return self.booster_.inplace_predict(np.asarray(x, dtype="float32")).astype("float32")

    def set_threads(self, n: int) -> None:
        """Threads of one prediction call."""
        if hasattr(self, "booster_"):
            self.booster_.set_param({"nthread": max(1, n)})

    def state(self) -> State:
        """The booster as XGBoost UBJSON."""
        return {}, {}, {"booster.ubj": bytes(self.booster_.save_raw(raw_format="ubj"))}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> Probe:
        """Load the booster."""
        xgb = _xgboost()
        probe = cls()
        probe.booster_ = xgb.Booster()
        probe.booster_.load_model(bytearray(blobs["booster.ubj"]))
        return probe


class NeighboursRegressor(Regressor):
    """The mean of the k nearest training pixels in standardised feature space (SciPy's k-d tree)."""

    name = "knn_regressor"
    label = "k-nearest neighbours"
    spread = "the standard deviation of the nearest training samples' values"

    def __init__(self, k: int = 10) -> None:
        """Keep the number of neighbours."""
        self.k = k

    def fit_values(self, x: np.ndarray, y: np.ndarray) -> NeighboursRegressor:
        """Keep the standardised training pixels and their values."""
        self.mean_, self.scale_ = mean_and_scale(x)
        self.x_, self.y_ = ((x - self.mean_) / self.scale_).astype("float32"), y.astype("float32")
        return self

    def _neighbours(self, x: np.ndarray) -> np.ndarray:
        # Lazy: SciPy is needed here only.
        from scipy.spatial import cKDTree

        if not hasattr(self, "tree_"):
            self.tree_ = cKDTree(self.x_)
        k = min(self.k, len(self.x_))
        _, index = self.tree_.query((np.asarray(x, dtype="float32") - self.mean_) / self.scale_, k=k)
        return self.y_[index.reshape(len(x), k)]

    def predict_value(self, x: np.ndarray) -> np.ndarray:
        """The neighbours' mean."""
        return self._neighbours(x).mean(axis=1).astype("float32")

    def predict_spread(self, x: np.ndarray) -> np.ndarray | None:
        """The neighbours' standard deviation."""
        return self._neighbours(x).std(axis=1).astype("float32")

    def predict_value_and_spread(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The neighbours' mean and standard deviation, from one search."""
        values = self._neighbours(x)
        return values.mean(axis=1).astype("float32"), values.std(axis=1).astype("float32")

    def state(self) -> State:
        """The standardised training pixels and their values."""
        return {"k": self.k}, {"x": self.x_, "y": self.y_, "mean": self.mean_, "scale": self.scale_}, {}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> Probe:
        """Rebuild from arrays."""
        probe = cls(int(params["k"]))
        probe.x_, probe.y_ = arrays["x"].astype("float32"), arrays["y"].astype("float32")
        probe.mean_, probe.scale_ = arrays["mean"], arrays["scale"]
        return probe


#: The regression probes by name, in the order the automatic choice prefers them on a tie.
REGRESSORS: dict[str, type[Regressor]] = {
    p.name: p for p in (RidgeRegressor, ForestRegressor, BoostedRegressor, NeighboursRegressor)}
