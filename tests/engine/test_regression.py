"""Continuous targets: a seeded scene whose quantity is a known function of its bands, polygons carrying the mean
quantity under them; each regression probe and the automatic choice recover it on held-out polygons and on the map,
the report gives R², RMSE, MAE and bias per fold, and the model maps as a float raster with its unit and nodata."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from engine.core.errors import InputError
from engine.embeddings.features import compute_features
from engine.jobs.classify_raster import classify_raster
from engine.jobs.train_regressor import train_regressor
from engine.probes.model_file import load_model

TRANSFORM = from_origin(600_000, 5_000_000, 10, 10)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """A 240 x 240 px, 4-band scene; the quantity (say canopy cover, %) is a smooth function of two bands; 48
    square plots of 6 x 6 px carry the quantity's mean under them. Returns the raster, the plots and the truth."""
    folder = tmp_path_factory.mktemp("regression")
    rng = np.random.default_rng(11)
    coarse = rng.uniform(0, 1, size=(4, 13, 13))
    yy, xx = np.mgrid[0:240, 0:240] / 20.0
    from scipy.ndimage import map_coordinates

    bands = np.stack([map_coordinates(c, [yy, xx], order=3, mode="nearest") for c in coarse])
    bands += rng.normal(0, 0.01, bands.shape)
    truth = 100 * np.clip(0.7 * bands[1] + 0.3 * bands[2] ** 2, 0, 1)
    data = np.round(bands * 10_000).astype("int16")
    data[:, :, :6] = -9999
    raster = folder / "scene.tif"
    with rasterio.open(raster, "w", driver="GTiff", width=240, height=240, count=4, dtype="int16", nodata=-9999,
                       crs="EPSG:32633", transform=TRANSFORM) as dst:
        dst.write(data)
    plots, values = [], []
    for row in range(15, 240, 34):
        for col in range(20, 230, 30):
            plots.append(box(*rasterio.transform.array_bounds(6, 6, TRANSFORM * rasterio.Affine.translation(col, row))))
            values.append(float(truth[row:row + 6, col:col + 6].mean()))
    labels = folder / "plots.gpkg"
    gpd.GeoDataFrame({"cover": values, "name": [f"plot {i}" for i in range(len(values))]}, geometry=plots,
                     crs="EPSG:32633").to_file(labels)
    return raster, labels, truth


@pytest.mark.parametrize("method", ["ridge", "random_forest_regressor", "xgboost_regressor", "knn_regressor"])
def test_each_regressor_learns_the_quantity_on_held_out_plots(tmp_path: Path, scene: tuple[Path, Path, np.ndarray],
                                                              method: str) -> None:
    raster, labels, _ = scene
    result = train_regressor(str(raster), str(labels), "cover", str(tmp_path / "m.lpmodel"), method=method)
    print(f"REGRESSION {method}: R2 {result.r2:.3f}, RMSE {result.rmse:.2f} %, MAE {result.mae:.2f}, "
          f"bias {result.bias:+.2f} ({result.n_polygons} plots, {result.n_samples} px)")
    assert result.n_polygons == 49 and result.r2 > 0.6


def test_the_automatic_choice_maps_the_quantity_with_its_unit_and_nodata(tmp_path: Path,
                                                                        scene: tuple[Path, Path, np.ndarray]) -> None:
    raster, labels, truth = scene
    result = train_regressor(str(raster), str(labels), "cover", str(tmp_path / "auto.lpmodel"), unit="%",
                             output_report=str(tmp_path / "r.json"))
    classify_raster(str(raster), str(tmp_path / "auto.lpmodel"), str(tmp_path / "cover.tif"))
    with rasterio.open(tmp_path / "cover.tif") as out:
        mapped = out.read(1)
        assert out.dtypes[0] == "float32" and np.isnan(out.nodata) and out.transform == TRANSFORM
        assert out.descriptions[0] == "cover (%)"
    assert np.isnan(mapped[:, :6]).all() and not np.isnan(mapped[:, 6:]).any()
    error = mapped[:, 6:] - truth[:, 6:]
    r2 = 1 - (error ** 2).sum() / ((truth[:, 6:] - truth[:, 6:].mean()) ** 2).sum()
    print(f"REGRESSION auto ({result.method}): held-out R2 {result.r2:.3f}; map against the truth R2 {r2:.3f}")
    assert r2 > 0.8 and result.r2 > 0.6
    report = json.loads((tmp_path / "r.json").read_text())["regression"]
    assert report["requested"] == "auto" and len(report["validation"]["folds"]) == 5
    assert {"r2", "rmse", "mae", "bias"} <= set(report["validation"]["folds"][0])
    assert len(report["chosen_per_fold"]) == 5
    html = (tmp_path / "r.html").read_text()
    assert "R²" in html and "data:image/png;base64" in html and "grouped by polygon" in html
    style = (tmp_path / "cover.qml").read_text()
    assert "singlebandpseudocolor" in style


