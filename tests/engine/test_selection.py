"""The automatic method: candidates, leak-free folds, the choice made on training polygons only, the report."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from engine.assess import selection
from engine.core.errors import InputError
from engine.io.labels import LabelClass, Samples
from engine.jobs.train_classifier import train_classifier, validate
from engine.probes.model_file import read_manifest
from engine.samples.classes import drop_empty_classes
from engine.samples.validation import polygon_group_split


def _square_polygons(n_per_class: int, n_classes: int, size: int, gap: int, seed: int = 0):
    """Pixels of separate ``size`` x ``size`` polygons on a grid, ``gap`` px apart: y, groups, rows, cols."""
    del seed
    ys, groups, rows, cols = [], [], [], []
    group = 0
    per_row = 10
    for k in range(n_classes):
        for _ in range(n_per_class):
            r0, c0 = (group // per_row) * (size + gap), (group % per_row) * (size + gap)
            rr, cc = np.mgrid[r0:r0 + size, c0:c0 + size]
            ys.append(np.full(rr.size, k))
            groups.append(np.full(rr.size, group + 1))
            rows.append(rr.ravel())
            cols.append(cc.ravel())
            group += 1
    return (np.concatenate(ys), np.concatenate(groups), np.concatenate(rows), np.concatenate(cols))


def test_the_grid_holds_every_method_with_and_without_class_weights() -> None:
    names = [c.name for c in selection.candidates("auto", "auto")]
    assert len(names) == len(set(names))
    methods = {c.method for c in selection.candidates("auto", "auto")}
    assert methods == set(selection.GRID) == {"logistic_regression", "svm", "xgboost", "random_forest", "knn"}
    assert {c.class_weight for c in selection.candidates("auto", "auto") if c.method == "svm"} == {"balanced", "none"}
    # every probe's own defaults are a candidate: the automatic choice can fall back on any single method
    assert any(c.method == "svm" and dict(c.params) == {"c": 1.0} for c in selection.candidates("auto", "none"))
    single = selection.candidates("random_forest", "auto")
    assert [(c.method, c.class_weight) for c in single] == [("random_forest", "balanced"), ("random_forest", "none")]
    assert [c.class_weight for c in selection.candidates("knn", "balanced")] == ["none"]  # k-NN takes no weights
    assert [c.class_weight for c in selection.candidates("svm", "none")] == ["none"]
    # many features (a hyperspectral cube, an embedding raster): the linear model is preferred, then the SVM
    wide = selection.candidates("auto", "auto", n_features=selection.HIGH_DIMENSIONAL + 1)
    assert [c.method for c in wide][:7] == ["logistic_regression"] * 6 + ["svm"]
    assert sorted(c.name for c in wide) == sorted(names)
    assert selection.candidates("auto", "auto", n_features=8)[0].method == "svm"
    # one class over 3/4 of the pixels and the objective overall accuracy: unweighted before balanced
    flipped = selection.candidates("auto", "auto", unweighted_first=True)
    assert [(c.method, c.class_weight) for c in flipped][:2] == [("svm", "none"), ("svm", "balanced")]
    assert sorted(c.name for c in flipped) == sorted(names)


def test_unknown_options_are_refused_with_the_choices() -> None:
    with pytest.raises(InputError, match=r"objective 'kappa'.*overall_accuracy"):
        selection.check_options("auto", "kappa", "auto")
    with pytest.raises(InputError, match=r"class weighting 'equal'.*balanced"):
        selection.check_options("auto", "overall_accuracy", "equal")
    with pytest.raises(InputError, match="Unknown method 'svn'"):
        selection.check_options("svn", "overall_accuracy", "auto")


def test_objectives_from_a_confusion_matrix() -> None:
    cm = np.array([[90, 10, 0], [5, 5, 0], [0, 0, 0]])  # class 3 has no reference pixel
    assert selection.objective_score(cm, "overall_accuracy") == pytest.approx(95 / 110)
    assert selection.objective_score(cm, "balanced_accuracy") == pytest.approx((0.9 + 0.5) / 2)
    f1 = [2 * 90 / (100 + 95), 2 * 5 / (10 + 15)]
    assert selection.objective_score(cm, "macro_f1") == pytest.approx(np.mean(f1))


def test_touching_and_tiny_polygons_get_spatial_block_folds() -> None:
    rows, cols = np.mgrid[0:30, 0:30]
    rows, cols = rows.ravel(), cols.ravel()
    one_pixel = np.arange(1, rows.size + 1)  # a ground-truth raster turned into one polygon per pixel
    assert selection.touching_share(one_pixel, rows, cols) == 1.0
    scheme, why = selection.fold_scheme(one_pixel, rows, cols)
    assert scheme == "spatial_blocks" and "tiny" in why
    _, groups, r, c = _square_polygons(6, 2, size=5, gap=3)
    assert selection.touching_share(groups, r, c) == 0.0
    assert selection.fold_scheme(groups, r, c)[0] == "group_kfold"
    _, groups, r, c = _square_polygons(6, 2, size=5, gap=0)  # fields digitised edge to edge
    assert selection.touching_share(groups, r, c) == 1.0
    scheme, why = selection.fold_scheme(groups, r, c)
    assert scheme == "spatial_blocks" and "touch" in why


def test_one_pixel_polygons_are_chosen_on_spatial_blocks() -> None:
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:40, 0:40]
    rows, cols = rows.ravel(), cols.ravel()
    y = ((rows // 10 + cols // 10) % 2).astype("int64")  # a checkerboard of 10 px fields
    x = np.stack([y + rng.normal(0, 0.8, y.size), rng.normal(0, 1, y.size)], axis=1).astype("float32")
    groups = np.arange(1, y.size + 1)
    choice = selection.choose(x, y, groups, rows, cols, 2, method="logistic_regression", class_weight="auto")
    assert choice.report["scheme"] == "spatial_blocks"
    assert choice.report["n_folds"] >= 2


def _linear_here_xor_there(seed: int = 0):
    """Training polygons separable by a line; held-out polygons (of ``polygon_group_split``) in XOR quadrants."""
    rng = np.random.default_rng(seed)
    y, groups, rows, cols = _square_polygons(20, 2, size=4, gap=2, seed=seed)
    test = polygon_group_split(y, groups, 0.3, seed)
    x = np.zeros((len(y), 2), dtype="float32")
    train = ~test
    x[train, 0] = np.where(y[train] == 1, 2.0, -2.0) + rng.normal(0, 0.3, train.sum())
    x[train, 1] = rng.normal(0, 1, train.sum())
    # held out: far from the training samples, classes in opposite quadrants, which no line separates
    for g in np.unique(groups[test]):
        members = groups == g
        sign = rng.choice([-1.0, 1.0])
        centre = np.array([20 + 3 * sign, 20 + 3 * sign * (1 if y[members][0] == 0 else -1)])
        x[members] = centre + rng.normal(0, 0.3, (members.sum(), 2))
    return x, y, groups, rows, cols, test


def test_the_choice_never_sees_the_held_out_polygons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selection, "GRID", {"logistic_regression": [{"c": 1.0}], "knn": [{}]})
    x, y, groups, rows, cols, test = _linear_here_xor_there()
    # with the held-out polygons, k-NN would win (no line separates their classes) ...
    everything = selection.choose(x, y, groups, rows, cols, 2, "auto", class_weight="none")
    assert everything.candidate.method == "knn"
    # ... on the training polygons alone, logistic regression does as well and comes first in this grid
    alone = selection.choose(x[~test], y[~test], groups[~test], rows[~test], cols[~test], 2, "auto",
                             class_weight="none")
    assert alone.candidate.method == "logistic_regression"
    seen: list[np.ndarray] = []
    real_choose = selection.choose

    def spy(x_, y_, groups_, *args, **kwargs):
        seen.append(np.unique(groups_))
        return real_choose(x_, y_, groups_, *args, **kwargs)

    monkeypatch.setattr("engine.jobs.train_classifier.choose", spy)
    classes = [LabelClass(1, "a", "#000000"), LabelClass(2, "b", "#ffffff")]
    samples = Samples(x=x, y=y, groups=groups, rows=rows, cols=cols, classes=classes)
    figures, choice = validate(samples, "auto", "polygon_groups", 0.3, seed=0, class_weight="none")
    assert choice is not None and choice.candidate.method == "logistic_regression"
    assert len(seen) == 1 and not np.isin(seen[0], np.unique(groups[test])).any()
    assert choice.report["n_samples"] == int((~test).sum())
    assert figures["fold_winners"] == [choice.candidate.name]
    assert figures["overall_accuracy"] < 0.8  # a line cannot map the XOR polygons: the held-out test says so


def test_k_fold_validation_chooses_inside_every_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selection, "GRID", {"logistic_regression": [{"c": 1.0}], "knn": [{}]})
    x, y, groups, rows, cols, _ = _linear_here_xor_there(1)
    seen: list[int] = []
    real_choose = selection.choose

    def spy(x_, *args, **kwargs):
        seen.append(len(x_))
        return real_choose(x_, *args, **kwargs)

    monkeypatch.setattr("engine.jobs.train_classifier.choose", spy)
    classes = [LabelClass(1, "a", "#000000"), LabelClass(2, "b", "#ffffff")]
    samples = Samples(x=x, y=y, groups=groups, rows=rows, cols=cols, classes=classes)
    figures, choice = validate(samples, "auto", "group_kfold", n_folds=4, class_weight="none")
    assert choice is None  # no single held-out split: the final choice is made on all labels
    assert len(seen) == figures["n_folds"] == 4 and all(n < len(y) for n in seen)


def test_the_report_lists_every_candidate_and_why_the_winner_won() -> None:
    rng = np.random.default_rng(3)
    y, groups, rows, cols = _square_polygons(8, 3, size=5, gap=2)
    x = (np.eye(3)[y] * 1.5 + rng.normal(0, 1, (len(y), 3))).astype("float32")
    choice = selection.choose(x, y, groups, rows, cols, 3, objective="balanced_accuracy")
    report = choice.report
    assert report["objective"] == "balanced_accuracy" and "rare classes" in report["objective_label"]
    names = [c["name"] for c in report["candidates"]]
    assert names == [c.name for c in selection.candidates("auto", "auto")]
    scored = [c for c in report["candidates"] if c["status"] == "scored"]
    assert selection.FINALISTS <= len(scored) <= selection.FINALISTS + 1  # the preferred candidate is kept in
    assert all(c["score"] is not None and c["seconds"] >= 0 and c["score_std"] >= 0 for c in report["candidates"])
    winner = next(c for c in scored if c["name"] == choice.candidate.name == report["winner"])
    assert winner["gap"] <= winner["gap_se"]  # it trails the best by at most one standard error, fold by fold ...
    first = next(c for c in scored if c["gap"] <= c["gap_se"])
    assert winner is first  # ... and is the first such in the order of preference
    assert max(scored, key=lambda c: c["score"])["gap"] == 0
    assert report["winner"] in report["reason"] and "balanced accuracy" in report["reason"]
    assert report["class_weight"]["used"] == choice.candidate.as_dict()["class_weight"]
    assert report["scheme"] == "group_kfold" and report["n_folds"] == selection.N_FOLDS


def test_a_consistent_gap_wins_and_a_noisy_one_does_not() -> None:
    best = {"name": "b", "score": 0.80, "score_std": 0.2, "fold_scores": [0.6, 0.9, 0.7, 1.0, 0.8]}
    steady = {"name": "s", "score": 0.78, "fold_scores": [0.58, 0.88, 0.68, 0.98, 0.78]}  # 0.02 below on every fold
    noisy = {"name": "n", "score": 0.78, "fold_scores": [0.7, 0.8, 0.8, 0.9, 0.7]}  # sometimes above, sometimes below
    gap, se = selection._paired_gap(best, steady)
    assert gap == pytest.approx(0.02) and se == pytest.approx(0, abs=1e-12) and gap > se
    gap, se = selection._paired_gap(best, noisy)
    diffs = np.array([-0.1, 0.1, -0.1, 0.1, 0.1])
    assert gap == pytest.approx(0.02) and se == pytest.approx(diffs.std(ddof=1) * (1 / 5 + 1 / 4) ** 0.5)
    assert gap <= se


def test_too_few_polygons_fall_back_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    y, groups, rows, cols = _square_polygons(1, 2, size=4, gap=2)
    x = np.random.default_rng(0).normal(size=(len(y), 2)).astype("float32")
    with caplog.at_level(logging.WARNING):
        choice = selection.choose(x, y, groups, rows, cols, 2)
    assert choice.candidate.method == "svm" and "Not chosen by the data" in choice.report["reason"]
    assert "could not be chosen" in caplog.text


def test_a_dropped_class_is_named_and_text_codes_stay_contiguous(caplog: pytest.LogCaptureFixture) -> None:
    classes = [LabelClass(1, "barren", "#b4a078"), LabelClass(2, "forest", "#006400"),
               LabelClass(3, "urban", "#fa0000")]
    samples = Samples(x=np.zeros((4, 1)), y=np.array([0, 0, 2, 2]), groups=np.array([1, 1, 2, 2]),
                      rows=np.zeros(4), cols=np.zeros(4), classes=classes)
    with caplog.at_level(logging.WARNING):
        drop_empty_classes(samples)
    assert [(c.code, c.name) for c in samples.classes] == [(1, "barren"), (2, "urban")]
    assert samples.y.tolist() == [0, 0, 1, 1] and samples.stats["dropped_classes"] == ["forest"]
    assert "forest" in caplog.text
    numeric = [LabelClass(10, "10", "#000000"), LabelClass(20, "20", "#111111"), LabelClass(30, "30", "#222222")]
    samples = Samples(x=np.zeros((2, 1)), y=np.array([0, 2]), groups=np.array([1, 2]), rows=np.zeros(2),
                      cols=np.zeros(2), classes=numeric)
    drop_empty_classes(samples)
    assert [c.code for c in samples.classes] == [10, 30]  # codes the user chose are kept


def test_train_classifier_auto_saves_the_winner_and_reports_the_choice(
    tmp_path: Path, sample_raster: Path, sample_labels: Path
) -> None:
    model, report = tmp_path / "auto.lpmodel", tmp_path / "auto.json"
    result = train_classifier(str(sample_raster), str(sample_labels), "class", str(model), output_report=str(report),
                              objective="macro_f1")
    manifest = read_manifest(model)
    chosen = manifest["selection"]["winner_params"]
    assert manifest["method"] == chosen["method"] and result.method == chosen["name"]
    assert manifest["method_params"].get("class_weight", "none") == chosen["class_weight"]
    written = json.loads(report.read_text())
    assert written["selection"]["objective"] == "macro_f1"
    assert written["selection"]["n_samples"] < result.n_samples  # chosen on the training polygons only
    assert written["class_weight"]["used"] == chosen["class_weight"]
    assert 0.5 < result.overall_accuracy <= 1


def test_a_single_method_reports_its_class_weighting(tmp_path: Path, sample_raster: Path,
                                                      sample_labels: Path) -> None:
    report = tmp_path / "knn.json"
    train_classifier(str(sample_raster), str(sample_labels), "class", str(tmp_path / "knn.lpmodel"), method="knn",
                     output_report=str(report))
    written = json.loads(report.read_text())
    assert written["selection"]["winner"] == "knn" and written["selection"]["n_folds"] == 0
    assert written["class_weight"] == {"used": "none", "why": "k-nearest neighbours vote without class weights."}
    train_classifier(str(sample_raster), str(sample_labels), "class", str(tmp_path / "lr.lpmodel"),
                     method="logistic_regression", class_weight="none", output_report=str(report))
    assert json.loads(report.read_text())["class_weight"] == {"used": "none", "why": "Set by the user."}


def test_the_fallback_keeps_the_weighting_asked_for_and_a_failed_candidate_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engine.core.errors import MissingDependencyError

    y, groups, rows, cols = _square_polygons(1, 2, size=4, gap=2)
    x = np.random.default_rng(0).normal(size=(len(y), 2)).astype("float32")
    choice = selection.choose(x, y, groups, rows, cols, 2, class_weight="none")
    assert choice.candidate.class_weight == "none" and "Not chosen by the data" in choice.report["reason"]

    def no_xgboost(*args, **kwargs):
        raise MissingDependencyError("XGBoost is not installed in the engine's environment.")

    monkeypatch.setattr(selection, "GRID", {"svm": [{"c": 1.0}], "xgboost": [{}]})
    monkeypatch.setattr("engine.probes.registry.XGBoostProbe.fit", no_xgboost)
    y, groups, rows, cols = _square_polygons(6, 2, size=4, gap=2)
    x = (y[:, None] * 2 + np.random.default_rng(1).normal(size=(len(y), 2))).astype("float32")
    choice = selection.choose(x, y, groups, rows, cols, 2, class_weight="balanced")
    failed = [c for c in choice.report["candidates"] if c["status"] == "failed"]
    assert choice.candidate.method == "svm" and [c["method"] for c in failed] == ["xgboost"]
    assert "not installed" in failed[0]["note"]


def test_scores_on_a_class_capped_subsample_count_classes_at_their_real_shares() -> None:
    # A dominant class (90 % of the pixels) that a candidate always gets right, and a rare one it always gets wrong:
    # overall accuracy is 0.9 at the real shares, 0.5 on a subsample capped to the same count per class.
    y = np.array([0] * 10 + [1] * 10)
    x = np.zeros((20, 1), dtype="float32")
    folds = [np.arange(20) % 2 == 0, np.arange(20) % 2 == 1]

    class Always0(selection.Candidate):
        def build(self, trees=None, fit_threads=None):
            probe = selection.Candidate("knn").build()
            probe.fit = lambda x_, y_, n: probe  # type: ignore[method-assign]
            probe.set_threads = lambda n: None  # type: ignore[method-assign]
            probe.predict = lambda x_, proba=True: (np.zeros(len(x_), dtype="int64"), None)  # type: ignore
            return probe

    feedback = selection.Feedback()
    plain = selection.score_pool([Always0("knn")], x, y, folds, 2, "overall_accuracy", feedback)[0]
    assert plain["score"] == pytest.approx(0.5)
    real = selection.score_pool([Always0("knn")], x, y, folds, 2, "overall_accuracy", feedback,
                                np.array([9.0, 1.0]))[0]
    assert real["score"] == pytest.approx(0.9) and real["fold_scores"] == pytest.approx([0.9, 0.9])
    balanced = selection.score_pool([Always0("knn")], x, y, folds, 2, "balanced_accuracy", feedback,
                                    np.array([9.0, 1.0]))[0]
    assert balanced["score"] == pytest.approx(0.5)  # a class mean does not depend on the shares


def test_a_class_missing_from_a_folds_training_side_is_not_scored_there() -> None:
    # Class 2 has a single polygon: in the fold that tests it, no candidate can have learnt it.
    rng = np.random.default_rng(0)
    y, groups, rows, cols = _square_polygons(5, 2, size=4, gap=2)
    y = np.concatenate([y, np.full(16, 2)])
    groups = np.concatenate([groups, np.full(16, groups.max() + 1)])
    rows, cols = np.concatenate([rows, np.arange(16) // 4 + 50]), np.concatenate([cols, np.arange(16) % 4])
    x = (np.eye(3)[y] * 4 + rng.normal(0, 0.3, (len(y), 3))).astype("float32")
    folds = selection._folds(y, groups, rows, cols, "group_kfold", 0)
    result = selection.score_pool([selection.Candidate("logistic_regression", (("c", 1.0),))], x, y, folds, 3,
                                  "overall_accuracy", selection.Feedback())[0]
    assert result["score"] == pytest.approx(1.0)  # separable classes; the lone polygon's fold does not count it


def test_folds_fitted_in_parallel_score_as_folds_fitted_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(3), 60)
    x = rng.normal(size=(180, 4)) + y[:, None] * 0.8
    folds = [np.arange(180) % 4 == k for k in range(4)]
    candidate = selection.Candidate("random_forest", (), "balanced")
    scores = {}
    for threads in ("1", "2"):
        monkeypatch.setenv("LANDPROBE_THREADS", threads)
        assert selection._workers(len(folds)) == int(threads)
        rows = selection.score_pool([candidate, candidate], x, y, folds, 3, "overall_accuracy",
                                    selection.Feedback(), trees=12)  # 8 folds on one pool of threads
        scores[threads] = [row["fold_scores"] for row in rows]
    assert scores["1"] == scores["2"] and len(scores["1"][0]) == 4 and scores["1"][0] == scores["1"][1]


def test_the_threads_setting_is_read_once_and_a_bad_value_falls_back_to_every_core(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from engine.core.devices import cpu_threads
    from engine.core.seam import THREADS_VARIABLE

    cores = os.cpu_count() or 1
    monkeypatch.setenv(THREADS_VARIABLE, "3")
    assert cpu_threads() == 3 and selection._workers(2) == 2  # never more workers than folds
    monkeypatch.delenv(THREADS_VARIABLE)
    assert cpu_threads() == cores
    for bad in ("many", "0", "-2"):
        monkeypatch.setenv(THREADS_VARIABLE, bad)
        with caplog.at_level("WARNING"):
            assert cpu_threads() == cores
        assert f"{THREADS_VARIABLE}={bad!r} is not a positive whole number" in caplog.text
        caplog.clear()


def test_scoring_stops_tree_ensembles_early_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    assert selection.Candidate("random_forest").build(trees=7).n_estimators == 7
    assert selection.Candidate("xgboost").build(trees=7, fit_threads=1).n_estimators == 7
    assert selection.Candidate("random_forest").build().n_estimators == 100  # the model fitted in the end
    svm = selection.Candidate("svm", (("c", 10.0),)).build(trees=7, fit_threads=1)
    assert svm.fit_threads == 1 and not hasattr(svm, "n_estimators")
    # In choose: the forest at SCORING_TREES in both rounds, XGBoost only in the first (then its own 100 rounds).
    rng = np.random.default_rng(7)
    y, groups, rows, cols = _square_polygons(6, 2, size=4, gap=2)
    x = (np.eye(2)[y] + rng.normal(0, 1.0, (len(y), 2))).astype("float32")
    built: list[tuple[str, int | None]] = []
    real_fold = selection._fold_matrix

    def recording(candidate, x_, y_, test, n, weights, trees, *rest):
        built.append((candidate.method, trees))
        return real_fold(candidate, x_, y_, test, n, weights, trees, *rest)

    monkeypatch.setattr(selection, "_fold_matrix", recording)
    monkeypatch.setattr(selection, "GRID", {"svm": [{"c": 1.0}], "random_forest": [{}], "xgboost": [{}]})
    monkeypatch.setattr(selection, "FINALISTS", 6)  # every candidate reaches the second round
    selection.choose(x, y, groups, rows, cols, 2)
    first = selection.N_FOLDS * 6  # 6 candidates (each weighted or not), the first round
    assert {t for m, t in built[:first] if m != "svm"} == {selection.SCORING_TREES}
    assert {t for m, t in built[first:] if m == "random_forest"} == {selection.SCORING_TREES}
    assert {t for m, t in built[first:] if m in ("xgboost", "svm")} == {None}


def test_the_finalists_are_scored_again_on_fresh_splits(monkeypatch: pytest.MonkeyPatch) -> None:
    # On folds of their own: scored again on the folds that picked them, they would keep the luck that did.
    rng = np.random.default_rng(5)
    y, groups, rows, cols = _square_polygons(6, 3, size=4, gap=2)  # 288 px: both rounds hold every sample
    x = (np.eye(3)[y] * 1.5 + rng.normal(0, 1.0, (len(y), 3))).astype("float32")
    fits: list[str] = []
    folds_seen: dict[str, list[bytes]] = {}
    real_fold = selection._fold_matrix

    def counting(candidate, x_, y_, test, *args, **kwargs):
        fits.append(candidate.name)
        folds_seen.setdefault(candidate.name, []).append(test.tobytes())
        return real_fold(candidate, x_, y_, test, *args, **kwargs)

    monkeypatch.setattr(selection, "_fold_matrix", counting)
    report = selection.choose(x, y, groups, rows, cols, 3).report
    folds = selection.N_FOLDS
    finalists = [c["name"] for c in report["candidates"] if c["status"] == "scored"]
    assert len(finalists) >= 2 and report["n_folds"] == folds
    for c in report["candidates"]:
        scored_twice = c["name"] in finalists
        assert fits.count(c["name"]) == folds * (1 + selection.FINAL_REPEATS if scored_twice else 1), c["name"]
        if scored_twice:
            assert len(c["fold_scores"]) == folds * selection.FINAL_REPEATS
            first, second = folds_seen[c["name"]][:folds], folds_seen[c["name"]][folds:]
            assert not set(first) & set(second)  # no fold of the first round comes back in the second


def test_a_cancel_during_the_choice_stops_it_within_a_few_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.core.errors import CancelledError
    from engine.core.seam import THREADS_VARIABLE

    monkeypatch.setenv(THREADS_VARIABLE, "2")

    rng = np.random.default_rng(6)
    y, groups, rows, cols = _square_polygons(6, 3, size=4, gap=2)
    x = (np.eye(3)[y] + rng.normal(0, 1.0, (len(y), 3))).astype("float32")
    messages: list[str] = []

    class CancelAfter(selection.Feedback):
        def _report(self, fraction: float, message: str | None) -> None:
            messages.append(message or "")
            if len(messages) == 3:  # three folds done
                self.cancel()

    with pytest.raises(CancelledError):
        selection.choose(x, y, groups, rows, cols, 3, feedback=CancelAfter())
    assert set(messages) == {"Cross-validating 17 candidates, 5 folds each"}  # one line in QGIS's log, not 85
    folds_done = len(messages)
    # The folds under way finish, and those the threads finished while the progress was being reported; not the
    # 85 of the first round (17 candidates x 5 folds).
    assert folds_done < 85 // 2
