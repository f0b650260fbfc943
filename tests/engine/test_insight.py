"""Learning curves draw from training polygons only and compare feature sets on the same draws; plots and report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.assess import insight
from engine.assess.insight import draw_per_class, learning_curve, learning_curve_png, projection, projection_png
from engine.assess.plots import PANEL_SIZE, PLOT_SIZE, feature_space_png, training_curve_png
from engine.assess.report import render_html
from engine.core.errors import CancelledError, InputError
from engine.core.feedback import Feedback
from engine.samples.validation import polygon_group_split

CLASSES = ["water", "forest", "crop", "urban"]
COLORS = ["#1f78b4", "#33a02c", "#ffd92f", "#e31a1c"]
POLYGONS_PER_CLASS = 10
PER_POLYGON = 30
SIZES = (5, 10, 25, 50, None)
SEPARABLE = "embeddings (separable)"
NOISE = "noise"


def make_samples(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """4 classes x 10 polygons x 30 samples: class means apart with a small polygon offset, and a noise set."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * np.eye(len(CLASSES), 6)
    xs, ys, groups = [], [], []
    gid = 100
    for k in range(len(CLASSES)):
        for _ in range(POLYGONS_PER_CLASS):
            offset = rng.normal(0.0, 0.3, 6)
            xs.append(centres[k] + offset + rng.normal(0.0, 0.6, (PER_POLYGON, 6)))
            ys += [k] * PER_POLYGON
            groups += [gid] * PER_POLYGON
            gid += 1
    x = np.concatenate(xs).astype("float32")
    noise = rng.normal(size=(len(ys), 6)).astype("float32")
    return {SEPARABLE: x, NOISE: noise}, np.array(ys), np.array(groups)


@pytest.fixture(scope="module")
def samples() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    return make_samples()


@pytest.fixture(scope="module")
def curve(samples: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]) -> dict[str, Any]:
    feature_sets, y, groups = samples
    return learning_curve(feature_sets, y, groups, "logistic_regression", CLASSES, sizes=SIZES)


def rows_by_key(curve: dict[str, Any]) -> dict[tuple[str, int | str], dict[str, Any]]:
    return {(r["features"], r["per_class"]): r for r in curve["rows"]}


def test_rows_cover_every_feature_set_and_size(curve: dict[str, Any]) -> None:
    assert curve["method"] == "logistic_regression"
    assert curve["test_fraction"] == 0.3
    assert curve["seeds"] == [0, 1, 2]
    expected = [(f, "all" if s is None else s) for f in (SEPARABLE, NOISE) for s in SIZES]
    assert [(r["features"], r["per_class"]) for r in curve["rows"]] == expected
    for r in curve["rows"]:
        assert set(r) == {"features", "per_class", "n_train", "overall_accuracy", "overall_accuracy_std", "kappa",
                          "macro_f1"}
        assert 0.0 <= r["overall_accuracy"] <= 1.0 and r["overall_accuracy_std"] >= 0.0
    assert json.loads(json.dumps(curve)) == curve  # plain JSON types only


def test_separable_features_beat_noise(curve: dict[str, Any]) -> None:
    rows = rows_by_key(curve)
    good, noise = rows[(SEPARABLE, "all")], rows[(NOISE, "all")]
    assert good["overall_accuracy"] > 0.9
    assert good["kappa"] > 0.85 and good["macro_f1"] > 0.9
    assert noise["overall_accuracy"] < 0.45  # chance is 0.25
    assert good["overall_accuracy"] > noise["overall_accuracy"] + 0.4
    assert rows[(SEPARABLE, 50)]["overall_accuracy"] > rows[(NOISE, 50)]["overall_accuracy"]


def test_training_samples_per_class_never_exceed_the_size(curve: dict[str, Any]) -> None:
    train_polygons = POLYGONS_PER_CLASS - round(0.3 * POLYGONS_PER_CLASS)
    for r in curve["rows"]:
        if r["per_class"] == "all":
            assert r["n_train"] == train_polygons * PER_POLYGON
        else:
            assert r["n_train"] <= r["per_class"]
            assert r["n_train"] == min(r["per_class"], train_polygons * PER_POLYGON)


def test_a_size_above_what_a_class_has_uses_all_of_it(
        samples: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]) -> None:
    feature_sets, y, groups = samples
    small = learning_curve({SEPARABLE: feature_sets[SEPARABLE]}, y, groups, "knn", CLASSES, sizes=(1000,),
                           seeds=(4,))
    (row,) = small["rows"]
    assert row["per_class"] == 1000
    assert row["n_train"] == 7 * PER_POLYGON


