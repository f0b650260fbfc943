"""XGBoost: gradient-boosted trees, predicted through :mod:`engine.accel` when its check passes."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from ..accel import tree_predictor
from ..accel.tree_predictor import LazyPredictor, TreePredictor, from_softprob_booster
from ..accel.tree_predictor import build as build_trees
from ..core.errors import MissingDependencyError
from .base import Probe, State, check_class_weight, sample_weights

logger = logging.getLogger(__name__)


def _xgboost() -> Any:
    try:
        # Lazy: optional: a missing XGBoost is reported when this method runs.
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
