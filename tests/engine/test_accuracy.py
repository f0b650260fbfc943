"""Accuracy assessment against reference polygons, area-adjusted estimates (Olofsson et al. 2014) and reports."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterdata import write_like
from rasterio import features
from shapely.geometry import box

from engine.assess.metrics import area_adjusted, confusion_matrix
from engine.assess.report import write_report
from engine.core.errors import CancelledError
from engine.core.feedback import Feedback
from engine.jobs.assess_accuracy import assess_accuracy
from engine.jobs.classify_raster import classify_raster


@pytest.fixture(scope="module")
def classified(tmp_path_factory: pytest.TempPathFactory, sample_raster: Path, sample_model: Path) -> Path:
    out = tmp_path_factory.mktemp("map") / "map.tif"
    classify_raster(str(sample_raster), str(sample_model), str(out))
    return out


def independent_cm(map_path: Path, labels: Path, field: str, names: list[str]) -> tuple[np.ndarray, int]:
    """The confusion matrix by whole-grid rasterisation: one mask per reference class, overlaps of classes dropped."""
    with rasterio.open(map_path) as src:
        data, nodata, transform, crs = src.read(1), src.nodata, src.transform, src.crs
        tags = {int(k[6:]): v for k, v in src.tags(1).items() if k.startswith("CLASS_")}
    gdf = gpd.read_file(labels).to_crs(crs)
    ref_names = gdf[field].astype(str).to_numpy()
    claims = np.zeros(data.shape, dtype=int)
    ref = np.full(data.shape, "", dtype=object)
    for name in np.unique(ref_names):
        mask = features.rasterize(gdf.geometry[ref_names == name], out_shape=data.shape, transform=transform,
                                  fill=0, default_value=1, dtype="uint8").astype(bool)
        claims += mask
        ref[mask] = name
    keep = (claims == 1) & (data != nodata)
    map_names = np.array([tags.get(int(c), str(int(c))) for c in data[keep]])
    index = {n: i for i, n in enumerate(names)}
    cm = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(cm, ([index[n] for n in ref[keep]], [index[n] for n in map_names]), 1)
    return cm, int(((claims > 1) & (data != nodata)).sum())


def load(path: str) -> dict:
    return json.loads(Path(path).read_text())


def test_assessment_matches_independent_computation(tmp_path: Path, classified: Path, sample_labels: Path) -> None:
    result = assess_accuracy(str(classified), str(sample_labels), "class", str(tmp_path / "acc.json"))
    report = load(result.output_report)
    v = report["validation"]
    cm = np.array(v["confusion_matrix"])
    expected, _ = independent_cm(classified, sample_labels, "class", v["classes"])
    np.testing.assert_array_equal(cm, expected)
    assert set(v["classes"]) == set(gpd.read_file(sample_labels)["class"])
    n = cm.sum()
    oa = np.trace(cm) / n
    pe = (cm.sum(0) * cm.sum(1)).sum() / n**2
    assert result.n == n == v["n"]
    assert result.overall_accuracy == pytest.approx(oa) and v["overall_accuracy"] == pytest.approx(oa)
    assert result.kappa == pytest.approx((oa - pe) / (1 - pe))
    assert v["scheme"] == "independent reference" and v["conflicting_pixels"] == 0

    html = Path(result.output_html).read_text()
    assert Path(result.output_html) == tmp_path / "acc.html"
    for name in v["classes"]:
        assert f">{name}<" in html
    assert f"{oa:.1%}" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html

    area = report["area_adjusted"]
    with rasterio.open(classified) as src:
        valid = int((src.read(1) != src.nodata).sum())
    assert area["total_area_ha"] == pytest.approx(valid * 30 * 30 / 1e4)
    assert sum(c["area_ha"] for c in area["per_class"]) == pytest.approx(area["total_area_ha"])
    assert sum(c["mapped_area_ha"] for c in area["per_class"]) == pytest.approx(area["total_area_ha"])
    assert all(c["area_ha_ci95"] >= 0 for c in area["per_class"])
    assert not list(tmp_path.glob(".*landprobe-tmp*"))


def test_extra_map_class_unknown_reference_class_and_overlaps(tmp_path: Path, classified: Path,
                                                              sample_labels: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    with rasterio.open(classified) as src:
        data, tags = src.read(1), src.tags(1)
    data[100:140, 100:140] = 9  # a "cloud" class that no reference feature has
    cloudy = write_like(classified, tmp_path / "cloudy.tif", data[None])
    with rasterio.open(cloudy, "r+") as dst:
        dst.update_tags(1, **tags, CLASS_9="cloud")
    gdf = gpd.read_file(sample_labels)
    gdf["class"] = gdf["class"].replace({"urban": "wetland"})  # a reference class the map does not know
    clash = gdf.iloc[[0]].assign(**{"class": "water"})  # a copy of a forest polygon labelled water
    labels = tmp_path / "labels.gpkg"
    pd.concat([gdf, clash]).to_file(labels)

    with caplog.at_level(logging.WARNING, logger="engine"):
        result = assess_accuracy(str(cloudy), str(labels), "class", str(tmp_path / "acc.json"))
    v = load(result.output_report)["validation"]
    names = v["classes"]
    cm = np.array(v["confusion_matrix"])
    expected, conflicts = independent_cm(cloudy, labels, "class", names)
    np.testing.assert_array_equal(cm, expected)
    assert conflicts > 0 and v["conflicting_pixels"] == conflicts
    assert "cloud" in names and "wetland" in names and "urban" in names
    wetland, cloud = names.index("wetland"), names.index("cloud")
    assert cm[cloud].sum() == 0 and cm[:, wetland].sum() == 0 and cm[wetland].sum() > 0
    assert v["reference_classes_not_in_map"] == ["wetland"]
    assert "wetland" in caplog.text and "different classes" in caplog.text
    html = Path(result.output_html).read_text()
    assert "cloud" in html and "wetland" in html


def test_integer_map_without_tags(tmp_path: Path, classified: Path, sample_labels: Path) -> None:
    with rasterio.open(classified) as src:
        data, nodata = src.read(1), src.nodata
        code_of = {v: int(k[6:]) for k, v in src.tags(1).items() if k.startswith("CLASS_")}
    plain = write_like(classified, tmp_path / "plain.tif", data[None], nodata=nodata)
    gdf = gpd.read_file(sample_labels)
    gdf["code"] = gdf["class"].map(code_of).astype("int64")
    labels = tmp_path / "coded.gpkg"
    gdf.to_file(labels)

    coded = load(assess_accuracy(str(plain), str(labels), "code", str(tmp_path / "coded.json")).output_report)
    named = load(assess_accuracy(str(classified), str(sample_labels), "class", str(tmp_path / "named.json"))
                 .output_report)
    assert coded["validation"]["classes"] == [str(c) for c in sorted(code_of.values())]
    assert coded["validation"]["confusion_matrix"] == named["validation"]["confusion_matrix"]
    assert coded["validation"]["overall_accuracy"] == pytest.approx(named["validation"]["overall_accuracy"])


def test_cancel_leaves_no_report(tmp_path: Path, classified: Path, sample_labels: Path) -> None:
    feedback = Feedback()
    feedback.cancel()
    with pytest.raises(CancelledError):
        assess_accuracy(str(classified), str(sample_labels), "class", str(tmp_path / "acc.json"), feedback)
    assert list(tmp_path.iterdir()) == []


def test_olofsson_2014_worked_example() -> None:
    # Table 8 of Olofsson et al. (2014): rows = map class, columns = reference class (sample counts).
    n = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])
    map_pixels = np.array([200_000, 150_000, 3_200_000, 6_450_000])
    out = area_adjusted(n.T, map_pixels, 900.0)  # our matrices have reference rows
    c = out["per_class"]
    # Section 5 of the paper, rounded as printed there.
    for k, (a, ci) in enumerate([(21_158, 6_158), (11_686, 3_756), (285_770, 15_510), (581_386, 16_282)]):
        assert c[k]["area_ha"] == pytest.approx(a, abs=1) and c[k]["area_ha_ci95"] == pytest.approx(ci, abs=1)
    for k, (ua, ci) in enumerate([(0.88, 0.07), (0.73, 0.10), (0.93, 0.04), (0.96, 0.02)]):
        assert c[k]["users_accuracy"] == pytest.approx(ua, abs=0.005)
        assert c[k]["users_accuracy_ci95"] == pytest.approx(ci, abs=0.005)
    for k, pa in enumerate([0.75, 0.85, 0.93, 0.96]):
        assert c[k]["producers_accuracy"] == pytest.approx(pa, abs=0.006)
    assert out["overall_accuracy"] == pytest.approx(0.95, abs=0.005)
    assert out["overall_accuracy_ci95"] == pytest.approx(0.02, abs=0.005)
    assert out["total_area_ha"] == pytest.approx(900_000)
    assert sum(x["area_ha"] for x in c) == pytest.approx(900_000)


def test_confidence_intervals_cover_a_known_population() -> None:
    """Stratified random samples of a finite population whose true areas, PA and OA are known."""
    rng = np.random.default_rng(0)
    # Reference class counts inside each map stratum (rows: map class) of a 100 000-pixel population.
    population = np.array([[4_000, 600, 400], [2_000, 15_000, 3_000], [3_000, 4_500, 67_500]])
    strata = [np.repeat(np.arange(3), row) for row in population]
    true_area = population.sum(0) / population.sum()
    true_pa = np.diag(population) / population.sum(0)
    true_oa = np.trace(population) / population.sum()
    sizes = [100, 150, 250]  # enough samples for the normal approximation
    hits = np.zeros(7)
    trials = 200
    for _ in range(trials):
        ref = np.concatenate([rng.choice(s, size, replace=False) for s, size in zip(strata, sizes, strict=True)])
        mapped = np.repeat(np.arange(3), sizes)
        out = area_adjusted(confusion_matrix(ref, mapped, 3), population.sum(1), 100.0)
        c = out["per_class"]
        hits[:3] += [abs(c[k]["proportion"] - true_area[k]) <= c[k]["proportion_ci95"] for k in range(3)]
        hits[3:6] += [abs(c[k]["producers_accuracy"] - true_pa[k]) <= c[k]["producers_accuracy_ci95"]
                      for k in range(3)]
        hits[6] += abs(out["overall_accuracy"] - true_oa) <= out["overall_accuracy_ci95"]
    assert (hits / trials >= 0.9).all(), hits / trials  # nominal 0.95; about 0.94 on average over seeds


def test_unsampled_stratum_and_sparse_report(tmp_path: Path) -> None:
    cm = np.array([[10, 2, 0], [1, 8, 0], [0, 0, 0]])  # map class 2 is mapped but never sampled
    out = area_adjusted(cm, np.array([50, 40, 10]), 100.0, ["a", "b", "c"])
    assert out["unsampled_strata"] == ["c"] and out["overall_accuracy"] is None
    assert out["per_class"][0]["users_accuracy"] == pytest.approx(10 / 11)
    assert out["per_class"][2]["users_accuracy"] is None and out["per_class"][0]["area_ha"] is None
    single = area_adjusted(np.array([[1, 0], [0, 5]]), np.array([10, 10]), None)
    assert single["per_class"][0]["users_accuracy_ci95"] is None and single["overall_accuracy"] == 1.0
    json_path, html_path = write_report({"title": "Bare <report>", "validation": None,
                                         "area_adjusted": out}, str(tmp_path / "r.json"))
    html = Path(html_path).read_text()
    assert "Bare &lt;report&gt;" in html and "n/a" in html and "without any reference sample" in html
    assert load(json_path)["title"] == "Bare <report>"


def write_class_map(path: Path, data: np.ndarray, names: dict[int, str]) -> Path:
    """A class map in a projected CRS (30 m pixels) with its class names as ``CLASS_<code>`` tags."""
    transform = rasterio.transform.from_origin(500_000, 4_000_000, 30, 30)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype.name, nodata=0, crs="EPSG:32633", transform=transform) as dst:
        dst.write(data, 1)
        dst.update_tags(1, **{f"CLASS_{code}": name for code, name in names.items()})
    return path


def pixel_box(row0: int, row1: int, col0: int, col1: int) -> box:
    """The polygon covering pixels ``row0..row1-1`` x ``col0..col1-1`` of :func:`write_class_map`'s grid."""
    return box(500_000 + 30 * col0, 4_000_000 - 30 * row1, 500_000 + 30 * col1, 4_000_000 - 30 * row0)


