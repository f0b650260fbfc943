"""Find more like these: on the Landsat 7 sample, half of the forest polygons as examples rank the other forest
polygons' pixels above water (area under the curve); the map keeps grid and nodata; counter-examples push their
look down; matches become polygons with areas; the search maps a region on Dask with no code of its own."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterdata import write_like
from rasterio import features
from sklearn.metrics import roc_auc_score

from engine.core.errors import InputError
from engine.jobs.similarity import similarity


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory, sample_labels: Path) -> dict[str, Path]:
    """Forest polygons split in two (examples, held out), and the other classes' polygons."""
    folder = tmp_path_factory.mktemp("split")
    labels = gpd.read_file(sample_labels)
    forest = labels[labels["class"] == "forest"]
    parts = {"examples": forest.iloc[::2], "held_out": forest.iloc[1::2],
             "water": labels[labels["class"] == "water"], "others": labels[labels["class"] != "forest"]}
    out = {}
    for name, frame in parts.items():
        out[name] = folder / f"{name}.gpkg"
        frame.to_file(out[name], driver="GPKG")
    return out


def pixels_under(layer: Path, raster: Path, values: np.ndarray) -> np.ndarray:
    with rasterio.open(raster) as src:
        frame = gpd.read_file(layer).to_crs(src.crs)
        mask = features.rasterize(((g, 1) for g in frame.geometry), out_shape=values.shape, transform=src.transform)
    return values[(mask == 1) & ~np.isnan(values)]


def test_forest_examples_rank_held_out_forest_above_water(tmp_path: Path, sample_raster: Path,
                                                          split: dict[str, Path]) -> None:
    result = similarity(str(sample_raster), str(split["examples"]), str(tmp_path / "like.tif"),
                        output_polygons=str(tmp_path / "matches.gpkg"), threshold=0.8)
    with rasterio.open(sample_raster) as src, rasterio.open(result.output) as out:
        assert (out.crs, out.transform, out.shape) == (src.crs, src.transform, src.shape)
        assert out.dtypes[0] == "float32" and np.isnan(out.nodata)
        values = out.read(1)
        nodata = src.read(1) == src.nodata
    assert np.isnan(values[nodata]).all() and (values[~nodata] >= 0).all() and (values[~nodata] <= 1).all()
    forest, water = pixels_under(split["held_out"], sample_raster, values), pixels_under(split["water"],
                                                                                        sample_raster, values)
    auc = roc_auc_score(np.r_[np.ones(len(forest)), np.zeros(len(water))], np.r_[forest, water])
    print(f"SIMILARITY AUC held-out forest against water: {auc:.3f} ({len(forest)} and {len(water)} px)")
    assert auc > 0.95
    assert result.n_examples > 50 and result.matched_pixels == int((values >= 0.8).sum())
    matches = gpd.read_file(tmp_path / "matches.gpkg")
    assert matches["area_m2"].sum() == pytest.approx(result.matched_area_m2) and result.matched_area_m2 > 0
    assert (tmp_path / "like.qml").is_file()


def test_counter_examples_lower_what_they_look_like(tmp_path: Path, sample_raster: Path,
                                                    split: dict[str, Path]) -> None:
    plain = similarity(str(sample_raster), str(split["examples"]), str(tmp_path / "plain.tif"), mode="best")
    against = similarity(str(sample_raster), str(split["examples"]), str(tmp_path / "against.tif"), mode="best",
                         counter_examples=str(split["others"]), output_model=str(tmp_path / "s.lpmodel"))
    with rasterio.open(plain.output) as a, rasterio.open(against.output) as b:
        before, after = a.read(1), b.read(1)
    water_before = pixels_under(split["water"], sample_raster, before)
    water_after = pixels_under(split["water"], sample_raster, after)
    assert water_after.mean() < water_before.mean() and water_after.mean() < 0.5
    forest = pixels_under(split["held_out"], sample_raster, after)
    assert forest.mean() > 0.5 and against.n_counter_examples > 0


def test_bad_inputs_name_the_layer(tmp_path: Path, sample_raster: Path, split: dict[str, Path]) -> None:
    far = gpd.read_file(split["examples"])
    far["geometry"] = far.geometry.translate(1e6, 0)
    far.to_file(tmp_path / "far.gpkg")
    with pytest.raises(InputError, match=r"No feature of the examples layer .*far\.gpkg lies on raster"):
        similarity(str(sample_raster), str(tmp_path / "far.gpkg"), str(tmp_path / "x.tif"))
    with pytest.raises(InputError, match=r"Cannot read the counter-examples layer"):
        similarity(str(sample_raster), str(split["examples"]), str(tmp_path / "x.tif"),
                   counter_examples=str(tmp_path / "missing.gpkg"))
    with pytest.raises(InputError, match=r"threshold is a similarity between 0 and 1"):
        similarity(str(sample_raster), str(split["examples"]), str(tmp_path / "x.tif"), threshold=2)
    assert not (tmp_path / "x.tif").exists()


def test_a_similarity_model_maps_a_region_on_dask_as_on_one_raster(tmp_path: Path, sample_raster: Path,
                                                                  split: dict[str, Path]) -> None:
    from engine.jobs.map_region import map_region

    with rasterio.open(sample_raster) as src:
        data = np.tile(src.read(), (1, 1, 3))
        data[:, :20, 500:] = src.nodata  # nodata across the block edge: NaN in both maps
        raster = write_like(sample_raster, tmp_path / "wide.tif", data)
    single = similarity(str(raster), str(split["examples"]), str(tmp_path / "like.tif"),
                        output_model=str(tmp_path / "s.lpmodel"))
    region = map_region(str(raster), str(tmp_path / "s.lpmodel"), str(tmp_path / "region"), block_size=512,
                        workers=2, output_cog=str(tmp_path / "region.tif"))
    assert region.blocks == 2 and region.nodata_pixels > 0
    for path in (region.output, str(tmp_path / "region.tif")):
        with rasterio.open(path) as got, rasterio.open(single.output) as want:
            assert got.transform == want.transform and got.dtypes == want.dtypes
            assert np.array_equal(got.read(), want.read(), equal_nan=True)
