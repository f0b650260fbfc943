"""Inputs as users have them: bands of mixed data types and nodata values, empty bands, scale and offset tags,
hundreds of bands, one-pixel polygons and labels in another CRS. Small seeded rasters written in ``tmp_path``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from engine.core.errors import InputError
from engine.core.feedback import Feedback
from engine.embeddings.sources import load_raw_bands
from engine.io.labels import sample_pixels
from engine.io.rasters import band_nodata, common_dtype, raster_info, read_block, valid_mask
from engine.io.region import band_stack

ROOT = Path(__file__).resolve().parents[2]
CRS = "EPSG:32633"
PIXEL = 30.0
X0, Y0 = 500_000.0, 4_000_000.0
TRANSFORM = from_origin(X0, Y0, PIXEL, PIXEL)
SIZE = 36
CLASSES = ("water", "forest", "urban")  # stripes of 12 columns each, left to right

def scene(n_bands: int, seed: int = 0) -> np.ndarray:
    """Float64 band values (bands, rows, cols): three class stripes with their own spectra, plus noise."""
    rng = np.random.default_rng(seed)
    stripe = np.repeat(np.arange(3), SIZE // 3)[None, :].repeat(SIZE, axis=0)
    means = rng.uniform(500, 3000, size=(3, n_bands))
    return means[stripe].transpose(2, 0, 1) + rng.normal(0, 25, size=(n_bands, SIZE, SIZE))


def write(path: Path, data: np.ndarray, dtype: str, nodata: float | None, names: list[str] | None = None,
          scales: list[float] | None = None, offsets: list[float] | None = None) -> Path:
    """A GeoTIFF on the test grid."""
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
               "dtype": dtype, "nodata": nodata, "crs": CRS, "transform": TRANSFORM}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(dtype))
        for band, name in enumerate(names or [], start=1):
            dst.set_band_description(band, name)
        if scales is not None:
            dst.scales = scales
        if offsets is not None:
            dst.offsets = offsets
    return path


def pixel_box(row: int, col: int, height: int = 1, width: int = 1) -> box:
    """The footprint of ``height`` x ``width`` pixels whose top-left pixel is (``row``, ``col``)."""
    return box(X0 + col * PIXEL, Y0 - (row + height) * PIXEL, X0 + (col + width) * PIXEL, Y0 - row * PIXEL)


def write_labels(path: Path, crs: str = CRS, size: int = 3) -> Path:
    """Three ``size`` x ``size`` px squares per class, inside its stripe, away from the stripe edges."""
    rows, classes = [], []
    for k, name in enumerate(CLASSES):
        for top in (2, 14, 26):
            rows.append(pixel_box(top, 12 * k + 4, size, size))
            classes.append(name)
    gdf = gpd.GeoDataFrame({"class": classes}, geometry=rows, crs=CRS)
    gdf.to_crs(crs).to_file(path)
    return path


def labelled_pixels(size: int = 3) -> set[tuple[int, int]]:
    """The pixels :func:`write_labels` covers (pixel-centre rule)."""
    return {(top + r, 12 * k + 4 + c) for k in range(3) for top in (2, 14, 26) for r in range(size)
            for c in range(size)}


def vrt_separate(path: Path, files: list[Path], types: list[str], nodata: list[float]) -> Path:
    """A VRT as ``gdalbuildvrt -separate`` writes it: one band per file, each with its own type and nodata."""
    bands = []
    for i, (file, kind, value) in enumerate(zip(files, types, nodata, strict=True), start=1):
        bands.append(
            f'<VRTRasterBand dataType="{kind}" band="{i}"><NoDataValue>{value}</NoDataValue><ComplexSource>'
            f'<SourceFilename relativeToVRT="1">{file.name}</SourceFilename><SourceBand>1</SourceBand>'
            f'<SourceProperties RasterXSize="{SIZE}" RasterYSize="{SIZE}" DataType="{kind}" BlockXSize="{SIZE}" '
            f'BlockYSize="1" /><SrcRect xOff="0" yOff="0" xSize="{SIZE}" ySize="{SIZE}" />'
            f'<DstRect xOff="0" yOff="0" xSize="{SIZE}" ySize="{SIZE}" /><NODATA>{value}</NODATA>'
            "</ComplexSource></VRTRasterBand>"
        )
    wkt = rasterio.crs.CRS.from_string(CRS).to_wkt()
    path.write_text(
        f'<VRTDataset rasterXSize="{SIZE}" rasterYSize="{SIZE}"><SRS dataAxisToSRSAxisMapping="1,2">{wkt}</SRS>'
        f"<GeoTransform>{X0}, {PIXEL}, 0.0, {Y0}, 0.0, {-PIXEL}</GeoTransform>{''.join(bands)}</VRTDataset>",
        encoding="utf-8",
    )
    return path


@pytest.fixture()
def landsat_files(tmp_path: Path) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Three one-band files as Landsat comes: Float32 (nodata -9999), Int16 (nodata -32768), Float32.

    Returns the files, the values (bands, rows, cols) and where a band is nodata (bands, rows, cols).
    """
    data = scene(3, seed=1)
    data[1] = np.round(data[1])
    holes = np.zeros(data.shape, dtype=bool)
    holes[0, 30:33, 0:4] = True  # outside the labels
    holes[1, 20:22, 20:25] = True
    holes[2, 0:1, :] = True
    data[0][holes[0]] = -9999
    data[1][holes[1]] = -32768
    data[2][holes[2]] = -9999
    files = [write(tmp_path / "b1.tif", data[0:1], "float32", -9999),
             write(tmp_path / "b2.tif", data[1:2], "int16", -32768),
             write(tmp_path / "b3.tif", data[2:3], "float32", -9999)]
    return files, data.astype("float32"), holes


