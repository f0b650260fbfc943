"""Real ``qgis_process`` runs: the plugin loaded from QGIS_PLUGINPATH, the shipped model, and a failing run."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TIMEOUT_S = 300


def _run(qgis_process_bin: str, env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [qgis_process_bin, *args],
        env=env,
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def _json(proc: subprocess.CompletedProcess) -> dict[str, Any]:
    assert proc.returncode == 0, f"rc {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def test_qgis_process_lists_the_provider(
    qgis_process_bin: str, qgis_process_env: dict[str, str], tmp_path: Path
) -> None:
    proc = _run(qgis_process_bin, qgis_process_env, tmp_path, "list")
    assert proc.returncode == 0, proc.stderr
    for alg_id in ("landprobe:trainclassifier", "landprobe:classifyraster", "landprobe:enginestatus"):
        assert alg_id in proc.stdout


def test_qgis_process_engine_status(
    qgis_process_bin: str, qgis_process_env: dict[str, str], engine_python: str, tmp_path: Path
) -> None:
    result = _json(_run(qgis_process_bin, qgis_process_env, tmp_path, "run", "landprobe:enginestatus", "--json"))
    assert result["results"]["PYTHON"]
    assert result["results"]["ENGINE_VERSION"]


def test_qgis_process_runs_the_model(
    qgis_process_bin: str,
    qgis_process_env: dict[str, str],
    engine_python: str,
    sample_raster: Path,
    sample_labels: Path,
    tmp_path: Path,
    model3: Path,
    check_classified: Callable[..., None],
) -> None:
    model, report, classified = tmp_path / "model.lpmodel", tmp_path / "report.json", tmp_path / "classified.tif"
    proc = _run(
        qgis_process_bin,
        qgis_process_env,
        tmp_path,
        "run",
        str(model3),
        "--json",
        "--",
        f"raster={sample_raster}",
        f"labels={sample_labels}",
        "field=class",
        "method=0",
        f"train:trained_model={model}",
        f"train:validation_report={report}",
        f"classify:classified={classified}",
    )
    results = _json(proc)["results"]
    assert Path(results["train:trained_model"]) == model and model.is_file()
    assert Path(results["train:validation_report"]) == report and report.is_file()
    assert Path(results["classify:classified"]) == classified
    check_classified(classified, sample_raster, model)


def test_qgis_process_failure_has_exit_code_and_message(
    qgis_process_bin: str,
    qgis_process_env: dict[str, str],
    engine_python: str,
    sample_raster: Path,
    sample_labels: Path,
    tmp_path: Path,
) -> None:
    proc = _run(
        qgis_process_bin,
        qgis_process_env,
        tmp_path,
        "run",
        "landprobe:trainclassifier",
        "--",
        f"RASTER={sample_raster}",
        f"LABELS={sample_labels}",
        "FIELD=no_such_field",
        f"OUTPUT_MODEL={tmp_path / 'model.lpmodel'}",
    )
    assert proc.returncode != 0
    assert "no_such_field" in proc.stdout + proc.stderr
    assert not (tmp_path / "model.lpmodel").exists()
    assert not list(tmp_path.glob(".*.landprobe-tmp-*"))


@pytest.mark.parametrize(("method", "extra"), [("1", []), ("5", ["OBJECTIVE=1", "CLASS_WEIGHTS=2"])])
def test_qgis_process_trains_with_a_method(
    qgis_process_bin: str,
    qgis_process_env: dict[str, str],
    engine_python: str,
    sample_raster: Path,
    sample_labels: Path,
    tmp_path: Path,
    method: str,
    extra: list[str],
) -> None:
    model, report = tmp_path / "model.lpmodel", tmp_path / "report.json"
    proc = _run(
        qgis_process_bin,
        qgis_process_env,
        tmp_path,
        "run",
        "landprobe:trainclassifier",
        "--json",
        "--",
        f"RASTER={sample_raster}",
        f"LABELS={sample_labels}",
        "FIELD=class",
        f"METHOD={method}",
        *extra,
        f"OUTPUT_MODEL={model}",
        f"OUTPUT_REPORT={report}",
    )
    results = _json(proc)["results"]
    assert model.is_file()
    assert results["OVERALL_ACCURACY"] > 0.6
    written = json.loads(report.read_text())
    if method == "1":
        assert written["method"] == "xgboost" and written["selection"]["class_weight_option"] == "auto"
    else:  # automatic, balanced accuracy, no class weights: every candidate unweighted, the objective reported
        selection = written["selection"]
        assert selection["method"] == "auto" and selection["objective"] == "balanced_accuracy"
        assert {c["class_weight"] for c in selection["candidates"]} == {"none"}
        assert len(selection["candidates"]) == 9 and selection["winner"] == written["method_name"]


MODELS = Path(__file__).resolve().parents[2] / "resources" / "models"


def test_qgis_process_runs_the_embeddings_chain(
    qgis_process_bin: str, qgis_process_env: dict[str, str], engine_python: str, sample_raster: Path,
    sample_labels: Path, tmp_path: Path,
) -> None:
    from osgeo import gdal

    proc = _run(qgis_process_bin, qgis_process_env, tmp_path, "run", str(MODELS / "embedding_probe.model3"),
                "--json", "--", f"raster={sample_raster}", f"labels={sample_labels}", "field=class", "encoder=0",
                "patch_size=8", "stride=5", "method=0", f"embed:embeddings={tmp_path / 'emb.tif'}",
                f"train:trained_model={tmp_path / 'emb.lpmodel'}", f"train:validation_report={tmp_path / 'r.json'}",
                f"classify:classified={tmp_path / 'map.tif'}")
    results = _json(proc)["results"]
    embeddings, classified = gdal.Open(results["embed:embeddings"]), gdal.Open(results["classify:classified"])
    source = gdal.Open(str(sample_raster))
    assert (embeddings.RasterXSize, embeddings.RasterYSize) == (50, 50)  # 250 px in cells of 5
    assert classified.GetGeoTransform() == source.GetGeoTransform()  # the map is back on the raster's grid
    assert json.loads((tmp_path / "r.json").read_text())["features"]["recipe"] == "embeddings"


def test_qgis_process_runs_the_embeddings_similarity_chain(
    qgis_process_bin: str, qgis_process_env: dict[str, str], engine_python: str, sample_raster: Path,
    sample_labels: Path, tmp_path: Path,
) -> None:
    import numpy as np
    from osgeo import gdal

    forest = tmp_path / "forest.gpkg"
    gdal.VectorTranslate(str(forest), str(sample_labels), format="GPKG", where="class = 'forest'")
    proc = _run(qgis_process_bin, qgis_process_env, tmp_path, "run", str(MODELS / "embedding_similarity.model3"),
                "--json", "--", f"raster={sample_raster}", f"examples={forest}", "encoder=0", "patch_size=8",
                "stride=5", "mode=0", "threshold=0.8", f"embed:embeddings={tmp_path / 'emb.tif'}",
                f"similar:similarity={tmp_path / 'like.tif'}")
    results = _json(proc)["results"]
    similarity = gdal.Open(results["similar:similarity"])
    assert (similarity.RasterXSize, similarity.RasterYSize) == (50, 50)  # on the embedding grid, cells of 5 px
    values = similarity.GetRasterBand(1).ReadAsArray()
    assert similarity.GetRasterBand(1).DataType == gdal.GDT_Float32
    assert np.nanmin(values) >= 0 and np.nanmax(values) <= 1 and np.nanmax(values) > 0.9


def test_qgis_process_runs_the_change_chain_with_a_model(
    qgis_process_bin: str, qgis_process_env: dict[str, str], engine_python: str, sample_raster: Path,
    sample_labels: Path, tmp_path: Path,
) -> None:
    import numpy as np
    from osgeo import gdal

    after = sample_raster.with_name("LE70220492002106EDC00_stack.gtif")
    proc = _run(qgis_process_bin, qgis_process_env, tmp_path, "run", str(MODELS / "change_with_model.model3"),
                "--json", "--", f"raster={sample_raster}", f"labels={sample_labels}", "field=class",
                f"after={after}", "method=0", f"train:trained_model={tmp_path / 'm.lpmodel'}",
                f"change:change={tmp_path / 'change.tif'}", f"change:transitions={tmp_path / 'fromto.tif'}",
                f"change:report={tmp_path / 'change.json'}")
    results = _json(proc)["results"]
    change, transitions = gdal.Open(results["change:change"]), gdal.Open(results["change:transitions"])
    source = gdal.Open(str(sample_raster))
    assert change.GetGeoTransform() == source.GetGeoTransform() == transitions.GetGeoTransform()
    magnitude = change.GetRasterBand(1).ReadAsArray()
    assert change.GetRasterBand(1).DataType == gdal.GDT_Float32 and np.nanmax(magnitude) > 0
    names = transitions.GetRasterBand(1).GetCategoryNames()
    assert "forest -> forest" in names and "forest -> water" in names
    report = json.loads((tmp_path / "change.json").read_text())["change"]
    assert report["threshold"] > 0 and report["transitions"]["classes"] and (tmp_path / "change.html").is_file()


def test_qgis_process_runs_the_finetune_chain(
    qgis_process_bin: str, qgis_process_env: dict[str, str], engine_python: str, sample_raster: Path,
    sample_labels: Path, tmp_path: Path,
) -> None:
    from osgeo import gdal

    proc = _run(qgis_process_bin, qgis_process_env, tmp_path, "run", str(MODELS / "finetune_classify.model3"),
                "--json", "--", f"raster={sample_raster}", f"labels={sample_labels}", "field=class", "task=0",
                "backbone=5", "epochs=2", f"finetune:trained_model={tmp_path / 'deep.lpmodel'}",
                f"finetune:training_report={tmp_path / 'deep.json'}", f"classify:classified={tmp_path / 'map.tif'}")
    results = _json(proc)["results"]
    report = json.loads((tmp_path / "deep.json").read_text())
    assert len(report["training_curve"]["epochs"]) == 2
    classified, source = gdal.Open(results["classify:classified"]), gdal.Open(str(sample_raster))
    assert classified.GetGeoTransform() == source.GetGeoTransform()
    band = classified.GetRasterBand(1)  # the dataset stays alive while its band is used
    codes = {c["code"] for c in report["classes"]}
    assert set(band.ReadAsArray().ravel().tolist()) <= codes | {int(band.GetNoDataValue())}


def test_the_plugin_zip_installs_and_runs(
    qgis_process_bin: str, qgis_process_env: dict[str, str], engine_python: str, tmp_path: Path,
) -> None:
    import sys
    import zipfile

    root = Path(__file__).resolve().parents[2]
    built = subprocess.run([sys.executable, str(root / "scripts" / "build_zip.py"), "--output", str(tmp_path)],
                           capture_output=True, text=True, check=True)
    archive = Path(built.stdout.split(" (")[0])
    plugins = tmp_path / "plugins"
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        assert {n.split("/")[0] for n in names} == {"landprobe"}  # one folder, as QGIS expects
        assert "landprobe/metadata.txt" in names and "landprobe/LICENSE" in names
        assert not [n for n in names if "/tests/" in n or n.endswith(".pyc")]
        zf.extractall(plugins)  # what "Install from ZIP" does, into the profile's plugin folder
    env = qgis_process_env | {"QGIS_PLUGINPATH": str(plugins)}
    listed = _run(qgis_process_bin, env, tmp_path, "list")
    assert "landprobe:finetune" in listed.stdout and "landprobe:trainclassifier" in listed.stdout
    status = _json(_run(qgis_process_bin, env, tmp_path, "run", "landprobe:enginestatus", "--json"))
    assert status["results"]["ENGINE_VERSION"] == "0.1.0"  # the engine started from the installed copy
    assert archive.stat().st_size < 5_000_000


def test_qgis_process_json_for_the_other_algorithms(
    qgis_process_bin: str, qgis_process_env: dict[str, str], engine_python: str, sample_raster: Path,
    sample_labels: Path, tmp_path: Path, model3: Path,
) -> None:
    """assessaccuracy, exportonnx, importmat and labelpolygons headless (the others run in the tests above)."""
    def run(algorithm: str, *params: str) -> dict[str, Any]:
        return _json(_run(qgis_process_bin, qgis_process_env, tmp_path, "run", f"landprobe:{algorithm}", "--json",
                          "--", *params))["results"]

    _json(_run(qgis_process_bin, qgis_process_env, tmp_path, "run", str(model3), "--json", "--",
               f"raster={sample_raster}", f"labels={sample_labels}", "field=class",
               f"train:trained_model={tmp_path / 'm.lpmodel'}", f"classify:classified={tmp_path / 'map.tif'}"))
    assessed = run("assessaccuracy", f"CLASSIFIED={tmp_path / 'map.tif'}", f"REFERENCE={sample_labels}",
                   "FIELD=class", f"OUTPUT_REPORT={tmp_path / 'assess.json'}")
    assert 0.5 < assessed["OVERALL_ACCURACY"] <= 1 and Path(assessed["OUTPUT_HTML"]).is_file()
    deep = run("finetune", f"RASTER={sample_raster}", f"LABELS={sample_labels}", "FIELD=class", "BACKBONE=5",
               "EPOCHS=1", f"OUTPUT_MODEL={tmp_path / 'deep.lpmodel'}")
    assert deep["EPOCHS_RUN"] == 1
    onnx = run("exportonnx", f"MODEL={deep['OUTPUT_MODEL']}", f"OUTPUT={tmp_path / 'deep.onnx'}")
    assert Path(onnx["OUTPUT"]).stat().st_size > 0
    mat = Path(__file__).resolve().parents[1] / "data" / "hsi" / "Indian_pines_gt.mat"
    imported = run("importmat", f"MAT={mat}", f"OUTPUT={tmp_path / 'gt.tif'}")
    assert imported["BANDS"] == 1
    polygons = run("labelpolygons", f"RASTER={imported['OUTPUT']}", f"OUTPUT={tmp_path / 'gt.gpkg'}")
    assert polygons["POLYGONS"] > 16 and Path(polygons["OUTPUT"]).is_file()


def test_qgis_process_maps_a_region_of_tiles_and_resumes(
    qgis_process_bin: str,
    qgis_process_env: dict[str, str],
    engine_python: str,
    sample_raster: Path,
    sample_labels: Path,
    tmp_path: Path,
) -> None:
    import numpy as np
    from osgeo import gdal

    model = tmp_path / "model.lpmodel"
    _json(_run(qgis_process_bin, qgis_process_env, tmp_path, "run", "landprobe:trainclassifier", "--json", "--",
               f"RASTER={sample_raster}", f"LABELS={sample_labels}", "FIELD=class", "METHOD=0",
               f"OUTPUT_MODEL={model}"))
    single = tmp_path / "single.tif"
    _json(_run(qgis_process_bin, qgis_process_env, tmp_path, "run", "landprobe:classifyraster", "--json", "--",
               f"RASTER={sample_raster}", f"MODEL={model}", f"OUTPUT={single}"))
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    source = gdal.Open(str(sample_raster))
    half = source.RasterXSize // 2
    for i, (x, width) in enumerate(((0, half), (half, source.RasterXSize - half))):  # two tiles on its grid
        gdal.Translate(str(tiles / f"tile_{i}.tif"), source, srcWin=[x, 0, width, source.RasterYSize])
    args = ["run", "landprobe:mapregion", "--json", "--", f"TILES_FOLDER={tiles}", f"MODEL={model}",
            "BLOCK_SIZE=0", f"OUTPUT_FOLDER={tmp_path / 'region'}"]
    results = _json(_run(qgis_process_bin, qgis_process_env, tmp_path, *args))["results"]
    assert Path(results["OUTPUT"]) == tmp_path / "region" / "map.vrt" and results["BLOCKS_SKIPPED"] == 0
    got, want = gdal.Open(results["OUTPUT"]), gdal.Open(str(single))
    assert got.GetGeoTransform() == want.GetGeoTransform() and got.GetProjection() == want.GetProjection()
    assert np.array_equal(got.ReadAsArray(), want.ReadAsArray())
    assert got.GetRasterBand(1).GetCategoryNames()[1:] == want.GetRasterBand(1).GetCategoryNames()[1:]
    again = _json(_run(qgis_process_bin, qgis_process_env, tmp_path, *args))["results"]
    assert again["BLOCKS_SKIPPED"] == 1  # the sample is one block of 512 px: done, skipped


def test_qgis_process_clusters_the_sample_into_a_label_layer_that_trains_a_model(
    qgis_process_bin: str,
    qgis_process_env: dict[str, str],
    sample_raster: Path,
    tmp_path: Path,
) -> None:
    import numpy as np
    from osgeo import gdal, ogr

    def run(*args: str) -> dict[str, Any]:
        return _json(_run(qgis_process_bin, qgis_process_env, tmp_path, "run", *args))["results"]

    results = run("landprobe:cluster", "--json", "--", f"RASTER={sample_raster}", "K=0", "K_MAX=6", "SEED=3",
                  f"OUTPUT={tmp_path / 'clusters.tif'}", f"OUTPUT_POLYGONS={tmp_path / 'clusters.gpkg'}",
                  f"OUTPUT_REPORT={tmp_path / 'clusters.json'}", f"OUTPUT_MODEL={tmp_path / 'clusters.lpmodel'}")
    k = int(results["CLUSTERS"])
    assert 2 <= k <= 6 and Path(results["OUTPUT_HTML"]).is_file()
    mapped, source = gdal.Open(results["OUTPUT"]), gdal.Open(str(sample_raster))
    assert mapped.GetGeoTransform() == source.GetGeoTransform()
    assert mapped.GetProjection() == source.GetProjection()
    codes = mapped.GetRasterBand(1).ReadAsArray()
    assert set(np.unique(codes).tolist()) <= set(range(k + 1))
    assert mapped.GetRasterBand(1).GetCategoryNames()[1] == "cluster 1"
    # a user names the clusters in the attribute table: here, each polygon its cluster's name
    layer_file = ogr.Open(results["OUTPUT_POLYGONS"], 1)
    layer = layer_file.GetLayer(0)
    assert layer.GetFeatureCount() > k and layer.GetLayerDefn().GetFieldIndex("class") >= 0
    for feature in layer:
        feature.SetField("class", f"cover {feature.GetField('cluster')}")
        layer.SetFeature(feature)
    layer_file = None
    trained = run("landprobe:trainclassifier", "--json", "--", f"RASTER={sample_raster}",
                  f"LABELS={results['OUTPUT_POLYGONS']}", "FIELD=class", "METHOD=0",
                  f"OUTPUT_MODEL={tmp_path / 'named.lpmodel'}")
    assert trained["OVERALL_ACCURACY"] > 0.5


def test_qgis_process_trains_a_regressor_and_maps_the_quantity(
    qgis_process_bin: str,
    qgis_process_env: dict[str, str],
    sample_raster: Path,
    sample_labels: Path,
    tmp_path: Path,
) -> None:
    import numpy as np
    from osgeo import gdal

    plots = tmp_path / "plots.gpkg"  # a canopy cover per polygon, as a field survey would give it
    gdal.VectorTranslate(str(plots), str(sample_labels), format="GPKG", SQLDialect="SQLite", SQLStatement=(
        "SELECT *, CASE class WHEN 'forest' THEN 85.0 WHEN 'herbaceous' THEN 30.0 WHEN 'barren' THEN 5.0 "
        "WHEN 'urban' THEN 10.0 ELSE 0.0 END AS cover FROM training_data"))

    def run(*args: str) -> dict[str, Any]:
        return _json(_run(qgis_process_bin, qgis_process_env, tmp_path, "run", *args))["results"]

    trained = run("landprobe:trainregressor", "--json", "--", f"RASTER={sample_raster}", f"LABELS={plots}",
                  "FIELD=cover", "UNIT=%", "METHOD=2", f"OUTPUT_MODEL={tmp_path / 'cover.lpmodel'}",
                  f"OUTPUT_REPORT={tmp_path / 'cover.json'}")
    assert trained["R2"] > 0.5 and Path(trained["OUTPUT_HTML"]).is_file()
    mapped = run("landprobe:classifyraster", "--json", "--", f"RASTER={sample_raster}",
                 f"MODEL={tmp_path / 'cover.lpmodel'}", f"OUTPUT={tmp_path / 'cover.tif'}",
                 f"OUTPUT_UNCERTAINTY={tmp_path / 'cover_spread.tif'}")
    out, source = gdal.Open(mapped["OUTPUT"]), gdal.Open(str(sample_raster))
    band = out.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Float32 and np.isnan(band.GetNoDataValue())
    assert out.GetGeoTransform() == source.GetGeoTransform() and band.GetDescription() == "cover (%)"
    values = band.ReadAsArray()
    # a random forest stays within the values it was trained on (0 to 85 %)
    assert 0 <= np.nanmin(values) and np.nanmax(values) <= 85 and np.nanstd(values) > 10
    assert "singlebandpseudocolor" in (tmp_path / "cover.qml").read_text()
    # the forest's per-pixel uncertainty (its trees' standard deviation), on the same grid and nodata
    spread_file = gdal.Open(mapped["OUTPUT_UNCERTAINTY"])  # kept: a band outlives no dataset in GDAL's Python
    spread_band = spread_file.GetRasterBand(1)
    spread = spread_band.ReadAsArray()
    assert spread_band.DataType == gdal.GDT_Float32 and np.isnan(spread_band.GetNoDataValue())
    assert (np.isnan(spread) == np.isnan(values)).all() and 0 <= np.nanmin(spread) and np.nanmax(spread) > 0
    assert spread_band.GetDescription().startswith("uncertainty of cover (%)")


def test_qgis_process_suggests_where_to_label_and_the_filled_points_train_the_next_model(
    qgis_process_bin: str,
    qgis_process_env: dict[str, str],
    sample_raster: Path,
    sample_labels: Path,
    tmp_path: Path,
) -> None:
    from osgeo import ogr

    def run(*args: str) -> dict[str, Any]:
        return _json(_run(qgis_process_bin, qgis_process_env, tmp_path, "run", *args))["results"]

    run("landprobe:trainclassifier", "--json", "--", f"RASTER={sample_raster}", f"LABELS={sample_labels}",
        "FIELD=class", "METHOD=0", f"OUTPUT_MODEL={tmp_path / 'first.lpmodel'}")
    suggested = run("landprobe:suggestlabels", "--json", "--", f"RASTER={sample_raster}",
                    f"MODEL={tmp_path / 'first.lpmodel'}", f"LABELS={sample_labels}", "N_POINTS=10",
                    f"OUTPUT={tmp_path / 'next.gpkg'}", f"OUTPUT_REPORT={tmp_path / 'next.json'}")
    assert suggested["POINTS"] == 10
    rule = json.loads(Path(suggested["OUTPUT_REPORT"]).read_text())["suggestions"]  # the rule and its settings
    assert rule["rule"] == "margin" and rule["spacing"] == 10 and len(rule["points"]) == 10
    assert "Where to label next" in Path(suggested["OUTPUT_HTML"]).read_text()
    source = ogr.Open(suggested["OUTPUT"], 1)  # a user fills in each point's class (here: the model's first guess)
    layer = source.GetLayer(0)
    assert layer.GetFeatureCount() == 10
    for feature in layer:
        assert feature.GetField("class") is None and feature.GetField("top1")
        feature.SetField("class", feature.GetField("top1"))
        layer.SetFeature(feature)
    source = None
    run("landprobe:trainclassifier", "--json", "--", f"RASTER={sample_raster}", f"LABELS={sample_labels}",
        "FIELD=class", "METHOD=0", f"MORE_LABELS={tmp_path / 'next.gpkg'}",
        f"OUTPUT_MODEL={tmp_path / 'second.lpmodel'}")
    merged = ogr.Open(str(tmp_path / "second.labels.gpkg"))
    assert merged.GetLayer(0).GetFeatureCount() == 30 + 10
