"""The hyperspectral path end to end: .mat files to rasters, ground truth to polygons, fine-tune, map."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import rasterio
import scipy.io

from engine.io.hsi import mat_to_geotiff, read_mat_array, synthetic_cube
from engine.jobs.classify_raster import classify_raster
from engine.jobs.finetune import finetune
from engine.jobs.hyperspectral import label_raster_to_polygons

GT = Path(__file__).resolve().parents[1] / "data" / "hsi" / "Indian_pines_gt.mat"


def test_hyperspectral_network_from_mat_files_to_a_map(tmp_path: Path) -> None:
    gt = read_mat_array(GT, "indian_pines_gt")[:48, :48]  # a corner of the real map: a few classes
    cube = synthetic_cube(gt, n_bands=40, seed=1)
    scipy.io.savemat(tmp_path / "cube.mat", {"cube": cube})
    scipy.io.savemat(tmp_path / "gt.mat", {"gt": gt.astype("uint8")})
    raster = mat_to_geotiff(tmp_path / "cube.mat", tmp_path / "cube.tif")
    truth = mat_to_geotiff(tmp_path / "gt.mat", tmp_path / "gt.tif")
    polygons = label_raster_to_polygons(str(truth), str(tmp_path / "gt.gpkg"))
    present = {str(int(c)) for c in np.unique(gt) if c}
    assert set(polygons.classes) == present and polygons.n_polygons >= len(present)
    import geopandas as gpd
    from rasterio import features

    shapes = gpd.read_file(polygons.output)
    with rasterio.open(truth) as t:
        burnt = features.rasterize(zip(shapes.geometry, shapes["code"], strict=True), out_shape=gt.shape,
                                   transform=t.transform, fill=0, dtype="int32")
    assert np.array_equal(burnt, gt)  # the polygons give back the ground truth pixel for pixel
    model = tmp_path / "ssan.lpmodel"
    result = finetune(str(raster), polygons.output, "class", str(model), task="hyperspectral", chip_size=7,
                      n_pca=64, epochs=2, patience=0, validation="random_pixels", max_samples_per_class=200,
                      device="cpu", output_report=str(tmp_path / "ssan.json"))
    assert result.epochs_run == 2 and 0 <= result.overall_accuracy <= 1
    manifest = json.loads(zipfile.ZipFile(model).read("manifest.json"))
    # 64 components asked for, 40 bands: as many as the bands give
    assert manifest["network"]["backbone"] == "ssan" and manifest["network"]["options"]["n_pca"] == 40
    assert manifest["validation"]["optimistic"] is True  # random pixels, as in the published protocol
    out = tmp_path / "map.tif"
    classify_raster(str(raster), str(model), str(out))
    with rasterio.open(out) as m, rasterio.open(raster) as src:
        assert (m.width, m.height, m.transform) == (src.width, src.height, src.transform)
        codes = {c["code"] for c in manifest["classes"]}
        assert set(np.unique(m.read(1))) <= codes | {m.nodata}
