"""Polygon-group validation never leaks; accuracy figures agree with scikit-learn."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, f1_score

from engine.assess.metrics import accuracy_figures, add_polygon_counts, confusion_matrix, wilson_interval
from engine.samples.validation import cap_per_class, make_folds, polygon_group_split, spatial_block_ids


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


def test_kfold_makes_no_more_folds_than_the_largest_class_has_samples() -> None:
    # a few embedding cells per class (an encoder with a large stride on small polygons): 3 samples at most
    y = np.array([0, 0, 0, 1, 1, 2, 2])
    groups = np.arange(len(y))
    folds = make_folds("group_kfold", y, groups, groups, groups, n_folds=5, seed=0)
    assert len(folds) == 3 and np.array_equal(np.sum(folds, axis=0), np.ones(len(y)))
    assert make_folds("group_kfold", np.array([0, 1]), np.array([0, 1]), np.zeros(2), np.zeros(2), n_folds=5) == []


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


def test_wilson_interval_by_hand() -> None:
    z2 = 1.96**2
    # all right: the interval is [n / (n + z^2), 1]; none right: [0, z^2 / (n + z^2)]
    assert wilson_interval(8, 8) == pytest.approx((8 / (8 + z2), 1.0))
    assert wilson_interval(8, 8)[0] == pytest.approx(0.6756, abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))
    # half right: centred on 0.5, half-width z sqrt(p q / n + z^2 / 4n^2) / (1 + z^2 / n)
    half = 1.96 * np.sqrt(0.25 / 10 + z2 / 400) / (1 + z2 / 10)
    assert wilson_interval(5, 10) == pytest.approx((0.5 - half, 0.5 + half))
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(3, 0) is None
    for successes, n in ((81, 263), (1, 7), (30, 31)):  # scipy's Wilson interval, with the exact 97.5 % quantile
        ci = binomtest(successes, n).proportion_ci(method="wilson")
        assert wilson_interval(successes, n, z=1.959964) == pytest.approx((ci.low, ci.high), abs=1e-6)


def test_per_class_figures_carry_their_intervals_and_polygons() -> None:
    truth = np.array([0] * 8 + [1] * 40)
    pred = np.array([0] * 8 + [1] * 36 + [0] * 4)
    groups = np.array([1] * 8 + [2] * 20 + [3] * 20)
    figures = accuracy_figures(confusion_matrix(truth, pred, 2), ["reed", "water"])
    add_polygon_counts(figures["per_class"], truth, pred, groups)
    reed, water = figures["per_class"]
    assert reed["producers_accuracy_ci"] == pytest.approx(list(wilson_interval(8, 8)))
    assert reed["users_accuracy_ci"] == pytest.approx(list(wilson_interval(8, 12)))
    assert water["producers_accuracy_ci"] == pytest.approx(list(wilson_interval(36, 40)))
    assert (reed["reference_polygons"], reed["mapped_polygons"]) == (1, 2)  # polygon 3 holds pixels mapped as reed
    assert (water["reference_polygons"], water["mapped_polygons"]) == (2, 2)
    empty = accuracy_figures(np.zeros((2, 2), dtype=int), ["a", "b"])["per_class"][0]
    assert empty["producers_accuracy_ci"] is None and empty["users_accuracy_ci"] is None


def test_single_polygon_classes_are_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    y = np.array([0] * 10 + [1] * 10 + [2] * 5 + [3] * 5 + [4] * 5)
    groups = np.array([1] * 5 + [2] * 5 + [3] * 5 + [4] * 5 + [5] * 5 + [6] * 5 + [7] * 5)
    names = ["water", "forest", "reed", "urban", "bare"]
    with caplog.at_level(logging.WARNING, logger="engine.samples.validation"):
        test = polygon_group_split(y, groups, 0.3, seed=0, class_names=names)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["3 classes have a single polygon, used for training and not validated: reed, urban, bare. "
                     "Draw a second polygon for each to measure their accuracy."]
    assert not test[y >= 2].any()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="engine.samples.validation"):
        polygon_group_split(y[:25], groups[:25], 0.3, seed=0, class_names=names)
    assert [r.getMessage() for r in caplog.records] == [
        "Class reed has a single polygon, used for training and not validated. Draw a second polygon to measure its "
        "accuracy."]


def test_kfold_names_the_classes_it_cannot_train_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    y, groups = make_groups()  # class "c" has a single polygon
    rows, cols = np.arange(len(y)) // 10, np.arange(len(y)) % 10
    with caplog.at_level(logging.WARNING, logger="engine.samples.validation"):
        make_folds("group_kfold", y, groups, rows, cols, n_folds=3, seed=0, class_names=["a", "b", "c", "d"])
    assert [r.getMessage() for r in caplog.records] == [
        "Class c lies in a single polygon: the fold that tests it has not learnt it, so its accuracy reads 0 %. "
        "Draw polygons of it in another part of the image."]
    caplog.clear()
    # The inner folds of the automatic choice say nothing.
    with caplog.at_level(logging.WARNING, logger="engine.samples.validation"):
        make_folds("group_kfold", y, groups, rows, cols, n_folds=3, seed=0)
    assert not caplog.records