def test_macro_f1_is_the_mean_of_the_table_over_reference_classes(tmp_path: Path) -> None:
    data = np.zeros((40, 40), dtype="uint8")
    data[:20, :20], data[:20, 20:], data[20:, :20], data[20:, 20:] = 1, 2, 3, 2
    data[39, 39] = 0  # a nodata pixel
    classified = write_class_map(tmp_path / "map.tif", data, {1: "water", 2: "forest", 3: "urban"})
    reference = gpd.GeoDataFrame(
        {"class": ["Water", "forest", "forest", "wetland"]},  # "Water" matches the map's "water" (case ignored)
        geometry=[pixel_box(2, 10, 2, 22),  # 144 px water, 16 px forest
                  pixel_box(22, 30, 22, 30),  # 64 px forest
                  pixel_box(22, 26, 12, 20),  # 32 px urban: a map class without reference pixels
                  pixel_box(30, 36, 30, 36)],  # 36 px forest: a reference class the map never predicts
        crs="EPSG:32633")
    labels = tmp_path / "reference.gpkg"
    reference.to_file(labels)

    result = assess_accuracy(str(classified), str(labels), "class", str(tmp_path / "acc.json"))
    v = load(result.output_report)["validation"]
    assert v["classes"] == ["water", "forest", "urban", "wetland"]
    assert v["confusion_matrix"] == [[144, 16, 0, 0], [0, 64, 32, 0], [0, 0, 0, 0], [0, 36, 0, 0]]
    table = {c["class"]: c for c in v["per_class"]}
    reference_classes = [name for name, c in table.items() if c["reference_count"] > 0]
    assert reference_classes == v["macro_f1_classes"] == ["water", "forest", "wetland"]
    assert v["macro_f1"] == pytest.approx(np.mean([table[name]["f1"] for name in reference_classes]))
    assert v["macro_f1"] == pytest.approx((288 / 304 + 128 / 212 + 0.0) / 3)
    assert result.macro_f1 == v["macro_f1"]
    assert v["balanced_accuracy"] == pytest.approx((144 / 160 + 64 / 96 + 0.0) / 3)
    assert result.balanced_accuracy == v["balanced_accuracy"]
    assert table["urban"]["no_reference"] and not table["urban"]["never_mapped"]
    assert table["urban"]["f1"] is None and table["urban"]["producers_accuracy"] is None
    assert table["urban"]["users_accuracy"] == 0.0
    assert table["wetland"]["never_mapped"] and not table["wetland"]["no_reference"]
    assert table["wetland"]["f1"] == 0.0 and table["wetland"]["producers_accuracy"] == 0.0
    assert not any(table[name][flag] for name in ("water", "forest") for flag in ("no_reference", "never_mapped"))
    assert v["map_classes_without_reference"] == ["urban"] and v["reference_classes_not_in_map"] == ["wetland"]

    html = Path(result.output_html).read_text()
    assert "Macro F1 is the mean over the 3 classes present in the reference" in html
    assert "no reference pixels" in html and "never mapped" in html
    assert f"balanced accuracy {v['balanced_accuracy']:.1%}" in html
    assert f"macro F1 {v['macro_f1']:.3f}" in html
