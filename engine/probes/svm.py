"""Support vector machine with an RBF kernel, the default probe: trained with libsvm, applied with numpy alone.

Training: features standardised, ``C=1``, ``gamma = 1 / n_features`` (scikit-learn's ``"scale"`` on standardised
features), classes weighted by their inverse frequency with at most ``max_samples_per_class`` random pixels per class,
or unweighted with a uniform draw of the same total (which keeps the classes' shares); libsvm's cost grows with the
square of the samples, and the support vectors set the prediction cost.

Prediction reproduces libsvm's one-vs-one vote exactly, from the support vectors and their weights: the class of a
pixel is the one that wins the most pairwise contests (ties go to the first class, as in libsvm). The
probabilities are the pairwise decision values coupled into class scores, ``p_i ∝ prod_j sigmoid(2 d_ij)``: they
rank the classes and measure how clear the vote was, but they are not calibrated frequencies.
"""

from __future__ import annotations

import logging
from itertools import combinations
from typing import Any

import numpy as np

from ..core.numbers import mean_and_scale
from .base import Probe, State, check_class_weight

logger = logging.getLogger(__name__)

CHUNK = 4096  # pixels per kernel block: CHUNK x n_support float32 values


class SvmProbe(Probe):
    """RBF support vector machine on standardised features, classes balanced (default) or unweighted."""

    name = "svm"
    label = "Support vector machine (RBF kernel)"

    def __init__(self, c: float = 1.0, max_samples_per_class: int = 1000, seed: int = 0,
                 class_weight: str = "balanced") -> None:
        """Keep the regularisation ``c``, the per-class sample cap, the sampling seed and the class weighting."""
        self.c = c
        self.max_samples_per_class = max_samples_per_class
        self.seed = seed
        self.class_weight = check_class_weight(class_weight)

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> SvmProbe:
        """Subsample each class, standardise, fit libsvm and keep the support vectors with their pair weights."""
        # Lazy: scikit-learn takes half a second to import, and not every job needs it here.
        from sklearn.svm import SVC

        rng = np.random.default_rng(self.seed)
        if self.class_weight == "balanced":  # at most the cap per class
            keep = np.concatenate([
                idx if len(idx) <= self.max_samples_per_class else rng.choice(idx, self.max_samples_per_class, False)
                for idx in (np.flatnonzero(y == k) for k in np.unique(y))
            ])
        else:  # unweighted: a uniform draw of the same total keeps the classes' shares (their priors)
            budget = self.max_samples_per_class * len(np.unique(y))
            keep = np.arange(len(y)) if len(y) <= budget else rng.choice(len(y), budget, replace=False)
        x, y = np.asarray(x, dtype="float64")[np.sort(keep)], y[np.sort(keep)]
        self.mean_, self.scale_ = mean_and_scale(x)
        self.gamma_ = 1.0 / x.shape[1]
        self.n_classes_ = n_classes
        present = np.unique(y)
        self.present_ = present.astype("int64")
        if len(present) == 1:  # nothing to separate: every pixel gets the one class seen
            self.support_ = np.zeros((0, x.shape[1]), dtype="float32")
            self.pair_weights_ = np.zeros((0, 0), dtype="float32")
            self.intercept_ = np.zeros(0, dtype="float32")
            return self
        svc = SVC(C=self.c, kernel="rbf", gamma=self.gamma_, cache_size=500,
                  class_weight="balanced" if self.class_weight == "balanced" else None)
        svc.fit((x - self.mean_) / self.scale_, y)
        self.support_ = svc.support_vectors_.astype("float32")
        starts = np.concatenate([[0], np.cumsum(svc.n_support_)])
        pairs = list(combinations(range(len(present)), 2))
        weights = np.zeros((len(self.support_), len(pairs)), dtype="float64")
        for p, (i, j) in enumerate(pairs):  # libsvm's layout: the coefficients of class i's vectors for pair (i, j)
            weights[starts[i]:starts[i + 1], p] = svc.dual_coef_[j - 1, starts[i]:starts[i + 1]]
            weights[starts[j]:starts[j + 1], p] = svc.dual_coef_[i, starts[j]:starts[j + 1]]
        intercept = svc.intercept_.astype("float64")
        if len(present) == 2:  # scikit-learn flips the binary problem's sign so that positive means classes_[1]
            weights, intercept = -weights, -intercept
        self.pair_weights_ = weights.astype("float32")
        self.intercept_ = intercept.astype("float32")
        logger.info("SVM: %d support vectors from %d pixels (the cost of applying the model grows with them).",
                    len(self.support_), len(y))
        return self

    def _pairs(self) -> tuple[np.ndarray, np.ndarray]:
        pairs = np.array(list(combinations(range(len(self.present_)), 2)), dtype="int64").reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]

    def decision_values(self, x: np.ndarray) -> np.ndarray:
        """One-vs-one decision values, shape (n, n_pairs); positive means the pair's first class."""
        xs = np.asarray(x, dtype="float32") - self.mean_.astype("float32")
        xs *= (1 / self.scale_).astype("float32")
        out = np.empty((len(xs), self.pair_weights_.shape[1]), dtype="float32")
        support = self.support_.T * np.float32(2 * self.gamma_)
        support_term = np.float32(self.gamma_) * (self.support_ * self.support_).sum(axis=1)
        for start in range(0, len(xs), CHUNK):
            block = xs[start:start + CHUNK]
            kernel = block @ support  # exp(-g |x - s|^2) = exp(2g x.s - g |s|^2 - g |x|^2)
            kernel -= support_term
            kernel -= np.float32(self.gamma_) * (block * block).sum(axis=1, keepdims=True)
            np.minimum(kernel, 0, out=kernel)
            np.exp(kernel, out=kernel)
            np.matmul(kernel, self.pair_weights_, out=out[start:start + CHUNK])
        out += self.intercept_
        return out

    def predict(self, x: np.ndarray, proba: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """The one-vs-one vote winner and, when asked for, the coupled class scores."""
        n, k = len(x), len(self.present_)
        if k == 1:
            scores = np.zeros((n, self.n_classes_), dtype="float32")
            scores[:, self.present_[0]] = 1
            return np.full(n, self.present_[0], dtype="int64"), scores if proba else None
        first, second = self._pairs()
        decisions = self.decision_values(x)
        votes = np.zeros((n, k), dtype="int16")
        for p, (i, j) in enumerate(zip(first, second, strict=True)):
            wins = decisions[:, p] > 0
            votes[:, i] += wins
            votes[:, j] += ~wins
        classes = self.present_[votes.argmax(axis=1)]
        if not proba:
            return classes, None
        log_score = np.zeros((n, k), dtype="float32")
        for p, (i, j) in enumerate(zip(first, second, strict=True)):
            d2 = 2 * decisions[:, p]
            log_sigmoid = -np.logaddexp(0, -d2)  # log sigmoid(2d); log sigmoid(-2d) = log sigmoid(2d) - 2d
            log_score[:, i] += log_sigmoid
            log_score[:, j] += log_sigmoid - d2
        log_score -= log_score.max(axis=1, keepdims=True)
        np.exp(log_score, out=log_score)
        log_score /= log_score.sum(axis=1, keepdims=True)
        scores = np.zeros((n, self.n_classes_), dtype="float32")
        scores[:, self.present_] = log_score
        return classes, scores

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """The coupled class scores (see the module's notes)."""
        return self.predict(x)[1]  # type: ignore[return-value]

    def state(self) -> State:
        """Support vectors, pair weights, intercepts and the standardisation as arrays."""
        params = {"c": self.c, "max_samples_per_class": self.max_samples_per_class, "seed": self.seed,
                  "gamma": self.gamma_, "n_classes": self.n_classes_, "class_weight": self.class_weight}
        arrays = {"support": self.support_, "pair_weights": self.pair_weights_, "intercept": self.intercept_,
                  "present": self.present_, "mean": self.mean_, "scale": self.scale_}
        return params, arrays, {}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> Probe:
        """Rebuild from arrays."""
        probe = cls(float(params["c"]), int(params["max_samples_per_class"]), int(params["seed"]),
                    str(params.get("class_weight", "balanced")))
        probe.gamma_, probe.n_classes_ = float(params["gamma"]), int(params["n_classes"])
        probe.support_ = arrays["support"].astype("float32")
        probe.pair_weights_ = arrays["pair_weights"].astype("float32")
        probe.intercept_ = arrays["intercept"].astype("float32")
        probe.present_ = arrays["present"].astype("int64")
        probe.mean_, probe.scale_ = arrays["mean"], arrays["scale"]
        return probe