def test_a_text_field_and_too_few_plots_are_one_sentence(tmp_path: Path, scene: tuple[Path, Path, np.ndarray]) -> None:
    raster, labels, _ = scene
    with pytest.raises(InputError, match=r"Field 'name' of .* holds text \('plot 0'\), not a number"):
        train_regressor(str(raster), str(labels), "name", str(tmp_path / "m.lpmodel"))
    few = gpd.read_file(labels).iloc[:2]
    few.to_file(tmp_path / "few.gpkg")
    with pytest.raises(InputError, match=r"fall on 2 polygon\(s\) of the raster: a regression needs at least 3"):
        train_regressor(str(raster), str(tmp_path / "few.gpkg"), "cover", str(tmp_path / "m.lpmodel"))
    with pytest.raises(InputError, match=r"Unknown method 'svm'"):
        train_regressor(str(raster), str(labels), "cover", str(tmp_path / "m.lpmodel"), method="svm")
    assert not (tmp_path / "m.lpmodel").exists()


def test_the_forest_writes_its_uncertainty_beside_the_map_and_the_others_refuse_in_one_sentence(
        tmp_path: Path, scene: tuple[Path, Path, np.ndarray]) -> None:
    raster, labels, truth = scene
    model = tmp_path / "forest.lpmodel"
    train_regressor(str(raster), str(labels), "cover", str(model), method="random_forest_regressor", unit="%")
    classify_raster(str(raster), str(model), str(tmp_path / "cover.tif"),
                    output_uncertainty=str(tmp_path / "spread.tif"))
    with rasterio.open(tmp_path / "spread.tif") as out, rasterio.open(tmp_path / "cover.tif") as mapped:
        spread, values = out.read(1), mapped.read(1)
        assert out.dtypes[0] == "float32" and np.isnan(out.nodata) and out.transform == TRANSFORM
        assert out.crs == mapped.crs and out.descriptions[0].startswith("uncertainty of cover (%): the standard")
    assert np.isnan(spread[:, :6]).all() and (spread[:, 6:] >= 0).all() and spread[:, 6:].max() > 0
    # the value at each pixel is the trees' standard deviation there, computed again from the raster's pixels
    loaded = load_model(str(model))
    with rasterio.open(raster) as src:
        pixels = src.read()[:, 100:104, 50:54].reshape(4, -1).T.astype("float32")
    features = compute_features(pixels, loaded.manifest["features"])
    trees = np.stack([t.predict(features.astype("float32")) for t in loaded.probe.model_.estimators_])
    np.testing.assert_allclose(spread[100:104, 50:54].ravel(), trees.std(axis=0), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(values[100:104, 50:54].ravel(), trees.mean(axis=0), rtol=1e-5, atol=1e-4)
    # the trees disagree more where they are wrong: the spread rises with the error
    error = np.abs(values[:, 6:] - truth[:, 6:])
    worst, best = error > np.percentile(error, 90), error < np.percentile(error, 50)
    assert spread[:, 6:][worst].mean() > spread[:, 6:][best].mean()
    assert "singlebandpseudocolor" in (tmp_path / "spread.qml").read_text()
    with pytest.raises(InputError, match="would overwrite the map"):
        classify_raster(str(raster), str(model), str(tmp_path / "same.tif"),
                        output_uncertainty=str(tmp_path / "same.tif"))

    train_regressor(str(raster), str(labels), "cover", str(tmp_path / "ridge.lpmodel"), method="ridge")
    with pytest.raises(InputError, match=r"\(Ridge regression \(scaled\)\) gives no per-pixel uncertainty: train it "
                                         r"with the random forest or k-nearest neighbours regressor"):
        classify_raster(str(raster), str(tmp_path / "ridge.lpmodel"), str(tmp_path / "ridge.tif"),
                        output_uncertainty=str(tmp_path / "ridge_spread.tif"))
    assert not (tmp_path / "ridge.tif").exists() and not (tmp_path / "ridge_spread.tif").exists()


def test_the_uncertainty_maps_a_region_on_dask_as_on_one_raster(tmp_path: Path,
                                                                 scene: tuple[Path, Path, np.ndarray]) -> None:
    from engine.jobs.map_region import map_region

    raster, labels, _ = scene
    model = tmp_path / "knn.lpmodel"
    train_regressor(str(raster), str(labels), "cover", str(model), method="knn_regressor", unit="%")
    classify_raster(str(raster), str(model), str(tmp_path / "cover.tif"),
                    output_uncertainty=str(tmp_path / "spread.tif"))
    region = map_region(str(raster), str(model), str(tmp_path / "region"), block_size=512, workers=1,
                        output_uncertainty=True)
    assert region.output_uncertainty and Path(region.output_uncertainty).name == "uncertainty.vrt"
    for got_path, want_path in ((region.output, tmp_path / "cover.tif"),
                                (region.output_uncertainty, tmp_path / "spread.tif")):
        with rasterio.open(got_path) as got, rasterio.open(want_path) as want:
            assert got.transform == want.transform and got.dtypes == want.dtypes and np.isnan(got.nodata)
            assert np.array_equal(got.read(), want.read(), equal_nan=True)
    with rasterio.open(region.output_uncertainty) as got:
        assert got.descriptions[0].startswith("uncertainty of cover (%): the standard deviation of the nearest")
    train_regressor(str(raster), str(labels), "cover", str(tmp_path / "xgb.lpmodel"), method="xgboost_regressor")
    with pytest.raises(InputError, match=r"\(XGBoost.*\) gives no per-pixel uncertainty"):
        map_region(str(raster), str(tmp_path / "xgb.lpmodel"), str(tmp_path / "xgb_region"), block_size=512,
                   workers=1, output_uncertainty=True)
    assert not (tmp_path / "xgb_region").exists()


def test_an_embedding_raster_learns_and_maps_the_quantity_cell_by_cell(tmp_path: Path,
                                                                        scene: tuple[Path, Path, np.ndarray]) -> None:
    """An AlphaEarth-like raster (64 int8 bands, -128 nodata) on a 20 m grid, made from the scene's bands."""
    raster, labels, truth = scene
    with rasterio.open(raster) as src:
        bands = src.read().astype("float64") / 10_000
    cells = bands.reshape(4, 120, 2, 120, 2).mean(axis=(2, 4))  # 2 x 2 pixels a cell
    mixing = np.random.default_rng(5).normal(0, 0.5, size=(64, 4))
    embedding = np.tanh(np.einsum("kb,bij->kij", mixing, cells - 0.5))  # in -1..1, as AlphaEarth's
    quantised = np.clip(np.round(np.sign(embedding) * np.sqrt(np.abs(embedding)) * 127.5), -127, 127).astype("int8")
    quantised[:, :, :3] = -128  # the scene's nodata strip (6 px = 3 cells)
    path = tmp_path / "alphaearth.tif"
    with rasterio.open(path, "w", driver="GTiff", width=120, height=120, count=64, dtype="int8", crs="EPSG:32633",
                       transform=TRANSFORM * rasterio.Affine.scale(2)) as dst:
        dst.write(quantised)
    model = tmp_path / "cover_ae.lpmodel"
    result = train_regressor(str(path), str(labels), "cover", str(model), method="ridge", unit="%",
                             features="embeddings")
    assert result.n_polygons == 49 and result.r2 > 0.6, result
    assert load_model(str(model)).manifest["features"]["embedding"]["kind"] == "alphaearth"
    classify_raster(str(path), str(model), str(tmp_path / "cover_ae.tif"))
    with rasterio.open(tmp_path / "cover_ae.tif") as out:
        mapped = out.read(1)
        assert out.transform == TRANSFORM * rasterio.Affine.scale(2) and out.dtypes[0] == "float32"
    assert np.isnan(mapped[:, :3]).all() and not np.isnan(mapped[:, 3:]).any()
    want = truth.reshape(120, 2, 120, 2).mean(axis=(1, 3))[:, 3:]
    r2 = 1 - ((mapped[:, 3:] - want) ** 2).sum() / ((want - want.mean()) ** 2).sum()
    print(f"REGRESSION embeddings (ridge): held-out R2 {result.r2:.3f}; map against the truth R2 {r2:.3f}")
    assert r2 > 0.7
    with pytest.raises(InputError, match="leave the bands empty"):
        train_regressor(str(path), str(labels), "cover", str(model), features="embeddings", bands=[1, 2])
    with pytest.raises(InputError, match=r"Unknown features 'patches'; choose one of: raw_bands, embeddings, encoder"):
        train_regressor(str(raster), str(labels), "cover", str(model), features="patches")


def test_an_encoder_run_on_the_fly_learns_and_maps_the_quantity(tmp_path: Path,
                                                                scene: tuple[Path, Path, np.ndarray]) -> None:
    """Weight-free random convolutional features (RCF) computed from the bands, stored in the model, run again when
    mapping; the map comes back on the raster's grid, each pixel taking its embedding cell's value."""
    raster, labels, truth = scene
    model = tmp_path / "cover_rcf.lpmodel"
    result = train_regressor(str(raster), str(labels), "cover", str(model), method="ridge", unit="%",
                             features="encoder", encoder="rcf_gaussian", patch_size=4, stride=2, support="pixel")
    manifest = load_model(str(model)).manifest
    assert manifest["features"]["recipe"] == "encoder" and manifest["features"]["encoder"]["stride"] == 2
    classify_raster(str(raster), str(model), str(tmp_path / "cover_rcf.tif"))
    with rasterio.open(tmp_path / "cover_rcf.tif") as out:
        mapped = out.read(1)
        assert out.transform == TRANSFORM and out.shape == (240, 240) and out.dtypes[0] == "float32"
        assert out.descriptions[0] == "cover (%)"
    assert np.isnan(mapped[:, :6]).all() and not np.isnan(mapped[:, 12:]).any()
    cells = mapped[:, 12:].reshape(120, 2, 114, 2)
    assert (cells == cells[:, :1, :, :1]).all()  # one value per 2 px embedding cell
    error = mapped[:, 12:] - truth[:, 12:]
    r2 = 1 - (error ** 2).sum() / ((truth[:, 12:] - truth[:, 12:].mean()) ** 2).sum()
    print(f"REGRESSION encoder (RCF, ridge): held-out R2 {result.r2:.3f}; map against the truth R2 {r2:.3f}")
    assert result.r2 > 0.5 and r2 > 0.5
    # Map region computes the cells block by block and gives the same map
    from engine.jobs.map_region import map_region

    region = map_region(str(raster), str(model), str(tmp_path / "region"), block_size=512, workers=1)
    with rasterio.open(region.output) as got:
        assert np.array_equal(got.read(1), mapped, equal_nan=True)
    with pytest.raises(InputError, match="Polygon support works on band values and embedding rasters"):
        train_regressor(str(raster), str(labels), "cover", str(model), features="encoder", support="polygon")


def test_a_property_of_the_whole_plot_is_learned_from_its_pixels_together_and_mapped_in_cells(
        tmp_path: Path, scene: tuple[Path, Path, np.ndarray]) -> None:
    """The plots' value is the spread of band 2 inside them (a texture, as canopy height variation): no single
    pixel shows it, the statistics of the plot's pixels do."""
    raster, labels, _ = scene
    with rasterio.open(raster) as src:
        band = src.read(2).astype("float64") / 100
        transform = src.transform
    plots = gpd.read_file(labels)
    spreads = []
    for geometry in plots.geometry:
        col, row = (round(v) for v in ~transform * (geometry.bounds[0], geometry.bounds[3]))
        spreads.append(float(band[row:row + 6, col:col + 6].std()))
    plots["texture"] = spreads
    plots.to_file(tmp_path / "texture.gpkg")

    auto = train_regressor(str(raster), str(tmp_path / "texture.gpkg"), "texture", str(tmp_path / "auto.lpmodel"),
                           method="ridge", output_report=str(tmp_path / "auto.json"))
    pixel = train_regressor(str(raster), str(tmp_path / "texture.gpkg"), "texture", str(tmp_path / "pixel.lpmodel"),
                            method="ridge", support="pixel")
    report = json.loads((tmp_path / "auto.json").read_text())["regression"]["support"]
    print(f"REGRESSION support: polygon R2 {report['polygon']['r2']:.3f} against pixel by pixel (averaged over each "
          f"plot) {report['pixel_at_polygon_level']['r2']:.3f}; cells of {report['cell_px']} px")
    assert auto.support == "polygon" and pixel.support == "pixel" and report["cell_px"] == 6
    assert report["polygon"]["r2"] > 0.5 > report["pixel_at_polygon_level"]["r2"]
    assert auto.r2 == pytest.approx(report["polygon"]["r2"]) and auto.n_polygons == 49 and auto.n_samples == 49 * 36
    assert "Support, at the polygon level" in (tmp_path / "auto.html").read_text()
    manifest = load_model(str(tmp_path / "auto.lpmodel")).manifest
    assert manifest["support"] == {"kind": "polygon", "cell_px": 6, "stats": ["mean", "std", "p10", "p50", "p90"]}
    # a subsample of the pixels (here about 10 of each plot's 36) changes neither the median plot nor the cell
    train_regressor(str(raster), str(tmp_path / "texture.gpkg"), "texture", str(tmp_path / "few.lpmodel"),
                    method="ridge", support="polygon", max_samples=500)
    assert load_model(str(tmp_path / "few.lpmodel")).manifest["support"]["cell_px"] == 6

    # the map: one value per 6 x 6 cell from the raster's origin, nodata kept; the same through Map region
    from engine.jobs.map_region import map_region

    classify_raster(str(raster), str(tmp_path / "auto.lpmodel"), str(tmp_path / "texture.tif"), block=64)
    with rasterio.open(tmp_path / "texture.tif") as out:
        mapped = out.read(1)
    assert np.isnan(mapped[:, :6]).all() and not np.isnan(mapped[:, 6:]).any()
    cells = mapped[:, 6:].reshape(40, 6, 39, 6)
    assert (cells == cells[:, :1, :, :1]).all()  # constant inside each cell, across the 64 px windows too
    truth = band[:, 6:].reshape(40, 6, 39, 6).std(axis=(1, 3))
    r2 = 1 - ((cells[:, 0, :, 0] - truth) ** 2).sum() / ((truth - truth.mean()) ** 2).sum()
    print(f"REGRESSION support: the cell map against each cell's true spread R2 {r2:.3f}")
    assert r2 > 0.5
    region = map_region(str(raster), str(tmp_path / "auto.lpmodel"), str(tmp_path / "region"), block_size=512,
                        workers=1)
    with rasterio.open(region.output) as got:
        assert np.array_equal(got.read(1), mapped, equal_nan=True)
    # a raster whose width is not a multiple of the cell: the cut cells at the edge are mapped from their pixels
    with rasterio.open(raster) as src:
        profile, data = src.profile, src.read()
    profile.update(width=242)
    with rasterio.open(tmp_path / "wide.tif", "w", **profile) as dst:
        dst.write(np.concatenate([data, data[:, :, -2:]], axis=2))
    classify_raster(str(tmp_path / "wide.tif"), str(tmp_path / "auto.lpmodel"), str(tmp_path / "wide_map.tif"))
    with rasterio.open(tmp_path / "wide_map.tif") as out:
        wide = out.read(1)
    assert not np.isnan(wide[:, 6:]).any() and np.array_equal(wide[:, :240], mapped, equal_nan=True)
    with pytest.raises(InputError, match=r"hold 1 pixel\(s\) each \(median\): too few .* Use support pixel"):
        centres = plots.copy()
        centres["geometry"] = centres.geometry.centroid
        centres.to_file(tmp_path / "points.gpkg")
        train_regressor(str(raster), str(tmp_path / "points.gpkg"), "texture", str(tmp_path / "p.lpmodel"),
                        support="polygon")


def test_a_forest_suggests_where_its_trees_disagree(tmp_path: Path, scene: tuple[Path, Path, np.ndarray]) -> None:
    from engine.jobs.suggest_labels import suggest_labels

    raster, labels, _ = scene
    model = tmp_path / "forest.lpmodel"
    train_regressor(str(raster), str(labels), "cover", str(model), method="random_forest_regressor", unit="%",
                    support="pixel")
    result = suggest_labels(str(raster), str(model), str(tmp_path / "next.gpkg"), n_points=12, labels=str(labels),
                            spacing=8, output_report=str(tmp_path / "next.json"))
    points = gpd.read_file(tmp_path / "next.gpkg")
    assert result.rule == "spread" and len(points) == 12 and {"cover", "predicted", "spread"} <= set(points.columns)
    assert points["cover"].isna().all()  # to fill in: the measured value
    report = json.loads((tmp_path / "next.json").read_text())["suggestions"]
    assert report["rule"] == "spread" and report["mean_spread"] > report["median_spread"]
    assert result.mean_spread == pytest.approx(points["spread"].mean(), abs=1e-3)
    assert "did not beat the same number of random" in (tmp_path / "next.html").read_text()
    # a user measures the value at each point and trains again with the plots and the points in one step
    _, _, truth = scene
    with rasterio.open(raster) as src:
        rows, cols = rasterio.transform.rowcol(src.transform, points.geometry.x, points.geometry.y)
    points["cover"] = truth[np.asarray(rows), np.asarray(cols)]
    points.to_file(tmp_path / "next.gpkg", layer="next")
    again = train_regressor(str(raster), str(labels), "cover", str(tmp_path / "again.lpmodel"),
                            method="random_forest_regressor", support="pixel",
                            more_labels=[f"{tmp_path / 'next.gpkg'}|layername=next"])
    merged = gpd.read_file(tmp_path / "again.labels.gpkg")
    assert len(merged) == 49 + 12 and again.n_polygons == 61
    assert again.support == "pixel"
    with pytest.raises(InputError, match=r"12 of the labels of .* are points \(one pixel each\) among polygons"):
        train_regressor(str(raster), str(labels), "cover", str(tmp_path / "poly.lpmodel"), support="polygon",
                        more_labels=[f"{tmp_path / 'next.gpkg'}|layername=next"])
    # a value field named like one of the points' columns is refused before any work
    plots = gpd.read_file(labels).rename(columns={"cover": "spread"})
    plots.to_file(tmp_path / "spread.gpkg")
    train_regressor(str(raster), str(tmp_path / "spread.gpkg"), "spread", str(tmp_path / "s.lpmodel"),
                    method="random_forest_regressor", support="pixel")
    with pytest.raises(InputError, match=r"field 'spread' has the name of a column the points carry"):
        suggest_labels(str(raster), str(tmp_path / "s.lpmodel"), str(tmp_path / "s.gpkg"))
    train_regressor(str(raster), str(labels), "cover", str(tmp_path / "ridge.lpmodel"), method="ridge")
    with pytest.raises(InputError, match=r"\(Ridge regression \(scaled\)\) gives no per-pixel uncertainty to rank"):
        suggest_labels(str(raster), str(tmp_path / "ridge.lpmodel"), str(tmp_path / "r.gpkg"))
