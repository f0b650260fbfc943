"""Accuracy figures from a confusion matrix: overall accuracy, kappa, per-class accuracies and F1."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts with reference classes in rows and mapped classes in columns."""
    import numpy as np

    index = y_true.astype("int64") * n_classes + y_pred.astype("int64")
    return np.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def accuracy_figures(cm: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """Overall accuracy, Cohen's kappa, per-class producer's and user's accuracy, F1 and macro F1.

    Classes absent from both the reference and the map are left out of the macro F1.
    """
    import numpy as np

    cm = np.asarray(cm, dtype="float64")
    total = cm.sum()
    diag = np.diag(cm)
    reference = cm.sum(axis=1)
    mapped = cm.sum(axis=0)
    oa = _ratio(diag.sum(), total)
    expected = (reference * mapped).sum() / total**2 if total else 0.0
    kappa = _ratio((oa or 0.0) - expected, 1.0 - expected) if oa is not None else None
    per_class = []
    f1s = []
    for i, name in enumerate(class_names):
        pa = _ratio(diag[i], reference[i])
        ua = _ratio(diag[i], mapped[i])
        f1 = _ratio(2 * diag[i], reference[i] + mapped[i])
        if reference[i] + mapped[i] > 0:
            f1s.append(f1 or 0.0)
        per_class.append({"class": name, "reference_count": int(reference[i]), "mapped_count": int(mapped[i]),
                          "producers_accuracy": pa, "users_accuracy": ua, "f1": f1})
    return {
        "n": int(total),
        "overall_accuracy": oa,
        "kappa": kappa,
        "macro_f1": float(np.mean(f1s)) if f1s else None,
        "per_class": per_class,
        "confusion_matrix": cm.astype("int64").tolist(),
        "classes": list(class_names),
    }