def test_draw_uses_training_polygons_only_and_spreads_over_them(
        samples: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]) -> None:
    _, y, groups = samples
    for seed in range(5):
        test = polygon_group_split(y, groups, 0.3, seed)
        previous: set[int] = set()
        for n in (1, 5, 7, 10, 25, None):
            index = draw_per_class(y, groups, ~test, n, np.random.default_rng(seed))
            assert not test[index].any(), "a held-out polygon's sample was drawn"
            assert not set(groups[index]) & set(groups[test])
            assert len(np.unique(index)) == len(index)
            for k in range(len(CLASSES)):
                own = index[y[index] == k]
                available = int((~test & (y == k)).sum())
                assert len(own) == (available if n is None else min(n, available))
                per_polygon = np.unique(groups[own], return_counts=True)[1]
                n_polygons = len(np.unique(groups[~test & (y == k)]))
                assert len(per_polygon) == min(len(own), n_polygons)  # as many polygons as possible
                assert per_polygon.max() - per_polygon.min() <= 1  # and evenly
            assert previous <= set(index.tolist()), "draws of one seed are nested"
            previous = set(index.tolist())


def test_draw_respects_any_mask() -> None:
    rng = np.random.default_rng(9)
    y = rng.integers(0, 3, 500)
    groups = rng.integers(0, 40, 500)
    mask = np.isin(groups, rng.choice(40, 15, replace=False))
    index = draw_per_class(y, groups, mask, 8, np.random.default_rng(1))
    assert mask[index].all()
    assert np.bincount(y[index], minlength=3).max() <= 8
    assert len(draw_per_class(y, groups, np.zeros(500, bool), 8, np.random.default_rng(1))) == 0


def test_feature_sets_share_splits_and_draws(samples: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    feature_sets, y, groups = samples
    calls: list[tuple[int, np.ndarray, np.ndarray]] = []
    original = insight._fit_and_score

    def recording(probe_class: Any, x: np.ndarray, *args: Any) -> dict[str, Any]:
        _, train, test, _ = args
        name = next(n for n, v in feature_sets.items() if v is x)
        calls.append((name, train.copy(), test.copy()))
        return original(probe_class, x, *args)

    monkeypatch.setattr(insight, "_fit_and_score", recording)
    learning_curve(feature_sets, y, groups, "logistic_regression", CLASSES, sizes=(5, None), seeds=(0, 1))
    assert len(calls) == 2 * 2 * 2
    for (name_a, train_a, test_a), (name_b, train_b, test_b) in zip(calls[::2], calls[1::2], strict=True):
        assert (name_a, name_b) == (SEPARABLE, NOISE)
        assert np.array_equal(train_a, train_b) and np.array_equal(test_a, test_b)  # paired
        assert not test_a[train_a].any()
        assert not set(groups[train_a]) & set(groups[test_a])  # no polygon on both sides


class Recorder(Feedback):
    def __init__(self) -> None:
        super().__init__()
        self.reports: list[tuple[float, str | None]] = []

    def _report(self, fraction: float, message: str | None) -> None:
        self.reports.append((fraction, message))


def test_progress_once_per_fit_and_cancel(samples: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]) -> None:
    feature_sets, y, groups = samples
    feedback = Recorder()
    learning_curve(feature_sets, y, groups, "knn", CLASSES, sizes=(5, 10), seeds=(0,), feedback=feedback)
    assert len(feedback.reports) == 2 * 2
    assert [f for f, _ in feedback.reports] == sorted(f for f, _ in feedback.reports)
    assert feedback.reports[-1][0] == 1.0 and "noise" in (feedback.reports[-1][1] or "")
    cancelled = Recorder()
    cancelled.cancel()
    with pytest.raises(CancelledError):
        learning_curve(feature_sets, y, groups, "knn", CLASSES, sizes=(5,), seeds=(0,), feedback=cancelled)


def test_bad_inputs_are_refused(samples: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]) -> None:
    feature_sets, y, groups = samples
    with pytest.raises(InputError, match="polygon"):  # one polygon per class: nothing to hold out
        learning_curve(feature_sets, y, y, "knn", CLASSES, sizes=(5,))
    with pytest.raises(InputError, match="shape"):
        learning_curve({"short": feature_sets[NOISE][:10]}, y, groups, "knn", CLASSES)
    with pytest.raises(InputError, match="sizes"):
        learning_curve(feature_sets, y, groups, "knn", CLASSES, sizes=(0,))
    with pytest.raises(InputError, match="method"):
        learning_curve(feature_sets, y, groups, "no_such_probe", CLASSES)


def read_png(path: Path) -> np.ndarray:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(str(path))


def distinct_colours(image: np.ndarray) -> int:
    rgb = (image[..., :3] * 255).round().astype("int64")
    return len(np.unique(rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2]))


def test_learning_curve_png(curve: dict[str, Any], tmp_path: Path) -> None:
    path = learning_curve_png(curve, tmp_path / "sub" / "curve.png")
    assert path == tmp_path / "sub" / "curve.png"
    assert path.stat().st_size > 10_000
    image = read_png(path)
    assert image.shape[:2] == (500, 800)
    assert distinct_colours(image) > 20


