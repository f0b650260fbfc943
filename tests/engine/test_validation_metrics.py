"""Polygon-group validation never leaks; accuracy figures agree with scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import cohen_kappa_score, f1_score

from engine.metrics import accuracy_figures, confusion_matrix
from engine.validation import polygon_group_split


def make_groups(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    polygons_per_class = [5, 2, 1, 8]
    y, groups, gid = [], [], 1
    for k, n in enumerate(polygons_per_class):
        for _ in range(n):
            size = int(rng.integers(3, 40))
            y += [k] * size
            groups += [gid] * size
            gid += 1
    return np.array(y), np.array(groups)


def test_no_polygon_on_both_sides_and_every_class_trains() -> None:
    y, groups = make_groups()
    test = polygon_group_split(y, groups, 0.3, seed=1)
    assert not set(groups[test]) & set(groups[~test])
    for k in np.unique(y):
        assert (~test & (y == k)).any(), f"class {k} has no training polygon"
    assert not (test & (y == 2)).any()  # the class with one polygon is only trained on
    assert (test & (y == 1)).any()  # two polygons: one held out


def test_split_is_seeded() -> None:
    y, groups = make_groups()
    assert np.array_equal(polygon_group_split(y, groups, 0.3, 7), polygon_group_split(y, groups, 0.3, 7))
    assert any(not np.array_equal(polygon_group_split(y, groups, 0.3, 0), polygon_group_split(y, groups, 0.3, s))
               for s in range(1, 6))


def test_figures_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 500)
    pred = np.where(rng.random(500) < 0.7, truth, rng.integers(0, 4, 500))
    figures = accuracy_figures(confusion_matrix(truth, pred, 4), ["a", "b", "c", "d"])
    assert np.isclose(figures["overall_accuracy"], (truth == pred).mean())
    assert np.isclose(figures["kappa"], cohen_kappa_score(truth, pred))
    assert np.isclose(figures["macro_f1"], f1_score(truth, pred, average="macro"))
    per_class_f1 = [c["f1"] for c in figures["per_class"]]
    assert np.allclose(per_class_f1, f1_score(truth, pred, average=None))
    assert sum(c["reference_count"] for c in figures["per_class"]) == 500
