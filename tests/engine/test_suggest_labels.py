"""Where to label next: suggested points are uncertain for the model, spread out, away from the labels, carry the
model's top two classes and an empty class field; filled in as a user would, they train the next model with the
polygons in one step."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from engine.core.errors import InputError
from engine.jobs.suggest_labels import suggest_labels
from engine.jobs.train_classifier import train_classifier
from engine.probes.model_file import read_manifest


def test_suggestions_are_uncertain_spread_out_and_train_the_next_model(tmp_path: Path, sample_raster: Path,
                                                                       sample_labels: Path) -> None:
    model = tmp_path / "first.lpmodel"
    train_classifier(str(sample_raster), str(sample_labels), "class", str(model), method="logistic_regression")
    result = suggest_labels(str(sample_raster), str(model), str(tmp_path / "next.gpkg"), n_points=20,
                            labels=str(sample_labels), spacing=8)
    points = gpd.read_file(tmp_path / "next.gpkg")
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
    with pytest.raises(InputError, match=r"maps a value, not classes"):
        suggest_labels(str(sample_raster), str(tmp_path / "s.lpmodel"), str(tmp_path / "p.gpkg"))
    with pytest.raises(InputError, match=r"Unknown rule 'random'"):
        suggest_labels(str(sample_raster), str(tmp_path / "s.lpmodel"), str(tmp_path / "p.gpkg"), rule="random")
    with pytest.raises(InputError, match=r"write them as a GeoPackage"):
        suggest_labels(str(sample_raster), str(tmp_path / "s.lpmodel"), str(tmp_path / "p.shp"))
    assert not (tmp_path / "p.gpkg").exists()