def test_projection_png_with_tsne(samples: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray],
                                  tmp_path: Path) -> None:
    feature_sets, y, _ = samples
    result = projection_png(feature_sets[SEPARABLE], y, CLASSES, COLORS, tmp_path / "projection.png",
                            max_points=300, seed=1)
    assert result["methods"] == ["PCA", "t-SNE"]
    assert result["n_points"] == 300 and result["n_samples"] == len(y)
    variance = result["pca_explained_variance"]
    assert len(variance) == 2 and variance[0] >= variance[1] > 0 and sum(variance) <= 1.0 + 1e-9
    assert result["perplexity"] == 30.0
    image = read_png(Path(result["png"]))
    assert image.shape[1] > image.shape[0] * 2  # two panels side by side
    assert distinct_colours(image) > 20
    assert json.loads(json.dumps(result)) == result


def test_projection_skips_tsne_above_tsne_max(samples: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray],
                                              tmp_path: Path) -> None:
    feature_sets, y, _ = samples
    result = projection_png(feature_sets[SEPARABLE], y, CLASSES, COLORS, tmp_path / "pca.png", max_points=400,
                            tsne_max=399)
    assert result["methods"] == ["PCA"] and "perplexity" not in result
    assert result["n_points"] == 400
    image = read_png(tmp_path / "pca.png")
    assert image.shape[1] < image.shape[0] * 1.5  # one panel
    assert distinct_colours(image) > 10


def test_projection_is_plain_data_that_the_plot_draws(samples: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray],
                                                       tmp_path: Path) -> None:
    feature_sets, y, _ = samples
    computed = projection(feature_sets[SEPARABLE], y, max_points=200, tsne_max=100)
    assert computed["methods"] == ["PCA"] and list(computed["coordinates"]) == ["PCA"]
    assert computed["coordinates"]["PCA"].shape == (200, 2) and computed["y"].shape == (200,)
    assert computed["n_points"] == 200 and computed["n_samples"] == len(y)
    path = feature_space_png(computed, CLASSES, COLORS, tmp_path / "space.png")
    assert read_png(path).shape[:2] == (100 * PANEL_SIZE[1], 100 * PANEL_SIZE[0])  # one panel


def test_training_curve_png_in_the_shared_style(tmp_path: Path) -> None:
    import matplotlib

    grid = matplotlib.rcParams["axes.grid"]
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_acc": 0.5 + e / 20, "lr": 1e-3}
               for e in range(1, 6)]
    for name, epochs in (("full", history), ("no_validation", [{"epoch": 1, "train_loss": 0.9}])):
        path = training_curve_png(epochs, tmp_path / f"{name}.png")
        image = read_png(path)
        assert image.shape[:2] == (100 * PLOT_SIZE[1], 100 * PLOT_SIZE[0])
        assert distinct_colours(image) > 10
    assert matplotlib.rcParams["axes.grid"] == grid  # the style applies while a plot is drawn, not after


def test_stratified_subsample_keeps_classes_in_proportion() -> None:
    y = np.repeat([0, 1, 2], [900, 90, 3])
    keep = insight._stratified_subsample(y, 100, np.random.default_rng(0))
    counts = np.bincount(y[keep], minlength=3)
    assert len(keep) == 100 and len(np.unique(keep)) == 100
    assert counts[2] >= 1 and abs(counts[0] - 90) <= 2 and abs(counts[1] - 9) <= 2


def test_report_renders_curve_and_projection(curve: dict[str, Any], samples: tuple[dict[str, np.ndarray],
                                             np.ndarray, np.ndarray], tmp_path: Path) -> None:
    feature_sets, y, _ = samples
    png = learning_curve_png(curve, tmp_path / "curve.png")
    projection = projection_png(feature_sets[SEPARABLE], y, CLASSES, COLORS, tmp_path / "proj.png",
                                max_points=200, tsne_max=100)
    named = {**curve, "rows": [*curve["rows"], {**curve["rows"][0], "features": "<b>bands</b>"}]}
    page = render_html({"title": "Insight", "learning_curve": {**named, "png": str(png)},
                        "projection": projection})
    assert "<h2>Learning curve</h2>" in page and "<h2>Feature space</h2>" in page
    assert page.count("data:image/png;base64,") == 2
    assert 'src="http' not in page and "&lt;b&gt;bands&lt;/b&gt;" in page and "<b>bands</b>" not in page
    for r in curve["rows"]:
        assert f"{r['overall_accuracy'] * 100:.1f} ± {r['overall_accuracy_std'] * 100:.1f} %" in page
        assert f"{r['kappa']:.3f}" in page and f"{r['macro_f1']:.3f}" in page
    variance = projection["pca_explained_variance"]
    assert f"PC1 {variance[0]:.1%}" in page and f"PC2 {variance[1]:.1%}" in page
    assert "PCA of 200 labelled samples" in page


def test_report_without_the_sections_is_unchanged(tmp_path: Path) -> None:
    base = {"title": "Plain", "training": {"method": "svm"}}
    page = render_html(base)
    assert "Learning curve" not in page and "Feature space" not in page and "data:image" not in page
    missing = render_html({**base, "learning_curve": {"rows": [], "png": str(tmp_path / "gone.png")}})
    assert "Plot not found" in missing and "data:image" not in missing
    assert missing.replace(missing[missing.index("<h2>Learning curve</h2>"):missing.index("<footer>")], "") == page
