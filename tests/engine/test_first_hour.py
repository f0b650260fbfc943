"""An analyst's first hour: a small layer, a few polygons per class, and what training tells about it."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from engine.core.errors import InputError
from engine.jobs.train_classifier import train_classifier

CRS = "EPSG:32633"
CELL = 10.0
#: Five classes in vertical stripes of 12 columns: mean value of each class in the three bands.
CLASSES = {"bare": (200, 180, 160), "forest": (30, 90, 40), "reed": (90, 140, 60), "urban": (150, 150, 150),
           "water": (20, 40, 90)}


def pixel_box(row0: int, row1: int, col0: int, col1: int) -> box:
    """The polygon covering pixels ``row0..row1-1`` x ``col0..col1-1`` of the raster."""
    top = 60 * CELL
    return box(col0 * CELL, top - row1 * CELL, col1 * CELL, top - row0 * CELL)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 60 x 60 px raster of five stripes and its labels: water and forest 3 polygons, reed 2 small ones, urban and
    bare a single polygon each; an ``OBJECTID`` numbers the features and ``label`` holds the classes."""
    folder = tmp_path_factory.mktemp("first_hour")
    rng = np.random.default_rng(0)
    data = np.zeros((3, 60, 60), dtype="float32")
    for i, means in enumerate(CLASSES.values()):
        for band, mean in enumerate(means):
            data[band, :, 12 * i:12 * (i + 1)] = mean + rng.normal(0, 5, (60, 12))
    raster = folder / "scene.tif"
    with rasterio.open(raster, "w", driver="GTiff", height=60, width=60, count=3, dtype="float32", crs=CRS,
                       transform=from_origin(0, 60 * CELL, CELL, CELL)) as dst:
        dst.write(data)
    stripe = {name: 12 * i for i, name in enumerate(CLASSES)}
    polygons = [("water", r, 5) for r in (2, 20, 40)] + [("forest", r, 5) for r in (2, 20, 40)]
    polygons += [("reed", 2, 3), ("reed", 30, 3), ("urban", 10, 5), ("bare", 10, 5)]
    gdf = gpd.GeoDataFrame(
        {"OBJECTID": range(1, len(polygons) + 1), "label": [name for name, _, _ in polygons]},
        geometry=[pixel_box(r, r + size, stripe[name] + 3, stripe[name] + 3 + size) for name, r, size in polygons],
        crs=CRS)
    labels = folder / "training_data.gpkg"
    gdf.to_file(labels)
    return raster, labels


def test_an_identifier_class_field_is_refused_before_training(tmp_path: Path, scene: tuple[Path, Path]) -> None:
    raster, labels = scene
    with pytest.raises(InputError, match=r"Field 'OBJECTID' of .*training_data.gpkg has 10 distinct values for 10 "
                                         r"features: it looks like an identifier, not a class\. Choose the class "
                                         r"field \('label' looks like one\)"):
        train_classifier(str(raster), str(labels), "OBJECTID", str(tmp_path / "m.lpmodel"))
    assert not (tmp_path / "m.lpmodel").exists()


def test_training_says_it_once_and_reports_in_plain_words(tmp_path: Path, scene: tuple[Path, Path],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    raster, labels = scene
    report = tmp_path / "report.json"
    with caplog.at_level(logging.WARNING):
        result = train_classifier(str(raster), str(labels), "label", str(tmp_path / "m.lpmodel"),
                                  method="logistic_regression", class_weight="balanced", output_report=str(report))
    single = [r.getMessage() for r in caplog.records if "single polygon" in r.getMessage()]
    assert single == ["2 classes have a single polygon, used for training and not validated: bare, urban. Draw a "
                      "second polygon for each to measure their accuracy."]
    assert result.method == "logistic_regression, classes balanced"  # the engine's name, kept
    assert result.method_label == "Logistic regression, classes balanced"

    written = json.loads(report.read_text())
    assert written["method"] == "logistic_regression" and written["method_label"] == result.method_label
    reed = next(c for c in written["validation"]["per_class"] if c["class"] == "reed")
    assert reed["reference_count"] == 9 and reed["reference_polygons"] == 1
    low, high = reed["producers_accuracy_ci"]
    assert 0 < low < reed["producers_accuracy"] <= high <= 1

    page = Path(result.output_html).read_text()
    assert not re.search(r"logistic_regression|polygon_groups|\bsvm\b|N samples", page)
    assert f"<td>Method</td><td>{result.method_label}</td>" in page  # set by the user: not "Automatic choice"
    assert "30 % of each class&#x27;s polygons held out" in page
    row = re.search(r"<tr><td class=\"l\">(?:<span[^>]*></span>)?reed</td>.*?</tr>", page)
    assert row and "95% CI" in row.group(0) and "from only 9 reference pixels of 1 polygon: uncertain" in row.group(0)
    assert "Fold overall accuracy" not in page and "Overall accuracy per fold" not in page


def test_the_automatic_choice_is_told_in_plain_words(tmp_path: Path, scene: tuple[Path, Path]) -> None:
    raster, labels = scene
    result = train_classifier(str(raster), str(labels), "label", str(tmp_path / "m.lpmodel"),
                              output_report=str(tmp_path / "r.json"))
    names = ("svm", "logistic_regression", "random_forest", "xgboost", "knn")
    assert result.method.split(" ")[0].rstrip(",") in names
    assert not any(re.search(rf"\b{n}\b", text) for n in names for text in (result.method_label,
                                                                              result.method_reason))
    page = Path(result.output_html).read_text()
    assert f"Automatic choice: {result.method_label}" in page
    assert not any(re.search(rf"\b{n}\b", page) for n in names)
