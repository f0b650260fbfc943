"""Labels to samples: class codes, reprojection, nodata, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterdata import write_like
from rasterio import features

from engine.errors import InputError
from engine.labels import read_labels, sample_pixels


def burnt_count(raster: Path, labels: Path) -> int:
    """Pixels whose centre lies in a label polygon, counted independently with rasterio."""
    with rasterio.open(raster) as src:
        gdf = gpd.read_file(labels).to_crs(src.crs)
        mask = features.geometry_mask(gdf.geometry, (src.height, src.width), src.transform, invert=True)
    return int(mask.sum())


def test_text_field_gets_codes_in_name_order(sample_raster: Path, sample_labels: Path) -> None:
    samples = sample_pixels(str(sample_raster), str(sample_labels), "class")
    names = [c.name for c in samples.classes]
    assert names == sorted(gpd.read_file(sample_labels)["class"].unique())
    assert [c.code for c in samples.classes] == list(range(1, len(names) + 1))
    assert len(samples.x) == burnt_count(sample_raster, sample_labels)
    assert samples.x.shape[1] == 8
    # every polygon id maps to exactly one class
    for g in np.unique(samples.groups):
        assert len(np.unique(samples.y[samples.groups == g])) == 1


def test_integer_field_keeps_its_codes(sample_raster: Path, sample_labels: Path) -> None:
    _, classes = read_labels(str(sample_labels), "id", None)
    assert [c.code for c in classes] == sorted(gpd.read_file(sample_labels)["id"].unique().tolist())


def test_labels_in_another_crs_are_reprojected(tmp_path: Path, sample_raster: Path, sample_labels: Path) -> None:
    geographic = tmp_path / "labels_4326.gpkg"
    gpd.read_file(sample_labels).to_crs("EPSG:4326").to_file(geographic)
    native = sample_pixels(str(sample_raster), str(sample_labels), "class")
    moved = sample_pixels(str(sample_raster), str(geographic), "class")
    # a round trip through degrees moves boundaries by far less than a pixel: almost the same pixels
    assert abs(len(moved.y) - len(native.y)) <= 0.02 * len(native.y)
    assert np.bincount(moved.y).argmax() == np.bincount(native.y).argmax()


def test_nodata_pixels_are_skipped(tmp_path: Path, sample_raster: Path, sample_labels: Path) -> None:
    with rasterio.open(sample_raster) as src:
        data = src.read()
        nodata = src.nodata
    data[:, :125, :] = nodata  # the northern half becomes nodata
    holed = write_like(sample_raster, tmp_path / "holed.tif", data)
    full = sample_pixels(str(sample_raster), str(sample_labels), "class")
    half = sample_pixels(str(holed), str(sample_labels), "class")
    assert 0 < len(half.y) < len(full.y)
    assert not (half.x == nodata).all(axis=1).any()


def test_missing_field_lists_the_fields(sample_raster: Path, sample_labels: Path) -> None:
    with pytest.raises(InputError, match=r"no field 'landcover'.*class"):
        sample_pixels(str(sample_raster), str(sample_labels), "landcover")


def test_single_class_is_refused(tmp_path: Path, sample_raster: Path, sample_labels: Path) -> None:
    gdf = gpd.read_file(sample_labels)
    one = tmp_path / "one.gpkg"
    gdf[gdf["class"] == "forest"].to_file(one)
    with pytest.raises(InputError, match="single class"):
        sample_pixels(str(sample_raster), str(one), "class")


def test_labels_outside_the_raster_are_refused(tmp_path: Path, sample_raster: Path, sample_labels: Path) -> None:
    gdf = gpd.read_file(sample_labels)
    away = tmp_path / "away.gpkg"
    gdf.set_geometry(gdf.geometry.translate(xoff=1e6)).to_file(away)
    with pytest.raises(InputError, match="overlaps raster"):
        sample_pixels(str(sample_raster), str(away), "class")


def test_empty_layer_is_refused(tmp_path: Path, sample_raster: Path, sample_labels: Path) -> None:
    empty = tmp_path / "empty.gpkg"
    gpd.read_file(sample_labels).iloc[:0].to_file(empty)
    with pytest.raises(InputError, match="no features"):
        sample_pixels(str(sample_raster), str(empty), "class")


def test_colours_from_the_caller_and_a_default_palette(sample_labels: Path) -> None:
    _, classes = read_labels(str(sample_labels), "class", None, class_colors={"water": "#0000FF", "forest": "bad"})
    colors = {c.name: c.color for c in classes}
    assert colors["water"] == "#0000ff"
    assert colors["forest"].startswith("#") and len(colors["forest"]) == 7  # invalid colour: palette instead
    assert len(set(colors.values())) == len(colors)


def test_pixels_claimed_by_two_classes_are_dropped(tmp_path: Path, sample_raster: Path, sample_labels: Path) -> None:
    gdf = gpd.read_file(sample_labels)
    forest = gdf[gdf["class"] == "forest"].iloc[[0]].copy()
    forest["class"] = "urban"  # the same polygon again, claimed by another class
    overlapping = tmp_path / "overlap.gpkg"
    gpd.GeoDataFrame(pd.concat([gdf, forest]), crs=gdf.crs).to_file(overlapping)
    single = tmp_path / "single.gpkg"
    forest.to_file(single)
    clean = sample_pixels(str(sample_raster), str(sample_labels), "class")
    dirty = sample_pixels(str(sample_raster), str(overlapping), "class")
    assert dirty.stats["conflicting_pixels"] == burnt_count(sample_raster, single) > 0
    assert len(dirty.y) == len(clean.y) - dirty.stats["conflicting_pixels"]


def test_land_cover_names_get_the_colours_map_readers_expect() -> None:
    from engine.labels import PALETTE, default_colors

    colors = default_colors(["Barren", "forest", "herbaceous", "urban", "Water body", "class A", "class B"])
    assert colors[:5] == ["#b4a078", "#006400", "#b5d25f", "#fa0000", "#0064c8"]
    assert colors[5:] == list(PALETTE[:2])  # unknown names: the palette, without repeating a colour in use
    assert len(set(colors)) == len(colors)