# --- nodata and data type per band -------------------------------------------------------------------------------


def test_common_dtype_holds_every_band_exactly() -> None:
    assert common_dtype(["int16", "int16"]) == "int16"  # one type: read as it is
    assert common_dtype(["float32", "int16"]) == "float32"
    assert common_dtype(["uint8", "uint16", "float32"]) == "float32"
    assert common_dtype(["float32", "int32"]) == "float64"
    assert common_dtype(["uint32", "int16"]) == "float64"
    assert common_dtype(["float64", "float32"]) == "float64"


def test_several_files_of_mixed_types_are_read_without_loss(landsat_files: tuple[list[Path], np.ndarray, np.ndarray]
                                                            ) -> None:
    files, data, holes = landsat_files
    with band_stack([str(f) for f in files]) as path:
        info = raster_info(path)
        assert info.dtypes == ("float32", "int16", "float32") and info.dtype == "float32"
        assert info.nodatavals == (-9999.0, -32768.0, -9999.0)
        with rasterio.open(path) as src:
            values = read_block(src)
            assert values.dtype == np.float32
            np.testing.assert_array_equal(values, data)
            np.testing.assert_array_equal(valid_mask(values, band_nodata(src)), ~holes.any(axis=0))
            window = rasterio.windows.Window(-2, 18, 8, 6)  # reaches outside: boundless and masked
            part = read_block(src, window, boundless=True, masked=True)
            assert part.mask[:, :, :2].all() and not part.mask[1, 0, 2:].any()
            np.testing.assert_array_equal(part[1, :, 2:].data, data[1, 18:24, 0:6])
            small = read_block(src, out_shape=(3, 12, 12))
            assert small.shape == (3, 12, 12) and small.dtype == np.float32
        with band_stack([str(f) for f in files], [3, 2]) as picked, rasterio.open(picked) as src:
            assert src.dtypes == ("float32", "int16") and src.nodatavals == (-9999.0, -32768.0)
            np.testing.assert_array_equal(read_block(src), data[[2, 1]])


