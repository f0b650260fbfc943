"""The probe contract: fit on pixel features, predict class probabilities, save as data (never pickle)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

State = tuple[dict[str, Any], dict[str, "np.ndarray"], dict[str, bytes]]


#: How a probe weights classes: ``balanced`` gives every class the same total weight (rare classes count as much as
#: common ones: higher balanced accuracy, usually lower overall accuracy when one class dominates); ``none`` weights
#: every pixel alike (the training sample's class shares act as priors: usually higher overall accuracy).
CLASS_WEIGHTS = ("balanced", "none")


def check_class_weight(value: str) -> str:
    """``value`` if it is one of :data:`CLASS_WEIGHTS`.

    Raises:
        ValueError: for another value.

    """
    if value not in CLASS_WEIGHTS:
        raise ValueError(f"class_weight must be one of {', '.join(CLASS_WEIGHTS)}, not {value!r}")
    return value


def sample_weights(y: np.ndarray, n_classes: int, class_weight: str) -> np.ndarray | None:
    """:func:`balanced_weights` for ``balanced``, ``None`` (every sample alike) for ``none``."""
    return balanced_weights(y, n_classes) if class_weight == "balanced" else None


def balanced_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Sample weights that give every class the same total weight (``n / (k * n_class)``)."""
    counts = np.bincount(y, minlength=n_classes).astype("float64")
    per_class = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
    return per_class[y]


class Probe:
    """Base class: ``fit`` on features and class indices, then ``predict_proba``."""

    name: ClassVar[str]
    label: ClassVar[str]
    #: What the model maps: ``class`` (a class per pixel, with probabilities) or ``value`` (a number per pixel, from
    #: :meth:`predict_value`: a similarity, a quantity).
    target: ClassVar[str] = "class"
    #: Threads ``fit`` may use (``None``: all cores); the cross-validation that fits folds in parallel sets 1.
    fit_threads: int | None = None

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> Probe:
        """Fit on features ``x`` (n, f) and class indices ``y`` in ``0..n_classes-1``; return ``self``."""
        raise NotImplementedError

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), float32."""
        raise NotImplementedError

    def predict(self, x: np.ndarray, proba: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Class index per sample and, when ``proba``, the class probabilities (the class is the most probable)."""
        probabilities = self.predict_proba(x)
        return probabilities.argmax(axis=1), probabilities if proba else None

    def predict_value(self, x: np.ndarray) -> np.ndarray:
        """A value per sample, float32 (models whose ``target`` is ``value``)."""
        raise NotImplementedError

    def state(self) -> State:
        """The fitted state: JSON-able parameters, arrays and byte blobs."""
        raise NotImplementedError

    def set_threads(self, n: int) -> None:
        """Use ``n`` threads in ``predict_proba`` (callers that parallelise over windows set 1)."""

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> Probe:
        """Rebuild a fitted probe from :meth:`state`."""
        raise NotImplementedError


def full_proba(proba: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    """Spread probabilities over the classes a model saw into all ``n_classes`` columns."""
    full = np.zeros((len(proba), n_classes), dtype="float32")
    full[:, present] = proba
    return full
