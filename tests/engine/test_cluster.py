"""Clustering without labels: automatic k recovers a seeded scene's classes, the seed reproduces the map, the map
keeps the raster's grid and nodata, the polygons are a label layer to fill in, and the cluster model maps a region on
Dask like any model."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from engine.core.errors import InputError
from engine.jobs.cluster import cluster
from engine.probes.model_file import load_model

#: Four land covers with distinct spectra in 5 bands (as reflectance x 10,000).
SPECTRA = np.array([[400, 700, 500, 3500, 1800],    # vegetation
                    [900, 800, 700, 600, 400],      # water
                    [1500, 1700, 1900, 2300, 2900],  # bare soil
                    [2200, 2200, 2300, 2400, 2600]])  # built-up


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 200 x 240 px scene of four covers in irregular patches, noisy, with a nodata strip; and its truth."""
    rng = np.random.default_rng(7)
    coarse = rng.integers(0, 4, size=(10, 12))
    truth = np.kron(coarse, np.ones((20, 20), dtype=int))
    data = SPECTRA[truth].transpose(2, 0, 1) + rng.normal(0, 120, size=(5, *truth.shape))
    data = np.round(data).astype("int16")
    data[:, :, :8] = -9999
    path = tmp_path_factory.mktemp("scene") / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", width=240, height=200, count=5, dtype="int16", nodata=-9999,
                       crs="EPSG:32633", transform=from_origin(500_000, 4_000_000, 10, 10)) as dst:
        dst.write(data)
        for band, name in enumerate(("blue", "green", "red", "nir", "swir1"), start=1):
            dst.set_band_description(band, name)
    return path, truth


def test_automatic_k_recovers_the_classes_and_the_map_keeps_grid_and_nodata(tmp_path: Path,
                                                                              scene: tuple[Path, np.ndarray]) -> None:
    path, truth = scene
    result = cluster(str(path), str(tmp_path / "clusters.tif"), k_min=2, k_max=7, sample_size=5000,
                     output_report=str(tmp_path / "clusters.json"), output_centres=str(tmp_path / "centres.csv"),
                     output_model=str(tmp_path / "clusters.lpmodel"))
    assert result.k == 4 and result.scores["k"] == [2, 3, 4, 5, 6, 7]
    assert max(result.scores["calinski_harabasz"]) == result.scores["calinski_harabasz"][2]
    with rasterio.open(path) as src, rasterio.open(result.output) as out:
        assert (out.crs, out.transform, out.width, out.height) == (src.crs, src.transform, src.width, src.height)
        mapped = out.read(1)
        assert out.nodata is not None and (mapped[:, :8] == out.nodata).all()
        assert out.colormap(1)[1][:3] != (0, 0, 0)
    valid = mapped != 0
    # each true cover is one cluster, almost pixel for pixel
    for cover in range(4):
        codes, counts = np.unique(mapped[(truth == cover) & valid], return_counts=True)
        assert counts.max() / counts.sum() > 0.99, (cover, codes, counts)
    assert len({int(np.bincount(mapped[(truth == c) & valid]).argmax()) for c in range(4)}) == 4
    report = json.loads((tmp_path / "clusters.json").read_text())
    assert report["clusters"]["k"] == 4 and len(report["clusters"]["centres"]) == 4
    sizes = [row["pixels"] for row in report["clusters"]["clusters"]]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == int(valid.sum())
    assert report["clusters"]["clusters"][0]["area_ha"] == pytest.approx(sizes[0] * 100 / 1e4)
    html = (tmp_path / "clusters.html").read_text()
    assert "Calinski-Harabasz score" in html and "4 (chosen)" in html and "data:image/png;base64" in html
    centres = (tmp_path / "centres.csv").read_text().splitlines()
    assert centres[0] == "cluster,blue,green,red,nir,swir1" and len(centres) == 5
    # the centres are in the bands' own units: each one is a cover's spectrum
    values = np.array([[float(v) for v in line.split(",")[1:]] for line in centres[1:]])
    assert all(np.abs(values - s).max(axis=1).min() < 30 for s in SPECTRA)
    assert load_model(tmp_path / "clusters.lpmodel").manifest["clustering"]["k"] == 4


def test_the_same_seed_gives_the_same_map_and_polygons_are_a_label_layer(tmp_path: Path,
                                                                         scene: tuple[Path, np.ndarray]) -> None:
    path, _ = scene
    first = cluster(str(path), str(tmp_path / "a.tif"), k=3, seed=11, sample_size=3000,
                    output_polygons=str(tmp_path / "a.gpkg"), output_confidence=str(tmp_path / "conf.tif"))
    second = cluster(str(path), str(tmp_path / "b.tif"), k=3, seed=11, sample_size=3000)
    with rasterio.open(first.output) as a, rasterio.open(second.output) as b:
        mapped = a.read(1)
        assert np.array_equal(mapped, b.read(1))
    assert first.k == 3 and first.scores["k"] == [3]
    polygons = gpd.read_file(tmp_path / "a.gpkg")
    assert {"cluster", "cluster_name", "class", "area_m2"} <= set(polygons.columns)
    assert (polygons["class"] == "").all() and set(polygons["cluster"]) == {1, 2, 3}
    assert polygons["area_m2"].sum() == pytest.approx(int((mapped != 0).sum()) * 100)
    with rasterio.open(tmp_path / "conf.tif") as conf:
        membership = conf.read(1)
    inside = mapped != 0
    assert ((membership[inside] > 0) & (membership[inside] <= 1)).all() and (membership[~inside] < 0).all()


def test_bad_options_are_one_sentence(tmp_path: Path, scene: tuple[Path, np.ndarray]) -> None:
    path, _ = scene
    with pytest.raises(InputError, match=r"give k between 2 and 255"):
        cluster(str(path), str(tmp_path / "x.tif"), k=1)
    with pytest.raises(InputError, match=r"k_min <= k_max"):
        cluster(str(path), str(tmp_path / "x.tif"), k_min=6, k_max=3)
    with pytest.raises(InputError, match=r"Unknown features 'pixels'"):
        cluster(str(path), str(tmp_path / "x.tif"), features="pixels")
    with pytest.raises(InputError, match=r"too few for 50 clusters"):
        cluster(str(path), str(tmp_path / "x.tif"), k=50, sample_size=300)
    assert not list(tmp_path.iterdir())


def test_a_cluster_model_maps_a_region_on_dask_as_on_one_raster(tmp_path: Path,
                                                                scene: tuple[Path, np.ndarray]) -> None:
    from engine.jobs.map_region import map_region

    path, _ = scene
    result = cluster(str(path), str(tmp_path / "clusters.tif"), k=4, output_model=str(tmp_path / "c.lpmodel"))
    region = map_region(str(path), str(tmp_path / "c.lpmodel"), str(tmp_path / "region"), block_size=512,
                        workers=1)
    with rasterio.open(region.output) as got, rasterio.open(result.output) as want:
        assert np.array_equal(got.read(), want.read()) and got.transform == want.transform


def test_a_few_outlier_pixels_do_not_break_the_choice_of_k() -> None:
    """k = 2 can isolate three outliers (clouds, saturated pixels): the silhouette's subsample may then hold one
    cluster only, which is reported as -1 rather than stopping the job."""
    from engine.probes.kmeans import fit_clusters

    x = np.random.default_rng(0).normal(size=(20_000, 4))
    x[:3] += 1000
    choice = fit_clusters(x, 0, 2, 3)
    assert choice.scores["k"] == [2, 3] and -1.0 in choice.scores["silhouette"]
