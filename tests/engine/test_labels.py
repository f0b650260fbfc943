"""Labels to samples: class codes, reprojection, nodata, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rasterdata import write_like
from rasterio import features

from engine.core.errors import InputError
from engine.io.labels import likely_class_field, read_labels, sample_pixels


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
    from engine.io.labels import PALETTE, default_colors

    colors = default_colors(["Barren", "forest", "herbaceous", "urban", "Water body", "class A", "class B"])
    assert colors[:5] == ["#b4a078", "#006400", "#b5d25f", "#fa0000", "#0064c8"]
    assert colors[5:] == list(PALETTE[:2])  # unknown names: the palette, without repeating a colour in use
    assert len(set(colors)) == len(colors)


@pytest.mark.parametrize("kind", ["text", "integer"])
def test_any_number_of_classes_gets_distinct_colours(tmp_path: Path, sample_raster: Path, kind: str) -> None:
    with rasterio.open(sample_raster) as src:
        left, top, res, crs = src.bounds.left, src.bounds.top, src.res[0], src.crs
    n = 60
    values = [f"class {i:02d}" for i in range(n)] if kind == "text" else [10 * i + 1 for i in range(n)]
    # two polygons per class (in two rows): one polygon per class would be refused as an identifier
    boxes = [shapely.box(left + res * (2 * i), top - res * row, left + res * (2 * i + 1), top - res * (row - 1))
             for row in (3, 6) for i in range(n)]
    values = values * 2
    path = tmp_path / "many.gpkg"
    gpd.GeoDataFrame({"cls": values}, geometry=boxes, crs=crs).to_file(path)
    samples = sample_pixels(str(sample_raster), str(path), "cls")
    colors = [c.color for c in samples.classes]
    assert len(samples.classes) == n and len(set(colors)) == n
    assert all(len(c) == 7 and c.startswith("#") for c in colors)


def test_a_table_without_geometry_is_refused_by_name(tmp_path: Path, sample_raster: Path) -> None:
    table = tmp_path / "labels.csv"
    table.write_text("id,class\n1,forest\n2,water\n")
    with pytest.raises(InputError, match=r"labels\.csv is a table without geometry"):
        sample_pixels(str(sample_raster), str(table), "class")


def test_lines_are_refused_and_collections_keep_their_polygons(tmp_path: Path, sample_raster: Path,
                                                               sample_labels: Path) -> None:
    gdf = gpd.read_file(sample_labels)
    lines = tmp_path / "lines.gpkg"
    gdf.set_geometry(gdf.geometry.boundary).to_file(lines)
    with pytest.raises(InputError, match=r"holds lines.*Buffer"):
        sample_pixels(str(sample_raster), str(lines), "class")
    # each polygon in a collection beside a line: the line is dropped, the polygon kept
    mixed = gdf.copy()
    mixed["geometry"] = [shapely.GeometryCollection([g, g.boundary]) for g in gdf.geometry]
    collections = tmp_path / "collections.gpkg"
    mixed.to_file(collections)
    expected = sample_pixels(str(sample_raster), str(sample_labels), "class")
    got = sample_pixels(str(sample_raster), str(collections), "class")
    assert np.array_equal(got.y, expected.y) and np.array_equal(got.x, expected.x)


def test_labels_whose_crs_does_not_convert_are_refused(tmp_path: Path, sample_raster: Path,
                                                       sample_labels: Path) -> None:
    gdf = gpd.read_file(sample_labels)
    # metre coordinates declared as degrees: they do not convert to the raster's UTM zone
    wrong = tmp_path / "wrong.gpkg"
    gdf.set_crs("EPSG:4326", allow_override=True).to_file(wrong)
    with pytest.raises(InputError, match=r"cannot be placed on the raster: .* from its CRS \(EPSG:4326\)"):
        sample_pixels(str(sample_raster), str(wrong), "class")


def test_the_palette_ends_for_any_number_of_classes() -> None:
    from engine.io.labels import palette

    colors = palette(5000)  # more than the generated hues can tell apart: colours repeat, the call returns
    assert len(colors) == 5000 and len(set(colors[:1000])) == 1000 and palette(0) == []


def squares(n: int, crs: str = "EPSG:32633") -> list[shapely.Polygon]:
    """``n`` separate 10 m squares in a row."""
    return [shapely.box(500_000 + 20 * i, 4_000_000, 500_000 + 20 * i + 10, 4_000_010) for i in range(n)]


def test_an_identifier_field_is_refused_naming_the_class_field(tmp_path: Path, sample_labels: Path) -> None:
    gdf = gpd.read_file(sample_labels).rename(columns={"class": "LC_TYPE"})
    gdf["OBJECTID"] = np.arange(1, len(gdf) + 1)
    gdf["name"] = [f"parcel {i}" for i in range(len(gdf))]  # unique text: not a class either
    path = tmp_path / "training_data.gpkg"
    gdf.to_file(path)
    for field in ("OBJECTID", "name"):
        with pytest.raises(InputError, match=rf"Field '{field}' of .*training_data.gpkg has 30 distinct values for 30 "
                                             r"features: it looks like an identifier, not a class\. Choose the class "
                                             r"field \('LC_TYPE' looks like one\)"):
            read_labels(str(path), field, None)
    _, classes = read_labels(str(path), "LC_TYPE", None)
    assert len(classes) == 5
    # named like an identifier, but its values are class codes (1 to 5 over 30 polygons): accepted
    _, codes = read_labels(str(path), "id", None)
    assert [c.code for c in codes] == [1, 2, 3, 4, 5]


def test_a_field_with_too_many_classes_is_refused(tmp_path: Path) -> None:
    n = 40
    gdf = gpd.GeoDataFrame({"height": [i // 2 if i < 20 else i for i in range(n)],  # 30 values for 40 features
                            "cover": ["water", "forest"] * (n // 2)}, geometry=squares(n), crs="EPSG:32633")
    path = tmp_path / "heights.gpkg"
    gdf.to_file(path)
    with pytest.raises(InputError, match=r"30 distinct values for 40 features: fewer than two features per class.*"
                                         r"'cover' looks like one.*at least two features"):
        read_labels(str(path), "height", None)


def test_small_layers_with_few_polygons_per_class_are_accepted(tmp_path: Path) -> None:
    # a first try: one polygon for each of 5 classes (cannot be validated, but trains)
    five = tmp_path / "five.gpkg"
    gpd.GeoDataFrame({"class": ["water", "forest", "urban", "crop", "bare"]}, geometry=squares(5),
                     crs="EPSG:32633").to_file(five)
    assert len(read_labels(str(five), "class", None)[1]) == 5
    # 8 polygons of 6 classes: two classes have a second polygon
    eight = tmp_path / "eight.gpkg"
    gpd.GeoDataFrame({"class": ["water", "forest", "urban", "crop", "bare", "reed", "water", "forest"]},
                     geometry=squares(8), crs="EPSG:32633").to_file(eight)
    assert len(read_labels(str(eight), "class", None)[1]) == 6
    # a layer dissolved by class: one multi-part feature per class is not an identifier
    parts = squares(14)
    dissolved = tmp_path / "dissolved.gpkg"
    gpd.GeoDataFrame({"class": [f"class {i}" for i in range(7)]},
                     geometry=[shapely.MultiPolygon(parts[2 * i:2 * i + 2]) for i in range(7)],
                     crs="EPSG:32633").to_file(dissolved)
    assert len(read_labels(str(dissolved), "class", None)[1]) == 7
    # but 6 single polygons with 6 values is an identifier; the message says what to do without a guess
    six = tmp_path / "six.gpkg"
    gpd.GeoDataFrame({"fid_1": range(6)}, geometry=squares(6), crs="EPSG:32633").to_file(six)
    with pytest.raises(InputError, match=r"Choose the field that holds the classes; if this is the class field, group"):
        read_labels(str(six), "fid_1", None)


def test_likely_class_field_prefers_named_text_fields_with_few_values() -> None:
    n = 20
    base = {"OBJECTID": range(n), "fid": range(n), "area": np.linspace(1, 2, n), "notes": [f"n{i}" for i in range(n)]}
    frame = pd.DataFrame({**base, "class_name": ["water", "forest"] * 10, "LC_TYPE": ["a", "b", "c", "d"] * 5})
    assert likely_class_field(frame) == "class_name"  # "class" is a better word than "type"
    assert likely_class_field(frame, exclude=["class_name"]) == "LC_TYPE"
    codes = pd.DataFrame({**base, "Landcover": [1, 2, 3, 4] * 5, "zone": ["n", "s"] * 10})
    assert likely_class_field(codes) == "Landcover"  # whole-number codes with a class name
    plain = pd.DataFrame({**base, "zone": ["n", "s"] * 10})
    assert likely_class_field(plain) == "zone"  # else the first text field with a few values
    assert likely_class_field(pd.DataFrame(base)) is None  # identifiers, decimals and unique text only
    single = pd.DataFrame({**base, "type": ["x"] * n})  # one value: not a class field
    assert likely_class_field(single) is None
