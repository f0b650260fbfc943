"""Where to label next: suggested points are uncertain for the model, spread out, away from the labels, carry the
model's top two classes and an empty class field; filled in as a user would, they train the next model with the
polygons in one step."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from engine.core.errors import InputError
from engine.jobs.suggest_labels import rank_candidates, suggest_labels
from engine.jobs.train_classifier import train_classifier
from engine.probes.model_file import read_manifest


def test_suggestions_are_uncertain_spread_out_and_train_the_next_model(tmp_path: Path, sample_raster: Path,
                                                                       sample_labels: Path) -> None:
    model = tmp_path / "first.lpmodel"
    train_classifier(str(sample_raster), str(sample_labels), "class", str(model), method="logistic_regression")
    result = suggest_labels(str(sample_raster), str(model), str(tmp_path / "next.gpkg"), n_points=20,
                            labels=str(sample_labels), spacing=8, output_report=str(tmp_path / "next.json"))
    points = gpd.read_file(tmp_path / "next.gpkg")
    # the rule, its settings and the points are in the report, as written to the layer
    report = json.loads((tmp_path / "next.json").read_text())["suggestions"]
    assert report["rule"] == "margin" and report["spacing"] == 8 and report["n_points"] == 20
    assert report["candidates"] > report["near_labels"] > 0 and report["pool"] == 200
    assert [p["top1"] for p in report["points"]] == list(points["top1"])
    np.testing.assert_allclose([p["x"] for p in report["points"]], points.geometry.x)
    assert report["mean_confidence"] < report["median_confidence"]
    html = Path(result.output_html or "").read_text()
    assert "Where to label next" in html and "margin: the gap between" in html and "20 places suggested" in html
    assert result.n_points == len(points) == 20 and list(points["rank"]) == list(range(1, 21))
    assert {"class", "top1", "top2", "confidence", "margin", "entropy"} <= set(points.columns)
    assert points["class"].isna().all() and (points["top1"] != points["top2"]).all()
    with rasterio.open(sample_raster) as src:
        size = abs(src.transform.a)
        labels = gpd.read_file(sample_labels).to_crs(src.crs)
    # away from the labels and from each other
    assert labels.geometry.union_all().distance(points.geometry).min() >= 8 * size - size
    xy = np.c_[points.geometry.x, points.geometry.y]
    gaps = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))[np.triu_indices(20, 1)]
    assert gaps.min() >= 8 * size - 1e-6
    # uncertain for the model: their confidence is below the typical pixel's
    from engine.jobs.classify_raster import classify_raster

    classify_raster(str(sample_raster), str(model), str(tmp_path / "map.tif"),
                    output_confidence=str(tmp_path / "conf.tif"))
    with rasterio.open(tmp_path / "conf.tif") as conf:
        confidence = conf.read(1)
    assert points["confidence"].mean() < np.median(confidence[confidence >= 0])

    # a user fills in the class of each point (here: the model's second guess), and trains again in one step
    points["class"] = points["top2"]
    points.to_file(tmp_path / "next.gpkg", layer="next")
    again = train_classifier(str(sample_raster), str(sample_labels), "class", str(tmp_path / "second.lpmodel"),
                             method="logistic_regression", more_labels=[str(tmp_path / "next.gpkg")])
    merged = gpd.read_file(tmp_path / "second.labels.gpkg")
    assert len(merged) == 30 + 20 and again.n_polygons == 50
    assert read_manifest(tmp_path / "second.lpmodel")["training"]["n_polygons"] == 50


def test_bad_requests_are_one_sentence(tmp_path: Path, sample_raster: Path, sample_labels: Path) -> None:
    from engine.jobs.similarity import similarity

    similarity(str(sample_raster), str(sample_labels), str(tmp_path / "s.tif"),
               output_model=str(tmp_path / "s.lpmodel"))
    with pytest.raises(InputError, match=r"gives no per-pixel uncertainty to rank places by"):
        suggest_labels(str(sample_raster), str(tmp_path / "s.lpmodel"), str(tmp_path / "p.gpkg"))
    with pytest.raises(InputError, match=r"Unknown rule 'random'"):
        suggest_labels(str(sample_raster), str(tmp_path / "s.lpmodel"), str(tmp_path / "p.gpkg"), rule="random")
    with pytest.raises(InputError, match=r"write them as a GeoPackage"):
        suggest_labels(str(sample_raster), str(tmp_path / "s.lpmodel"), str(tmp_path / "p.shp"))
    assert not (tmp_path / "p.gpkg").exists()


def test_rank_candidates_picks_uncertain_free_candidates_spacing_apart() -> None:
    rng = np.random.default_rng(0)
    m = 400
    rows, cols = np.divmod(rng.permutation(100 * 100)[:m], 100)
    rows[m // 2:3 * m // 4], cols[m // 2:3 * m // 4] = np.divmod(rng.permutation(40 * 40)[:m // 4], 40)  # crowded
    # half the candidates are sure (0.97 / 0.03), a quarter nearly tied (margin < 0.1), a quarter fairly sure: a
    # sure pick scores at most twice its uncertainty (spread counts up to 1), still below a tied one's
    first = np.r_[np.full(m // 2, 0.97), rng.uniform(0.52, 0.55, m // 4), rng.uniform(0.88, 0.9, m // 4)]
    taken = np.zeros(m, dtype=bool)
    taken[m // 2:m // 2 + 20] = True  # twenty of the tied ones lie near the labels: the most uncertain of all
    first[taken] = 0.5
    proba = np.c_[first, 1 - first].astype("float32")
    features = rng.normal(size=(m, 3)).astype("float32")
    for rule in ("margin", "entropy"):
        picks = rank_candidates(proba, features, rows, cols, 10, rule=rule, spacing=6, taken=taken)
        assert len(picks) == len(set(picks)) == 10
        assert all(m // 2 + 20 <= p < 3 * m // 4 for p in picks), picks  # the nearly tied, free ones only
        r, c = rows[picks].astype(float), cols[picks].astype(float)
        gaps = np.hypot(r[:, None] - r[None], c[:, None] - c[None])[np.triu_indices(10, 1)]
        assert gaps.min() >= 6
    # the greedy order starts with the most uncertain candidate
    assert rank_candidates(proba, features, rows, cols, 1, taken=taken)[0] == int(np.argmin(np.where(taken, 9, first)))
    # everything taken: nothing to suggest; an unknown rule is one sentence
    assert rank_candidates(proba, features, rows, cols, 5, taken=np.ones(m, dtype=bool)) == []
    with pytest.raises(InputError, match=r"Unknown rule 'random'"):
        rank_candidates(proba, features, rows, cols, 5, rule="random")