def test_a_32_bit_integer_band_reads_as_float64(tmp_path: Path) -> None:
    big = np.full((1, SIZE, SIZE), 2**30 + 1, dtype="int64")
    files = [write(tmp_path / "f.tif", scene(1)[None, 0], "float32", -9999),
             write(tmp_path / "i.tif", big, "int32", -2**31)]
    with band_stack([str(f) for f in files]) as path, rasterio.open(path) as src:
        values = read_block(src)
        assert values.dtype == np.float64 and values[1, 0, 0] == 2**30 + 1  # float32 would round it


def test_a_gdalbuildvrt_separate_vrt_is_sampled_and_classified(tmp_path: Path,
                                                               landsat_files: tuple[list[Path], np.ndarray,
                                                                                    np.ndarray]) -> None:
    from engine.jobs.classify_raster import classify_raster
    from engine.jobs.train_classifier import train_classifier

    files, data, holes = landsat_files
    vrt = vrt_separate(tmp_path / "stack.vrt", files, ["Float32", "Int16", "Float32"], [-9999, -32768, -9999])
    with band_stack(str(vrt), [2, 3]) as picked, rasterio.open(picked) as src:  # per-band nodata and type kept
        assert src.dtypes == ("int16", "float32") and src.nodatavals == (-32768.0, -9999.0)
        np.testing.assert_array_equal(read_block(src), data[1:])
    labels = write_labels(tmp_path / "labels.gpkg")
    samples = sample_pixels(str(vrt), str(labels), "class")
    expected = sorted(p for p in labelled_pixels() if not holes[:, p[0], p[1]].any())
    assert sorted(zip(samples.rows.tolist(), samples.cols.tolist(), strict=True)) == expected
    np.testing.assert_array_equal(samples.x, data[:, samples.rows, samples.cols].T)
    model, out = tmp_path / "m.lpmodel", tmp_path / "map.tif"
    train_classifier(str(vrt), str(labels), "class", str(model), method="logistic_regression")
    classify_raster(str(vrt), str(model), str(out))
    with rasterio.open(out) as dst:
        classes = dst.read(1)
        assert (classes == dst.nodata).tolist() == holes.any(axis=0).tolist()


