"""Polygon-group validation never leaks; accuracy figures agree with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, f1_score

from engine.metrics import accuracy_figures, confusion_matrix
from engine.validation import cap_per_class, make_folds, polygon_group_split, spatial_block_ids


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
    assert np.isclose(figures["balanced_accuracy"], balanced_accuracy_score(truth, pred))
    assert figures["macro_f1_classes"] == ["a", "b", "c", "d"]
    assert not any(c["no_reference"] or c["never_mapped"] for c in figures["per_class"])


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_class_means_are_over_the_reference_classes() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 400)  # classes 0, 1, 2 in the reference; class 3 only in the map
    pred = np.where(rng.random(400) < 0.75, truth, 3)
    pred[pred == 2] = 1  # class 2 is never mapped
    figures = accuracy_figures(confusion_matrix(truth, pred, 4), ["a", "b", "c", "d"])
    table = {c["class"]: c for c in figures["per_class"]}
    assert figures["macro_f1_classes"] == ["a", "b", "c"]
    assert figures["macro_f1"] == pytest.approx(np.mean([table[k]["f1"] for k in "abc"]))
    assert figures["macro_f1"] == pytest.approx(f1_score(truth, pred, labels=[0, 1, 2], average="macro"))
    assert figures["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(truth, pred))
    assert figures["balanced_accuracy"] == pytest.approx(np.mean([table[k]["producers_accuracy"] for k in "abc"]))
    assert table["c"]["never_mapped"] and table["c"]["f1"] == 0.0 and table["c"]["producers_accuracy"] == 0.0
    assert table["c"]["users_accuracy"] is None and not table["c"]["no_reference"]
    assert table["d"]["no_reference"] and not table["d"]["never_mapped"]
    assert table["d"]["f1"] is None and table["d"]["producers_accuracy"] is None and table["d"]["users_accuracy"] == 0
    assert not any(table[k]["no_reference"] or table[k]["never_mapped"] for k in "ab")


def test_figures_of_an_empty_matrix() -> None:
    figures = accuracy_figures(np.zeros((2, 2), dtype=int), ["a", "b"])
    assert figures["overall_accuracy"] is None and figures["macro_f1"] is None
    assert figures["balanced_accuracy"] is None and figures["macro_f1_classes"] == []


def test_kfold_tests_every_polygon_once_and_never_splits_one() -> None:
    y, groups = make_groups()
    rows = np.arange(len(y)) // 10
    cols = np.arange(len(y)) % 10
    folds = make_folds("group_kfold", y, groups, rows, cols, n_folds=4, seed=0)
    assert len(folds) == 4
    assert np.array_equal(np.sum(folds, axis=0), np.ones(len(y)))  # each sample tested exactly once
    for test in folds:
        assert not set(groups[test]) & set(groups[~test])


def test_spatial_blocks_keep_polygons_whole_and_group_neighbours() -> None:
    y, groups = make_groups()
    # polygons laid out along a line: each polygon a run of pixels
    cols = np.arange(len(y))
    rows = np.zeros(len(y), dtype=int)
    blocks = spatial_block_ids(groups, rows, cols, block_size=100)
    for g in np.unique(groups):
        assert len(np.unique(blocks[groups == g])) == 1
    folds = make_folds("spatial_blocks", y, groups, rows, cols, n_folds=3, seed=0, block_size=100)
    for test in folds:
        assert not set(blocks[test]) & set(blocks[~test])


def test_random_pixels_is_available_but_leaks() -> None:
    y, groups = make_groups()
    (test,) = make_folds("random_pixels", y, groups, y, y, test_fraction=0.3, seed=0)
    assert set(groups[test]) & set(groups[~test])  # this is why the report calls it optimistic


def test_cap_shares_the_budget_among_polygons() -> None:
    y = np.array([0] * 1000 + [0] * 10 + [1] * 50)
    groups = np.array([1] * 1000 + [2] * 10 + [3] * 50)
    keep = cap_per_class(y, groups, max_per_class=100, seed=0)
    assert (groups[keep] == 2).sum() == 10  # the small polygon keeps everything
    assert (groups[keep] == 1).sum() == 90  # the huge one gets the rest of the budget
    assert (groups[keep] == 3).sum() == 50  # classes under the cap are untouched
    assert len(np.unique(keep)) == len(keep)
