"""Logistic regression on standardised features: the linear probe."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..core.numbers import mean_and_scale
from .base import Probe, State, check_class_weight, sample_weights

logger = logging.getLogger(__name__)


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
        # Lazy: scikit-learn takes half a second to import, and not every job needs it here.
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