def test_training_and_classifying_several_files_of_mixed_types(tmp_path: Path,
                                                               landsat_files: tuple[list[Path], np.ndarray,
                                                                                    np.ndarray]) -> None:
    from engine.jobs.classify_raster import classify_raster
    from engine.jobs.train_classifier import train_classifier
    from engine.probes.model_file import read_manifest

    files, _, holes = landsat_files
    labels = write_labels(tmp_path / "labels.gpkg")
    model, out = tmp_path / "m.lpmodel", tmp_path / "map.tif"
    train_classifier([str(f) for f in files], str(labels), "class", str(model), method="logistic_regression")
    assert read_manifest(model)["input"]["dtype"] == "float32"
    result = classify_raster([str(f) for f in files], str(model), str(out))
    with rasterio.open(out) as dst:
        classes = dst.read(1)
    assert (classes == dst.nodata).tolist() == holes.any(axis=0).tolist()
    assert result.nodata_pixels == int(holes.any(axis=0).sum())
    stripes = np.repeat(np.arange(1, 4), SIZE // 3)[None, :].repeat(SIZE, axis=0)  # codes 1..3 in name order
    codes = {name: i + 1 for i, name in enumerate(sorted(CLASSES))}
    truth = np.vectorize(lambda k: codes[CLASSES[k - 1]])(stripes)
    valid = ~holes.any(axis=0)
    assert (classes[valid] == truth[valid]).mean() > 0.95


def test_the_command_line_takes_several_rasters_of_mixed_types(tmp_path: Path,
                                                              landsat_files: tuple[list[Path], np.ndarray,
                                                                                   np.ndarray]) -> None:
    from engine.cli import main

    files, _, holes = landsat_files
    labels = write_labels(tmp_path / "labels.gpkg")
    model, out = tmp_path / "m.lpmodel", tmp_path / "map.tif"
    rasters = [str(f) for f in files]
    assert main(["train", "--raster", *rasters, "--labels", str(labels), "--field", "class", "--output-model",
                 str(model), "--method", "logistic_regression", "--validation", "none"]) == 0
    assert main(["classify", "--raster", *rasters, "--model", str(model), "--output", str(out)]) == 0
    with rasterio.open(out) as dst:
        assert (dst.read(1) == dst.nodata).tolist() == holes.any(axis=0).tolist()


# --- bands that hold no value ------------------------------------------------------------------------------------


def empty_band_raster(path: Path, n_bands: int = 12, nan_bands: tuple[int, ...] = (5,),
                      nodata_bands: tuple[int, ...] = (9,), seed: int = 2) -> tuple[Path, np.ndarray]:
    """Float32 bands (nodata -9999) of which ``nan_bands`` are all NaN and ``nodata_bands`` all nodata (1-based)."""
    data = scene(n_bands, seed).astype("float32")
    for b in nan_bands:
        data[b - 1] = np.nan
    for b in nodata_bands:
        data[b - 1] = -9999
    names = [f"wavelength {400 + 10 * b} nm" for b in range(1, n_bands + 1)]
    return write(path, data, "float32", -9999, names), data


def nodata_corner(raster: Path, band: int = 7) -> np.ndarray:
    """Make ``band`` (a used one) nodata in the bottom-right corner, outside the labels; the corner's mask."""
    with rasterio.open(raster, "r+") as dst:
        values = dst.read(band)
        values[32:, 30:] = -9999
        dst.write(values, band)
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[32:, 30:] = True
    return mask


def test_an_empty_band_no_longer_makes_every_pixel_nodata(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    raster, data = empty_band_raster(tmp_path / "cube.tif")
    labels = write_labels(tmp_path / "labels.gpkg")
    with caplog.at_level(logging.WARNING, logger="engine"):
        samples = sample_pixels(str(raster), str(labels), "class")
    assert samples.empty_bands == [5, 9]
    assert len(samples.y) == len(labelled_pixels())  # no labelled pixel lost
    assert "band 5 (wavelength 450 nm)" in caplog.text and "band 9 (wavelength 490 nm)" in caplog.text
    kept = [b for b in range(12) if b not in (4, 8)]
    np.testing.assert_array_equal(samples.x[:, kept], data[kept][:, samples.rows, samples.cols].T)


def test_a_band_with_some_values_keeps_only_pixels_where_it_has_one(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    data = scene(4, seed=3).astype("float32")
    data[2, :, :24] = np.nan  # band 3 has values only in the third stripe
    raster = write(tmp_path / "partial.tif", data, "float32", -9999)
    labels = write_labels(tmp_path / "labels.gpkg")
    with caplog.at_level(logging.INFO, logger="engine"):
        samples = sample_pixels(str(raster), str(labels), "class")
    assert samples.empty_bands == []
    assert set(samples.cols.tolist()) <= set(range(24, 36)) and len(samples.y) == 27
    assert samples.stats["labelled_pixels_on_nodata"] == 54 and "54 of the 81 labelled pixels" in caplog.text


def test_every_band_empty_is_one_clear_error(tmp_path: Path) -> None:
    raster = write(tmp_path / "void.tif", np.full((3, SIZE, SIZE), -9999.0), "float32", -9999)
    labels = write_labels(tmp_path / "labels.gpkg")
    with pytest.raises(InputError, match=r"cover only nodata pixels of .*void\.tif \(every band is nodata"):
        sample_pixels(str(raster), str(labels), "class")


def test_empty_bands_are_left_out_of_the_features(tmp_path: Path) -> None:
    raster, data = empty_band_raster(tmp_path / "cube.tif")
    labels = write_labels(tmp_path / "labels.gpkg")
    loaded = load_raw_bands(str(raster), str(labels), "class", False, None, Feedback(), None)
    kept = [1, 2, 3, 4, 6, 7, 8, 10, 11, 12]
    assert loaded.bands == kept
    assert loaded.info.count == 10 and loaded.recipe["bands"] == list(range(1, 11))
    assert list(loaded.info.band_names) == [f"wavelength {400 + 10 * b} nm" for b in kept]
    assert loaded.recipe["names"] == list(loaded.info.band_names)
    s = loaded.samples
    np.testing.assert_array_equal(s.x, data[[b - 1 for b in kept]][:, s.rows, s.cols].T)
    assert [(b["band"], b["name"]) for b in s.stats["dropped_bands"]] == [(5, "wavelength 450 nm"),
                                                                           (9, "wavelength 490 nm")]


def test_empty_bands_compose_with_the_bands_chosen(tmp_path: Path) -> None:
    raster, data = empty_band_raster(tmp_path / "cube.tif")
    labels = write_labels(tmp_path / "labels.gpkg")
    chosen = list(range(2, 11))
    loaded = load_raw_bands(str(raster), str(labels), "class", False, None, Feedback(), None, chosen)
    assert loaded.bands == [2, 3, 4, 6, 7, 8, 10]
    assert loaded.info.count == 7
    s = loaded.samples
    np.testing.assert_array_equal(s.x, data[[1, 2, 3, 5, 6, 7, 9]][:, s.rows, s.cols].T)
    full = load_raw_bands(str(raster), str(labels), "class", False, None, Feedback(), None, [1, 2, 3])
    assert full.bands == [1, 2, 3] and full.info.count == 3  # nothing empty: the choice as it was


def test_band_roles_follow_the_bands_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = scene(7, seed=4).astype("float32")
    data[2] = -9999  # band 3 is empty
    raster = write(tmp_path / "roles.tif", data, "float32", -9999)
    labels = write_labels(tmp_path / "labels.gpkg")
    roles = "blue=1, green=2, red=4, nir=5, swir1=6, swir2=7"
    with caplog.at_level(logging.WARNING, logger="engine"):
        loaded = load_raw_bands(str(raster), str(labels), "class", True, roles, Feedback(), None)
    assert loaded.bands == [1, 2, 4, 5, 6, 7]
    assert loaded.recipe["indices"]["NDVI"] == [4, 3]  # nir and red, renumbered over the six bands kept
    s = loaded.samples
    red, nir = data[3, s.rows, s.cols], data[4, s.rows, s.cols]
    ndvi = s.x[:, loaded.recipe["names"].index("NDVI")]
    np.testing.assert_allclose(ndvi, (nir - red) / (nir + red), rtol=1e-5)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="engine"):
        gone = load_raw_bands(str(raster), str(labels), "class", True, "green=3, red=4, nir=5", Feedback(), None)
    assert set(gone.recipe["indices"]) == {"NDVI"}  # NDWI needed green, which is empty
    assert "green=3" in caplog.text and "indices NDWI" in caplog.text


def test_hundreds_of_bands_with_empty_ones_train_and_classify(tmp_path: Path) -> None:
    from engine.jobs.classify_raster import classify_raster
    from engine.jobs.train_classifier import train_classifier
    from engine.probes.model_file import read_manifest

    nan_bands, nodata_bands = (104, 105, 106), (1, 150, 224)
    raster, _ = empty_band_raster(tmp_path / "hsi.tif", 224, nan_bands, nodata_bands, seed=5)
    corner = nodata_corner(raster)
    labels = write_labels(tmp_path / "labels.gpkg")
    model, out = tmp_path / "hsi.lpmodel", tmp_path / "map.tif"
    train_classifier(str(raster), str(labels), "class", str(model), method="logistic_regression")
    used = [b for b in range(1, 225) if b not in nan_bands + nodata_bands]
    inputs = read_manifest(model)["input"]
    assert inputs["band_selection"] == used
    assert inputs["band_count"] == 218 and len(inputs["band_names"]) == 218
    classify_raster(str(raster), str(model), str(out))
    with rasterio.open(out) as dst:
        classes = dst.read(1)
    assert (classes == 0).tolist() == corner.tolist()  # codes 1..3, nodata 0: only where a used band is nodata


@pytest.mark.parametrize(("task", "chip"), [("patch", 5), ("hyperspectral", 5), ("segmentation", 32)])
def test_a_deep_model_leaves_out_the_empty_bands_and_maps_with_the_others(tmp_path: Path, task: str,
                                                                          chip: int) -> None:
    from engine.jobs.classify_raster import classify_raster
    from engine.jobs.finetune import finetune
    from engine.probes.model_file import read_manifest

    raster, _ = empty_band_raster(tmp_path / "cube.tif", 12, (5,), (9,))
    corner = nodata_corner(raster)
    labels = write_labels(tmp_path / "labels.gpkg")
    model, out = tmp_path / "deep.lpmodel", tmp_path / "map.tif"
    finetune(str(raster), str(labels), "class", str(model), task=task, chip_size=chip, epochs=1, n_pca=4,
             validation="none", device="cpu")
    inputs = read_manifest(model)["input"]
    assert inputs["bands_left_out"] == [5, 9]
    assert inputs["bands_read"] == [b for b in range(1, 13) if b not in (5, 9)]
    classify_raster(str(raster), str(model), str(out))
    with rasterio.open(out) as dst:
        classes = dst.read(1)
    assert (classes == dst.nodata).tolist() == corner.tolist()  # not every pixel: only where a read band is nodata


def test_the_encoder_leaves_out_bands_empty_everywhere(tmp_path: Path) -> None:
    from engine.embeddings.encoders import EncoderOptions
    from engine.embeddings.sources import load_encoded

    raster, _ = empty_band_raster(tmp_path / "cube.tif", 5, (2,), ())
    gdf = gpd.GeoDataFrame({"class": list(CLASSES) * 2},
                           geometry=[pixel_box(top, 12 * k + 2, 8, 8) for top in (0, 16) for k in range(3)], crs=CRS)
    gdf.to_file(tmp_path / "cells.gpkg")
    options = EncoderOptions("rcf_gaussian", patch_size=4, stride=4, n_features=8)
    loaded = load_encoded(str(raster), str(tmp_path / "cells.gpkg"), "class", options, 0.5, Feedback(), None)
    assert loaded.bands == [1, 3, 4, 5] and loaded.info.count == 4
    assert loaded.recipe["encoder"]["bands"] == [1, 2, 3, 4]
    assert [b["band"] for b in loaded.samples.stats["dropped_bands"]] == [2]
    assert np.isfinite(loaded.samples.x).all() and len(loaded.samples.y) > 0


def test_band_statistics_name_the_empty_bands(tmp_path: Path) -> None:
    from engine.embeddings.encode import band_statistics

    raster, _ = empty_band_raster(tmp_path / "cube.tif", 5, (2,), (4,))
    with rasterio.open(raster) as src, pytest.raises(InputError, match=r"band 2 \(wavelength 420 nm\), band 4"):
        band_statistics(src)


# --- scale and offset tags ---------------------------------------------------------------------------------------


def landsat_c2(path: Path, empty: int | None = None) -> tuple[Path, np.ndarray]:
    """Six UInt16 bands of Landsat Collection 2 surface reflectance: reflectance = DN x 0.0000275 - 0.2."""
    rng = np.random.default_rng(6)
    reflectance = np.clip(scene(6, seed=6) / 10_000 + rng.normal(0, 0.002, (6, SIZE, SIZE)), 0.01, 0.6)
    dn = np.round((reflectance + 0.2) / 0.0000275)
    if empty:
        dn[empty - 1] = 0
    names = ["Blue", "Green", "Red", "NIR", "SWIR 1", "SWIR 2"]
    return write(path, dn, "uint16", 0, names, scales=[0.0000275] * 6, offsets=[-0.2] * 6), dn


def test_indices_use_physical_values_and_the_model_records_the_tags(tmp_path: Path) -> None:
    raster, dn = landsat_c2(tmp_path / "c2.tif")
    labels = write_labels(tmp_path / "labels.gpkg")
    loaded = load_raw_bands(str(raster), str(labels), "class", True, None, Feedback(), None)
    assert loaded.recipe["scales"] == [0.0000275] * 6 and loaded.recipe["offsets"] == [-0.2] * 6
    s = loaded.samples
    red, nir = (dn[b, s.rows, s.cols] * 0.0000275 - 0.2 for b in (2, 3))
    ndvi = s.x[:, loaded.recipe["names"].index("NDVI")]
    np.testing.assert_allclose(ndvi, (nir - red) / (nir + red), atol=1e-5)
    stored = (dn[3, s.rows, s.cols] - dn[2, s.rows, s.cols]) / (dn[3, s.rows, s.cols] + dn[2, s.rows, s.cols])
    assert np.abs(ndvi - stored).max() > 0.05  # the stored numbers would give other indices
    np.testing.assert_allclose(s.x[:, 0], dn[0, s.rows, s.cols] * 0.0000275 - 0.2, atol=1e-6)


def test_a_model_applies_its_recorded_tags_and_old_models_see_stored_values(tmp_path: Path) -> None:
    from engine.embeddings.features import compute_features
    from engine.jobs.classify_raster import classify_raster
    from engine.jobs.train_classifier import train_classifier
    from engine.probes.model_file import read_manifest

    x = np.array([[10000.0, 20000.0], [12000.0, 30000.0]], dtype="float32")
    old = {"recipe": "raw_bands+indices", "bands": [1, 2], "indices": {"NDVI": [2, 1]}}
    np.testing.assert_allclose(compute_features(x, old)[:, 2], [(20000 - 10000) / 30000, 18000 / 42000], rtol=1e-6)
    new = old | {"scales": [0.0001, 0.0001], "offsets": [-0.5, -0.5]}
    np.testing.assert_allclose(compute_features(x, new), [[0.5, 1.5, 0.5], [0.7, 2.5, 1.8 / 3.2]], rtol=1e-5)

    raster, _ = landsat_c2(tmp_path / "c2.tif")
    labels = write_labels(tmp_path / "labels.gpkg")
    model, out = tmp_path / "m.lpmodel", tmp_path / "map.tif"
    train_classifier(str(raster), str(labels), "class", str(model), method="logistic_regression", indices=True)
    assert read_manifest(model)["features"]["scales"] == [0.0000275] * 6
    classify_raster(str(raster), str(model), str(out))
    with rasterio.open(out) as dst:
        assert (dst.read(1) != dst.nodata).all()


def test_band_stack_keeps_scale_and_offset(tmp_path: Path) -> None:
    raster, _ = landsat_c2(tmp_path / "c2.tif")
    with band_stack(str(raster), [3, 4]) as path, rasterio.open(path) as src:
        assert src.scales == (0.0000275, 0.0000275) and src.offsets == (-0.2, -0.2)
        assert src.descriptions == ("Red", "NIR") and src.nodatavals == (0.0, 0.0)


def test_an_encoder_normalises_physical_values(tmp_path: Path) -> None:
    from engine.embeddings.encode import band_statistics, prepare_encoder
    from engine.embeddings.encoders import EncoderOptions
    from engine.io.rasters import band_scaling, read_normalised

    raster, dn = landsat_c2(tmp_path / "c2.tif")
    with rasterio.open(raster) as src:
        scaling = band_scaling(src)
        assert scaling == ([0.0000275] * 6, [-0.2] * 6)
        mean, std = band_statistics(src, scaling=scaling)
        physical = dn * 0.0000275 - 0.2
        np.testing.assert_allclose(mean, physical.reshape(6, -1).mean(axis=1), rtol=1e-6)
        values, valid = read_normalised(src, [3, 4], 2, 3, 5, 6, mean[[2, 3]], std[[2, 3]], scaling)
        expected = (physical[[2, 3], 2:7, 3:9] - mean[[2, 3], None, None]) / std[[2, 3], None, None]
        np.testing.assert_allclose(values, expected, atol=1e-4)
        assert valid.all()
        built = prepare_encoder(src, EncoderOptions("rcf_gaussian", patch_size=4, stride=4, n_features=8))[0]
        assert built.metadata["scales"] == [0.0000275] * 6 and built.metadata["offsets"] == [-0.2] * 6


# --- small polygons and labels in another CRS --------------------------------------------------------------------


def test_a_one_pixel_polygon_samples_that_pixel(tmp_path: Path) -> None:
    data = scene(3, seed=7).astype("float32")
    raster = write(tmp_path / "r.tif", data, "float32", -9999)
    cells = [(7, 3), (20, 16), (33, 30), (0, 0)]
    gdf = gpd.GeoDataFrame({"class": ["water", "forest", "urban", "water"]},
                           geometry=[pixel_box(r, c) for r, c in cells], crs=CRS)
    gdf.to_file(tmp_path / "one_pixel.gpkg")
    samples = sample_pixels(str(raster), str(tmp_path / "one_pixel.gpkg"), "class")
    got = sorted(zip(samples.rows.tolist(), samples.cols.tolist(), strict=True))
    assert got == sorted(cells)
    for r, c in cells:
        i = int(np.flatnonzero((samples.rows == r) & (samples.cols == c))[0])
        np.testing.assert_array_equal(samples.x[i], data[:, r, c])


def test_labels_in_another_crs_sample_the_same_pixels(tmp_path: Path) -> None:
    data = scene(3, seed=8).astype("float32")
    raster = write(tmp_path / "r.tif", data, "float32", -9999)
    native = sample_pixels(str(raster), str(write_labels(tmp_path / "utm.gpkg")), "class")
    degrees = sample_pixels(str(raster), str(write_labels(tmp_path / "wgs84.gpkg", "EPSG:4326")), "class")
    mercator = sample_pixels(str(raster), str(write_labels(tmp_path / "merc.gpkg", "EPSG:3857")), "class")
    expected = sorted(labelled_pixels())
    for samples in (native, degrees, mercator):
        assert sorted(zip(samples.rows.tolist(), samples.cols.tolist(), strict=True)) == expected
        np.testing.assert_array_equal(samples.x, data[:, samples.rows, samples.cols].T)


def test_a_class_on_nodata_is_dropped_cleanly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Whole-number codes 1, 2, 3 where class 2's polygons lie on nodata: named in the log and the report, absent
    from the model, and the map's legend names every code the map can hold (no empty category name)."""
    import json
    import logging
    import xml.etree.ElementTree as ET

    from engine.jobs.classify_raster import classify_raster
    from engine.jobs.train_classifier import train_classifier

    data = scene(4, seed=3)
    data[:, :, 12:24] = -9999  # the middle stripe ("forest", code 2) holds no value
    raster = write(tmp_path / "scene.tif", data, "float32", -9999)
    shapes, codes = [], []
    for k in range(3):
        for top in (2, 14, 26):
            shapes.append(pixel_box(top, 12 * k + 4, 3, 3))
            codes.append(k + 1)
    labels = tmp_path / "codes.gpkg"
    gpd.GeoDataFrame({"code": codes}, geometry=shapes, crs=CRS).to_file(labels)
    model, report = tmp_path / "m.lpmodel", tmp_path / "r.json"
    with caplog.at_level(logging.WARNING):
        train_classifier(str(raster), str(labels), "code", str(model), output_report=str(report),
                         validation="none")
    assert "Left out of the model, no valid pixel under their labels: 2" in caplog.text
    written = json.loads(report.read_text())
    assert written["dropped_classes"] == ["2"] and [c["code"] for c in written["classes"]] == [1, 3]
    out = tmp_path / "map.tif"
    classify_raster(str(raster), str(model), str(out))
    with rasterio.open(out) as src:
        values = set(np.unique(src.read(1)).tolist())
        nodata = int(src.nodata)
    assert values <= {1, 3, nodata} and nodata in values  # the nodata stripe stays nodata
    names = [c.text or "" for c in ET.parse(str(out) + ".aux.xml").iter("Category")]
    assert names[1] == "1" and names[3] == "3" and names[nodata] == "no data"
    assert all(name.strip() for name in names)  # every code, even one the map cannot hold, has a name
    assert "2" not in {names[1], names[3]}
