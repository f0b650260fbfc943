"""Training and classifying the sample: model files, accuracy, grids, nodata, refusals."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterdata import write_like

from engine.core.errors import InputError, ModelFileError, OutputError
from engine.io.labels import sample_pixels
from engine.io.rasters import TMP_MARKER
from engine.jobs.classify_raster import classify_raster
from engine.jobs.train_classifier import train_classifier
from engine.probes.model_file import load_model
from engine.probes.registry import PROBES


@pytest.mark.parametrize("method", sorted(PROBES))
def test_train_writes_a_safe_model_and_an_honest_report(tmp_path: Path, sample_raster: Path,
                                                         sample_labels: Path, method: str) -> None:
    model, report = tmp_path / "m.lpmodel", tmp_path / "r.json"
    result = train_classifier(str(sample_raster), str(sample_labels), "class", str(model), method=method,
                              output_report=str(report))
    with zipfile.ZipFile(model) as zf:
        names = zf.namelist()
        manifest = json.loads(zf.read("manifest.json"))
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".joblib", ".pt"))]
    assert manifest["method"] == method
    assert manifest["input"]["band_count"] == 8
    assert [c["name"] for c in manifest["classes"]] == ["barren", "forest", "herbaceous", "urban", "water"]
    assert all(c["color"].startswith("#") for c in manifest["classes"])
    validation = json.loads(report.read_text())["validation"]
    assert validation["scheme"] == "polygon_groups"
    assert validation["n_test_polygons"] >= 5
    cm = np.array(validation["confusion_matrix"])
    assert np.isclose(np.trace(cm) / cm.sum(), result.overall_accuracy)
    assert result.overall_accuracy > 0.6  # chance is about 0.2 with five classes
    assert result.kappa > 0.4
    assert not list(tmp_path.glob(f"*{TMP_MARKER}*"))


def test_reloaded_model_predicts_the_same(tmp_path: Path, sample_raster: Path, sample_labels: Path) -> None:
    samples = sample_pixels(str(sample_raster), str(sample_labels), "class")
    for method in PROBES:
        model = tmp_path / f"{method}.lpmodel"
        # Classes balanced as each probe's default (the weighting left to cross-validation may choose either)
        train_classifier(str(sample_raster), str(sample_labels), "class", str(model), method=method,
                         class_weight="balanced")
        probe = PROBES[method]().fit(samples.x, samples.y, len(samples.classes))
        loaded = load_model(model).probe
        assert np.allclose(loaded.predict_proba(samples.x), probe.predict_proba(samples.x), atol=1e-4)


def test_classified_raster_keeps_grid_crs_and_nodata(tmp_path: Path, sample_raster: Path, sample_model: Path) -> None:
    with rasterio.open(sample_raster) as src:
        data = src.read()
        nodata = src.nodata
    data[:, 10:40, 20:90] = nodata
    holed = write_like(sample_raster, tmp_path / "holed.tif", data)
    out = tmp_path / "classes.tif"
    result = classify_raster(str(holed), str(sample_model), str(out), block=100)
    codes = {c["code"] for c in load_model(sample_model).manifest["classes"]}
    with rasterio.open(holed) as src, rasterio.open(out) as dst:
        assert (dst.width, dst.height, dst.count) == (src.width, src.height, 1)
        assert dst.transform == src.transform
        assert dst.crs == src.crs
        assert dst.nodata == 0
        classes = dst.read(1)
        assert dst.colormap(1)[1][:3] != (0, 0, 0)
    assert (classes[10:40, 20:90] == 0).all()
    valid = np.ones_like(classes, dtype=bool)
    valid[10:40, 20:90] = False
    assert set(np.unique(classes[valid])) <= codes
    assert len(set(np.unique(classes[valid]))) >= 4  # a real map, not one class everywhere
    assert result.nodata_pixels == 30 * 70
    assert sum(result.class_pixels.values()) == valid.sum()


def test_band_count_mismatch_is_refused(tmp_path: Path, sample_raster: Path, sample_model: Path) -> None:
    with rasterio.open(sample_raster) as src:
        three = write_like(sample_raster, tmp_path / "three.tif", src.read()[:3])
    with pytest.raises(ModelFileError, match=r"trained on 8 bands.*has 3"):
        classify_raster(str(three), str(sample_model), str(tmp_path / "x.tif"))
    assert not (tmp_path / "x.tif").exists()


def test_not_a_model_is_refused(tmp_path: Path, sample_raster: Path) -> None:
    fake = tmp_path / "fake.lpmodel"
    fake.write_text("hello")
    with pytest.raises(ModelFileError, match="not a Landprobe model"):
        classify_raster(str(sample_raster), str(fake), str(tmp_path / "x.tif"))


def test_unwritable_output_is_refused(tmp_path: Path, sample_raster: Path, sample_model: Path) -> None:
    blocker = tmp_path / "report.txt"  # a file where the output's folder should be: fails even for root
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="Cannot create the folder"):
        classify_raster(str(sample_raster), str(sample_model), str(blocker / "x.tif"))


@pytest.mark.parametrize("scheme", ["group_kfold", "spatial_blocks", "random_pixels"])
def test_validation_schemes_are_recorded_in_the_report(tmp_path: Path, sample_raster: Path, sample_labels: Path,
                                                       scheme: str) -> None:
    report = tmp_path / "r.json"
    train_classifier(str(sample_raster), str(sample_labels), "class", str(tmp_path / "m.lpmodel"),
                     output_report=str(report), validation=scheme, n_folds=3)
    validation = json.loads(report.read_text())["validation"]
    assert validation["scheme"] == scheme
    assert validation["optimistic"] is (scheme == "random_pixels")
    if scheme != "random_pixels":
        assert validation["n_folds"] == 3
        assert validation["n"] == validation["per_class"][0]["reference_count"] + sum(
            c["reference_count"] for c in validation["per_class"][1:])
    if scheme == "group_kfold":  # every polygon was tested once
        assert validation["n_test_polygons"] == validation["n_polygons"] == 30


def test_probability_confidence_and_legend(tmp_path: Path, sample_raster: Path, sample_model: Path) -> None:
    out, proba, conf = tmp_path / "classes.tif", tmp_path / "proba.tif", tmp_path / "conf.tif"
    classify_raster(str(sample_raster), str(sample_model), str(out), output_probability=str(proba),
                    output_confidence=str(conf), block=64)
    manifest = load_model(sample_model).manifest
    names = [c["name"] for c in manifest["classes"]]
    codes = np.array([c["code"] for c in manifest["classes"]])
    with rasterio.open(out) as c, rasterio.open(proba) as p, rasterio.open(conf) as k:
        classes, probabilities, confidence = c.read(1), p.read(), k.read(1)
        assert p.count == len(names)
        assert [d.removeprefix("probability of ") for d in p.descriptions] == names
        assert c.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert c.profile["tiled"] and p.transform == c.transform
        assert c.tags(1)["CLASS_1"] == names[0]
    assert np.allclose(probabilities.sum(axis=0), 1.0, atol=1e-4)
    index = np.searchsorted(codes, classes)
    assert np.array_equal(codes[index], classes)
    assert np.allclose(confidence, np.take_along_axis(probabilities, index[None], axis=0)[0])  # the mapped class's
    assert (probabilities.argmax(axis=0) == index).mean() > 0.95  # scores rank the mapped class first
    assert (confidence > 1 / len(names)).mean() > 0.95
    aux = (tmp_path / "classes.tif.aux.xml").read_text()
    assert all(f"<Category>{n}</Category>" in aux for n in names)
    qml = (tmp_path / "classes.qml").read_text()
    assert all(f'label="{n}"' in qml for n in names) and 'type="paletted"' in qml
    for ramp in (tmp_path / "proba.qml", tmp_path / "conf.qml"):  # 0..1 on a colour ramp in QGIS
        style = ramp.read_text()
        assert 'type="singlebandpseudocolor"' in style and 'minimumValue="0"' in style and 'maximumValue="1"' in style
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["classes.tif", "classes.tif.aux.xml", "classes.qml", "proba.tif", "proba.qml", "conf.tif", "conf.qml"])


def test_large_raster_gets_overviews_and_matches_small_windows(tmp_path: Path, large_raster: Path,
                                                               sample_model: Path) -> None:
    out = tmp_path / "large_classes.tif"
    result = classify_raster(str(large_raster), str(sample_model), str(out), threads=2)
    small = tmp_path / "small.tif"
    with rasterio.open(large_raster) as src:
        corner = write_like(large_raster, tmp_path / "corner.tif", src.read(window=((0, 250), (0, 250))))
    classify_raster(str(corner), str(sample_model), str(small), block=50, threads=1)
    with rasterio.open(out) as big, rasterio.open(small) as ref:
        assert big.overviews(1)[:2] == [2, 4]
        assert np.array_equal(big.read(1, window=((0, 250), (0, 250))), ref.read(1))
    assert sum(result.class_pixels.values()) == 3000 * 3000


def test_single_band_files_stack_like_the_multiband_raster(tmp_path: Path, sample_raster: Path,
                                                           sample_labels: Path, sample_model: Path) -> None:
    with rasterio.open(sample_raster) as src:
        data, transform = src.read(), src.transform
    bands = [str(write_like(sample_raster, tmp_path / f"b{i + 1}.tif", data[i:i + 1])) for i in range(len(data))]
    stacked = tmp_path / "stacked.tif"
    reference = tmp_path / "reference.tif"
    classify_raster(bands, str(sample_model), str(stacked))
    classify_raster(str(sample_raster), str(sample_model), str(reference))
    with rasterio.open(stacked) as a, rasterio.open(reference) as b:
        assert np.array_equal(a.read(1), b.read(1)) and a.transform == b.transform
    result = train_classifier(bands, str(sample_labels), "class", str(tmp_path / "m.lpmodel"))
    assert result.n_samples == sample_pixels(str(sample_raster), str(sample_labels), "class").stats["n_samples"]
    shifted = write_like(sample_raster, tmp_path / "shifted.tif", data[:1],
                         transform=rasterio.Affine.translation(30, 0) * transform)
    with pytest.raises(InputError, match="cannot be stacked"):
        classify_raster([*bands[:-1], str(shifted)], str(sample_model), str(tmp_path / "x.tif"))


def test_chosen_bands_are_kept_by_the_model_and_picked_again_when_classifying(tmp_path: Path,
                                                                             sample_raster: Path,
                                                                             sample_labels: Path) -> None:
    chosen = [1, 2, 3, 4, 5, 7]  # band 6 is thermal, band 8 all zero
    with rasterio.open(sample_raster) as src:
        subset = write_like(sample_raster, tmp_path / "subset.tif", src.read(chosen))
    picked, copied = tmp_path / "picked.lpmodel", tmp_path / "copied.lpmodel"
    train_classifier(str(sample_raster), str(sample_labels), "class", str(picked), bands=chosen)
    train_classifier(str(subset), str(sample_labels), "class", str(copied))
    manifest = load_model(picked).manifest
    assert manifest["input"]["band_count"] == 6 and manifest["input"]["band_selection"] == chosen
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    classify_raster(str(sample_raster), str(picked), str(a))  # the 8-band raster: the model picks its bands
    classify_raster(str(subset), str(copied), str(b))
    with rasterio.open(a) as x, rasterio.open(b) as y:
        assert np.array_equal(x.read(1), y.read(1))
    with pytest.raises(InputError, match="Band 9 does not exist"):
        train_classifier(str(sample_raster), str(sample_labels), "class", str(tmp_path / "x.lpmodel"), bands=[1, 9])


def test_classify_adjusts_the_mapped_areas_by_the_held_out_confusion_matrix(tmp_path: Path, sample_raster: Path,
                                                                           sample_model: Path) -> None:
    result = classify_raster(str(sample_raster), str(sample_model), str(tmp_path / "classes.tif"))
    manifest = load_model(sample_model).manifest
    cm = np.array(manifest["validation"]["confusion_matrix"], dtype=float)  # reference rows, map columns
    names = [c["name"] for c in manifest["classes"]]
    pixels = np.array([result.class_pixels[n] for n in names], dtype=float)
    weights = pixels / pixels.sum()
    # Olofsson et al. (2014) eq. 9 by hand: p_.j = sum_i W_i n_ij / n_i. (i: map class, j: reference class)
    expected = (weights[:, None] * cm.T / cm.T.sum(axis=1, keepdims=True)).sum(axis=0)
    estimate = result.area_estimate
    assert estimate is not None and "held-out polygons" in estimate["basis"]
    got = [row["proportion"] for row in estimate["per_class"]]
    assert np.allclose(got, expected) and np.isclose(sum(got), 1.0)
    assert [row["mapped_proportion"] for row in estimate["per_class"]] == pytest.approx(weights.tolist())
    with rasterio.open(sample_raster) as src:  # a projected CRS in metres: areas in hectares too
        pixel_ha = abs(src.transform.a * src.transform.e) / 1e4
    assert estimate["per_class"][0]["area_ha"] == pytest.approx(expected[0] * pixels.sum() * pixel_ha)
