"""Probes on embeddings: cell sampling by coverage, embedding rasters of every kind, encoders run on the fly."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from engine.core.errors import InputError, ModelFileError
from engine.embeddings.inputs import dequantize, describe_embeddings
from engine.jobs.classify_raster import classify_raster
from engine.jobs.extract_embeddings import extract_embeddings
from engine.jobs.train_classifier import train_classifier
from engine.samples.cells import sample_cells

CRS = "EPSG:32633"


def _float_raster(path: Path, data: np.ndarray, cell: float = 10.0, **profile: object) -> Path:
    meta = {"driver": "GTiff", "height": data.shape[1], "width": data.shape[2], "count": data.shape[0],
            "dtype": data.dtype.name, "crs": CRS, "transform": from_origin(0, data.shape[1] * cell, cell, cell)}
    with rasterio.open(path, "w", **(meta | profile)) as dst:
        dst.write(data)
    return path


def _labels(path: Path, boxes: list[tuple[tuple[float, float, float, float], str]]) -> Path:
    gpd.GeoDataFrame({"class": [c for _, c in boxes]}, geometry=[box(*b) for b, _ in boxes], crs=CRS).to_file(path)
    return path


def test_a_cell_takes_the_class_covering_most_of_it_above_the_minimum(tmp_path: Path) -> None:
    raster = _float_raster(tmp_path / "emb.tif", np.arange(2 * 2 * 4, dtype="float32").reshape(2, 2, 4))
    # Grid: 2 rows x 4 columns of 10 m cells, top-left at (0, 20).
    labels = _labels(tmp_path / "l.gpkg", [  # coverage is measured on 8 x 8 sub-cells of 1.25 m
        ((0, 10, 7, 20), "a"),     # cell (0, 0): 70 % a (sub-cells: 5 of 8 columns)
        ((10, 10, 14, 20), "b"),   # cell (0, 1): 40 % b (3 of 8)
        ((20, 10, 24, 20), "a"),   # cell (0, 2): 40 % a ...
        ((26, 10, 30, 20), "b"),   # ... and 40 % b
        ((30, 0, 40, 20), "b"),    # cells (0, 3) and (1, 3): whole
        ((31, 1, 39, 9), "a"),     # ... but in cell (1, 3), 36 sub-cells are claimed by both: b keeps 28 / 64
    ])
    cells = sample_cells(str(raster), str(labels), "class", min_coverage=0.5)
    got = {(int(r), int(c)): cells.classes[int(y)].name for r, c, y in zip(cells.rows, cells.cols, cells.y,
                                                                           strict=True)}
    assert got == {(0, 0): "a", (0, 3): "b"}
    assert cells.stats["cells_under_coverage"] == 3 and cells.stats["conflicting_pixels"] == 36
    # the feature values are the raster's at those cells
    first = np.nonzero((cells.rows == 0) & (cells.cols == 0))[0][0]
    with rasterio.open(raster) as src:
        np.testing.assert_array_equal(cells.x[first], src.read()[:, 0, 0])
    lower = sample_cells(str(raster), str(labels), "class", min_coverage=0.3)
    got = {(int(r), int(c)): lower.classes[int(y)].name for r, c, y in zip(lower.rows, lower.cols, lower.y,
                                                                           strict=True)}
    assert got == {(0, 0): "a", (0, 1): "b", (0, 2): "a", (0, 3): "b", (1, 3): "b"}  # a tie goes to the first
    with pytest.raises(InputError, match="covered to 95%"):
        sample_cells(str(raster), str(_labels(tmp_path / "small.gpkg", [((0, 10, 3, 20), "a"), ((10, 10, 13, 20),
                                                                                              "b")])),
                     "class", min_coverage=0.95)


def test_a_cell_window_gets_the_values_of_a_whole_raster_run(tmp_path: Path, sample_raster: Path) -> None:
    from engine.core.feedback import Feedback
    from engine.embeddings.encode import encode_raster, prepare_encoder
    from engine.embeddings.encoders import EncoderOptions

    whole = extract_embeddings(str(sample_raster), str(tmp_path / "whole.tif"), "rcf_gaussian", 16, 8, features=16)
    with rasterio.open(sample_raster) as src:
        built, name, patch, step, device = prepare_encoder(src, EncoderOptions("rcf_gaussian", 16, 8, n_features=16))
        encode_raster(src, built, name, tmp_path / "part.tif", patch, step, 64, device, Feedback(), "x", ["b"] * 8,
                      cell_window=(3, 9, 0, 5))
    with rasterio.open(whole.output) as a, rasterio.open(tmp_path / "part.tif") as b:
        np.testing.assert_allclose(b.read(), a.read()[:, 3:9, 0:5], rtol=1e-5, atol=1e-6)
        assert b.transform == a.window_transform(((3, 9), (0, 5)))


def test_encoder_on_the_fly_trains_and_maps_on_the_input_grid(tmp_path: Path, sample_raster: Path,
                                                              sample_labels: Path) -> None:
    model, report = tmp_path / "enc.lpmodel", tmp_path / "enc.json"
    result = train_classifier(str(sample_raster), str(sample_labels), "class", str(model), output_report=str(report),
                              features="encoder", encoder="rcf_gaussian", patch_size=8, stride=2,
                              learning_curve=True)
    assert result.n_samples > 100 and result.overall_accuracy is not None
    saved = json.loads(report.read_text())
    curve = {(r["features"], r["per_class"]) for r in saved["learning_curve"]["rows"]}
    assert ("raw bands (cell means)", 5) in curve and ("embeddings (rcf_gaussian)", "all") in curve
    assert Path(saved["projection"]["png"]).stat().st_size > 5000
    assert Path(saved["learning_curve"]["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    fine, coarse = tmp_path / "fine.tif", tmp_path / "coarse.tif"
    classify_raster(str(sample_raster), str(model), str(fine))
    classify_raster(str(sample_raster), str(model), str(coarse), output_grid="embedding")
    with rasterio.open(sample_raster) as src, rasterio.open(fine) as f, rasterio.open(coarse) as c:
        assert (f.crs, f.transform, f.shape) == (src.crs, src.transform, src.shape)
        assert c.transform == src.transform * src.transform.scale(2) and c.shape == (125, 125)
        big = np.kron(c.read(1), np.ones((2, 2), dtype="uint8"))  # nearest: every pixel takes its cell's class
        np.testing.assert_array_equal(f.read(1), big[:f.height, :f.width])
        assert f.colormap(1)[1] == c.colormap(1)[1]
    assert (tmp_path / "fine.qml").exists()


def test_embedding_rasters_train_classify_and_refuse_other_encoders(tmp_path: Path, sample_raster: Path,
                                                                    sample_labels: Path) -> None:
    emb = extract_embeddings(str(sample_raster), str(tmp_path / "emb.tif"), "rcf_gaussian", 8, 2, features=32)
    model = tmp_path / "m.lpmodel"
    train_classifier(emb.output, str(sample_labels), "class", str(model), features="embeddings")
    out = tmp_path / "map.tif"
    result = classify_raster(emb.output, str(model), str(out))
    with rasterio.open(emb.output) as e, rasterio.open(out) as m:
        assert (m.transform, m.shape) == (e.transform, e.shape)
    assert sum(result.class_pixels.values()) + result.nodata_pixels == 125 * 125
    on_raw = tmp_path / "on_raw.tif"
    classify_raster(emb.output, str(model), str(on_raw), grid_raster=str(sample_raster))
    with rasterio.open(on_raw) as r, rasterio.open(sample_raster) as s:
        assert (r.transform, r.shape) == (s.transform, s.shape)
    other = extract_embeddings(str(sample_raster), str(tmp_path / "other.tif"), "rcf_gaussian", 8, 4, features=32)
    with pytest.raises(ModelFileError, match=r"stride: 2 vs 4"):
        classify_raster(other.output, str(model), str(tmp_path / "x.tif"))
    with pytest.raises(ModelFileError, match="does not look like an embedding raster"):
        classify_raster(str(sample_raster), str(model), str(tmp_path / "y.tif"))
    assert not (tmp_path / "x.tif").exists() and not (tmp_path / "y.tif").exists()


def _alphaearth(path: Path, sample_raster: Path, sample_labels: Path) -> Path:
    """A 64-band int8 raster quantised like Google Satellite Embedding, one direction per class, -128 in a corner."""
    from engine.io.labels import read_labels

    with rasterio.open(sample_raster) as src:
        gdf, classes = read_labels(str(sample_labels), "class", src.crs.to_wkt())
        from rasterio import features

        index = features.rasterize(zip(gdf.geometry, gdf["_class"] + 1, strict=True), out_shape=src.shape,
                                   transform=src.transform, fill=0)
        profile = src.profile
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(len(classes) + 1, 64))
    vectors = directions[index] + rng.normal(0, 0.3, (*index.shape, 64))
    vectors /= np.linalg.norm(vectors, axis=-1, keepdims=True)  # unit length, as AlphaEarth's
    q = np.clip(np.round(np.sign(vectors) * np.sqrt(np.abs(vectors)) * 127.5), -127, 127).astype("int8")
    q = np.moveaxis(q, -1, 0)
    q[:, :20, :20] = -128
    profile.update(count=64, dtype="int8", nodata=None)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(q)
    return path


def test_alphaearth_int8_is_dequantised_and_its_nodata_kept(tmp_path: Path, sample_raster: Path,
                                                            sample_labels: Path) -> None:
    ae = _alphaearth(tmp_path / "ae.tif", sample_raster, sample_labels)
    source = describe_embeddings(str(ae))
    assert (source.kind, source.dim, source.nodata) == ("alphaearth", 64, -128)
    np.testing.assert_allclose(dequantize(np.array([[-127, 0, 64, 127]], dtype="int8"), "alphaearth"),
                               [[-(127 / 127.5) ** 2, 0, (64 / 127.5) ** 2, (127 / 127.5) ** 2]], rtol=1e-6)
    model = tmp_path / "ae.lpmodel"
    result = train_classifier(str(ae), str(sample_labels), "class", str(model), features="embeddings")
    assert result.overall_accuracy > 0.9  # the classes' directions are far apart
    out, proba = tmp_path / "ae_map.tif", tmp_path / "ae_p.tif"
    classify_raster(str(ae), str(model), str(out), output_probability=str(proba))
    with rasterio.open(out) as m, rasterio.open(proba) as p:
        classes = m.read(1)
        assert (classes[:20, :20] == m.nodata).all() and (classes[20:, 20:] != m.nodata).all()
        assert (p.read()[:, :20, :20] == -1).all()
    with pytest.raises(InputError, match="does not look like an embedding raster"):
        train_classifier(str(sample_raster), str(sample_labels), "class", str(tmp_path / "z.lpmodel"),
                         features="embeddings")


def test_other_embedding_rasters_are_recognised_and_raw_bands_are_not(tmp_path: Path) -> None:
    tessera = _float_raster(tmp_path / "tessera.tif", np.zeros((128, 4, 4), dtype="float32"))
    other = _float_raster(tmp_path / "other.tif", np.zeros((32, 4, 4), dtype="float32"))
    raw = _float_raster(tmp_path / "raw.tif", np.zeros((6, 4, 4), dtype="uint16"))
    assert (describe_embeddings(str(tessera)).kind, describe_embeddings(str(other)).kind) == ("tessera", "float")
    assert describe_embeddings(str(other)).dequantize is None
    with pytest.raises(InputError, match=r"6 bands of uint16.*choose 'raw bands'"):
        describe_embeddings(str(raw))


def test_embeddings_stored_as_whole_numbers_with_scale_and_offset_tags_are_used_as_embeddings(
        tmp_path: Path, sample_raster: Path, sample_labels: Path) -> None:
    from engine.probes.model_file import read_manifest

    ae = _alphaearth(tmp_path / "ae.tif", sample_raster, sample_labels)
    with rasterio.open(ae) as src:
        q = src.read().astype("int16")
        profile = src.profile | {"dtype": "int16", "count": 64, "nodata": -32768}
    physical = dequantize(np.moveaxis(q, 0, -1).reshape(-1, 64), "alphaearth").reshape(*q.shape[1:], 64)
    stored = np.round((np.moveaxis(physical, -1, 0) - 0.5) / 1e-4).astype("int16")  # value = stored x 1e-4 + 0.5
    stored[:, :20, :20] = -32768
    path = tmp_path / "scaled.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(stored)
        dst.scales, dst.offsets = [1e-4] * 64, [0.5] * 64
    source = describe_embeddings(str(path))
    assert source.kind == "scaled" and source.scales == [pytest.approx(1e-4)] * 64 and "tags applied" in source.label()
    np.testing.assert_allclose(dequantize(np.array([[100, -200]]), None, [1e-4, 1e-4], [0.5, 0.5]), [[0.51, 0.48]],
                               rtol=1e-6)
    model = tmp_path / "scaled.lpmodel"
    result = train_classifier(str(path), str(sample_labels), "class", str(model), features="embeddings",
                              method="knn")
    assert result.overall_accuracy > 0.9
    assert read_manifest(model)["features"]["embedding"]["offsets"] == [0.5] * 64
    out = tmp_path / "scaled_map.tif"
    classify_raster(str(path), str(model), str(out))
    with rasterio.open(out) as m:
        classes = m.read(1)
        assert (classes[:20, :20] == m.nodata).all() and (classes[20:, 20:] != m.nodata).all()
