"""The provider and its algorithms in QGIS's own Python, with the real engine (skipped when there is none)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback

EXPECTED_ALGORITHMS = {
    "landprobe:trainclassifier",
    "landprobe:trainregressor",
    "landprobe:classifyraster",
    "landprobe:mapregion",
    "landprobe:cluster",
    "landprobe:similarity",
    "landprobe:change",
    "landprobe:suggestlabels",
    "landprobe:assessaccuracy",
    "landprobe:enginestatus",
    "landprobe:extractembeddings",
    "landprobe:finetune",
    "landprobe:exportonnx",
    "landprobe:importmat",
    "landprobe:labelpolygons",
    "landprobe:installengine",
}


def test_provider_is_registered_with_its_algorithms(landprobe_plugin: Any) -> None:
    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("landprobe")
    assert provider is not None and provider.name() == "Landprobe"
    assert {alg.id() for alg in provider.algorithms()} == EXPECTED_ALGORITHMS
    assert provider.supportedOutputRasterLayerExtensions() == ["tif"]
    for alg_id in EXPECTED_ALGORITHMS:
        alg = registry.algorithmById(alg_id)
        assert alg.shortHelpString() and alg.displayName() and alg.group()
        assert type(alg.createInstance()) is type(alg) and alg.createInstance().name() == alg.name()


def test_contract_parameter_names(landprobe_plugin: Any) -> None:
    registry = QgsApplication.processingRegistry()
    train = registry.algorithmById("landprobe:trainclassifier")
    assert [p.name() for p in train.parameterDefinitions()] == [
        "RASTER",
        "MORE_BANDS",
        "BANDS",
        "LABELS",
        "FIELD",
        "METHOD",
        "OBJECTIVE",
        "CLASS_WEIGHTS",
        "VALIDATION",
        "INDICES",
        "BAND_ROLES",
        "FEATURES",
        "ENCODER",
        "PATCH_SIZE",
        "STRIDE",
        "WEIGHTS",
        "WEIGHTS_FILE",
        "BAND_MAP",
        "ARCHITECTURE",
        "MIN_COVERAGE",
        "LEARNING_CURVE",
        "MORE_LABELS",
        "OUTPUT_MODEL",
        "OUTPUT_REPORT",
    ]
    # options are stored by index in batch files and models: the first ones never move
    method = train.parameterDefinition("METHOD")
    assert [option.split(" (")[0] for option in method.options()[:6]] == [
        "Logistic regression",
        "XGBoost",
        "Random forest",
        "k-nearest neighbours",
        "Support vector machine, RBF kernel",
        "Automatic: the best method and settings by cross-validation on the training polygons",
    ]
    assert method.defaultValue() == 5 and "(default)" in method.options()[5]
    assert {o.name() for o in train.outputDefinitions()} >= {
        "OUTPUT_MODEL",
        "OUTPUT_REPORT",
        "OUTPUT_HTML",
        "OVERALL_ACCURACY",
        "KAPPA",
        "MACRO_F1",
    }
    classify = registry.algorithmById("landprobe:classifyraster")
    assert [p.name() for p in classify.parameterDefinitions()] == [
        "RASTER",
        "MORE_BANDS",
        "MODEL",
        "OUTPUT_GRID",
        "GRID_RASTER",
        "OUTPUT",
        "OUTPUT_PROBABILITY",
        "OUTPUT_CONFIDENCE",
        "OUTPUT_UNCERTAINTY",
    ]
    assess = registry.algorithmById("landprobe:assessaccuracy")
    assert [p.name() for p in assess.parameterDefinitions()] == ["CLASSIFIED", "REFERENCE", "FIELD", "OUTPUT_REPORT"]
    assert {o.name() for o in assess.outputDefinitions()} >= {"OVERALL_ACCURACY", "KAPPA", "MACRO_F1", "OUTPUT_HTML"}
    status = registry.algorithmById("landprobe:enginestatus")
    assert [p.name() for p in status.parameterDefinitions()] == ["OUTPUT"]


def test_toolbox_choices_match_the_engine_registries(landprobe_plugin: Any, engine_python: str) -> None:
    import subprocess

    from landprobe.plugin.algorithms import classify_raster, finetune, train_classifier, train_regressor

    code = ("import json; from engine.probes.registry import PROBES; from engine.samples.validation import SCHEMES; "
            "from engine.assess.selection import AUTO, CLASS_WEIGHT_CHOICES, OBJECTIVES; "
            "from engine.embeddings.sources import FEATURE_SOURCES; "
            "from engine.jobs.classify_raster import OUTPUT_GRIDS; "
            "from engine.jobs.finetune import DEEP_VALIDATION; from engine.deep.trainer import SCHEDULERS; "
            "from engine.jobs.train_regressor import REGRESSION_FEATURES, SUPPORTS; "
            "print(json.dumps([[*PROBES, AUTO], list(OBJECTIVES), list(CLASS_WEIGHT_CHOICES), list(SCHEMES), "
            "list(FEATURE_SOURCES), list(OUTPUT_GRIDS), "
            "list(DEEP_VALIDATION), list(SCHEDULERS), list(REGRESSION_FEATURES), list(SUPPORTS)]))")
    engine = json.loads(subprocess.run([engine_python, "-c", code], capture_output=True, text=True, check=True,
                                       cwd=Path(__file__).resolve().parents[2]).stdout)
    offered = [train_classifier.METHODS, train_classifier.OBJECTIVES, train_classifier.CLASS_WEIGHTS,
               train_classifier.VALIDATIONS, train_classifier.FEATURE_SOURCES,
               classify_raster.OUTPUT_GRIDS, finetune.VALIDATIONS, finetune.SCHEDULERS,
               train_regressor.FEATURE_SOURCES, train_regressor.SUPPORTS]
    for names, choices in zip(engine, offered, strict=True):
        assert sorted(name for _, name in choices) == sorted(names)  # every engine choice, and only those


def test_engine_python_setting_is_registered(landprobe_plugin: Any) -> None:
    from landprobe.plugin.engine_process import recorded_engine_python
    from landprobe.plugin.settings import ENGINE_PYTHON_SETTING, MODELS_SETTING
    from processing.core.ProcessingConfig import ProcessingConfig

    setting = ProcessingConfig.settings[ENGINE_PYTHON_SETTING]
    assert setting.group == "Landprobe" and setting.description.startswith("Engine Python interpreter")
    assert setting.value in ("", None)
    recorded = recorded_engine_python()
    if recorded:  # a blank value shows nothing in the options tree: the label names the engine it means
        assert setting.description == f"Engine Python interpreter (blank: {recorded})"
    assert ProcessingConfig.settings[MODELS_SETTING].group == "Landprobe"


def test_device_threads_and_cache_settings_reach_the_engine(
    landprobe_plugin: Any, engine_python: str, tmp_path: Path
) -> None:
    from landprobe.plugin.engine_process import run_engine_job
    from landprobe.plugin.settings import (
        CACHE_SETTING,
        DEVICE_SETTING,
        DEVICES,
        SCHEDULER_SETTING,
        THREADS_SETTING,
        engine_preferences,
    )
    from processing.core.ProcessingConfig import ProcessingConfig

    saved = {name: ProcessingConfig.getSetting(name)
             for name in (DEVICE_SETTING, THREADS_SETTING, CACHE_SETTING, SCHEDULER_SETTING)}
    saved[DEVICE_SETTING] = DEVICES.index(saved[DEVICE_SETTING] or "auto")  # a selection is set by its index
    try:
        ProcessingConfig.setSettingValue(DEVICE_SETTING, DEVICES.index("cpu"))
        ProcessingConfig.setSettingValue(THREADS_SETTING, 1)
        ProcessingConfig.setSettingValue(CACHE_SETTING, str(tmp_path))
        ProcessingConfig.setSettingValue(SCHEDULER_SETTING, "tcp://127.0.0.1:8786")
        outputs = run_engine_job("engine_status", {}, QgsProcessingFeedback(), python=engine_python,
                                 preferences=engine_preferences())
        ProcessingConfig.setSettingValue(SCHEDULER_SETTING, "")
        assert SCHEDULER_SETTING not in engine_preferences()  # an empty setting leaves the environment's alone
    finally:
        for name, value in saved.items():
            ProcessingConfig.setSettingValue(name, value)
    assert outputs["torch_threads"] == 1 and outputs["device_preference"] == "cpu"
    assert outputs["default_device"] == "cpu" and outputs["weights_cache"] == str(tmp_path)
    assert outputs["dask_scheduler"] == "tcp://127.0.0.1:8786"


def test_missing_engine_gives_a_clear_processing_error(
    landprobe_plugin: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import processing

    monkeypatch.delenv("LANDPROBE_PYTHON", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    with pytest.raises(QgsProcessingException, match="make setup"):
        processing.run("landprobe:enginestatus", {}, feedback=_LogFeedback())


class _LogFeedback(QgsProcessingFeedback):
    """Keeps every message, and the engine's pid from the debug log."""

    def __init__(self) -> None:
        super().__init__()
        self.log = ""
        self.pid: int | None = None

    def _keep(self, text: str) -> None:
        self.log += text + "\n"
        match = re.search(r"Engine process id (\d+)", text)
        if match:
            self.pid = int(match.group(1))

    def pushInfo(self, text: str) -> None:
        self._keep(text)
        super().pushInfo(text)

    def pushDebugInfo(self, text: str) -> None:
        self._keep(text)
        super().pushDebugInfo(text)

    def reportError(self, text: str, fatalError: bool = False) -> None:
        self._keep(text)
        super().reportError(text, fatalError)


class _CancelOnFirstProgress(_LogFeedback):
    """Cancels as soon as the engine reports progress."""

    cancelled_at: float | None = None

    def setProgress(self, progress: float) -> None:
        super().setProgress(progress)
        if self.cancelled_at is None:
            self.cancelled_at = time.monotonic()
            self.cancel()


def test_engine_status(landprobe_plugin: Any, engine_python: str, tmp_path: Path) -> None:
    import processing

    output = tmp_path / "status.json"
    feedback = _LogFeedback()
    results = processing.run("landprobe:enginestatus", {"OUTPUT": str(output)}, feedback=feedback)
    assert results["PYTHON"]
    assert results["ENGINE_VERSION"]
    status = json.loads(output.read_text())
    assert "numpy" in status["packages"]
    assert any(device["type"] == "cpu" for device in status["devices"])
    assert "Packages:" in feedback.log


@pytest.fixture(scope="module")
def trained(
    landprobe_plugin: Any,
    engine_python: str,
    sample_raster: Path,
    sample_labels: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """Train a logistic-regression probe on the sample once for the module."""
    import processing

    folder = tmp_path_factory.mktemp("trained")
    results = processing.run(
        "landprobe:trainclassifier",
        {
            "RASTER": str(sample_raster),
            "LABELS": str(sample_labels),
            "FIELD": "class",
            "METHOD": 0,
            "OUTPUT_MODEL": str(folder / "model.lpmodel"),
            "OUTPUT_REPORT": str(folder / "report.json"),
        },
    )
    yield {"results": results, "folder": folder}


def test_train_classifier(trained: dict[str, Any]) -> None:
    results = trained["results"]
    assert Path(results["OUTPUT_MODEL"]).is_file()
    assert Path(results["OUTPUT_REPORT"]).is_file()
    json.loads(Path(results["OUTPUT_REPORT"]).read_text())
    assert results["OVERALL_ACCURACY"] > 0.6  # 5 classes: chance is about 0.2
    assert results["KAPPA"] is not None and results["KAPPA"] > 0.4


def test_classify_raster(
    trained: dict[str, Any], sample_raster: Path, tmp_path: Path, check_classified: Callable[..., None]
) -> None:
    import processing

    model = Path(trained["results"]["OUTPUT_MODEL"])
    output = tmp_path / "classified.tif"
    results = processing.run(
        "landprobe:classifyraster", {"RASTER": str(sample_raster), "MODEL": str(model), "OUTPUT": str(output)}
    )
    assert Path(results["OUTPUT"]) == output
    check_classified(output, sample_raster, model)


def test_outputs_load_styled_in_the_project(trained: dict[str, Any], sample_raster: Path, tmp_path: Path) -> None:
    import processing
    from qgis.core import QgsProject

    model = Path(trained["results"]["OUTPUT_MODEL"])
    import zipfile

    manifest = json.loads(zipfile.ZipFile(model).read("manifest.json"))
    results = processing.runAndLoadResults("landprobe:classifyraster", {
        "RASTER": str(sample_raster), "MODEL": str(model), "OUTPUT": str(tmp_path / "classes.tif"),
        "OUTPUT_PROBABILITY": str(tmp_path / "proba.tif"), "OUTPUT_CONFIDENCE": str(tmp_path / "conf.tif")})
    layers = {Path(layer.source()).name: layer for layer in QgsProject.instance().mapLayers().values()}
    try:
        classes = layers["classes.tif"].renderer()
        assert classes.type() == "paletted"
        assert {c.label for c in classes.classes()} == {c["name"] for c in manifest["classes"]}
        assert {c.color.name() for c in classes.classes()} == {c["color"] for c in manifest["classes"]}
        for name in ("proba.tif", "conf.tif"):
            ramp = layers[name].renderer()
            assert ramp.type() == "singlebandpseudocolor"
            assert (ramp.classificationMin(), ramp.classificationMax()) == (0, 1)
        assert Path(results["OUTPUT"]).name == "classes.tif"
    finally:
        QgsProject.instance().removeAllMapLayers()


def test_cancel_classify_stops_engine_and_leaves_nothing(
    trained: dict[str, Any], big_raster: Path, tmp_path: Path
) -> None:
    import processing

    model = Path(trained["results"]["OUTPUT_MODEL"])
    output = tmp_path / "big_classified.tif"
    feedback = _CancelOnFirstProgress()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run(
            "landprobe:classifyraster",
            {"RASTER": str(big_raster), "MODEL": str(model), "OUTPUT": str(output)},
            feedback=feedback,
        )
    assert feedback.cancelled_at is not None and feedback.pid is not None
    deadline = feedback.cancelled_at + 5.0
    while time.monotonic() < deadline and _alive(feedback.pid):
        time.sleep(0.05)
    assert not _alive(feedback.pid), "the engine process outlived the cancel by 5 s"
    # A cooperative stop (exit code 3), not a crash or a kill: partial outputs are the engine's to remove.
    assert "killed by" not in feedback.log, feedback.log
    assert not output.exists()
    assert not [name for name in os.listdir(tmp_path) if ".landprobe-tmp-" in name]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_train_from_a_selection_in_a_memory_layer(
    landprobe_plugin: Any, engine_python: str, sample_raster: Path, sample_labels: Path, tmp_path: Path
) -> None:
    """Memory layers and selections are written to a GeoPackage for the engine."""
    import processing
    from qgis.core import QgsFeatureRequest, QgsProcessingFeatureSourceDefinition, QgsProject, QgsVectorLayer

    source = QgsVectorLayer(str(sample_labels), "labels", "ogr")
    memory = source.materialize(QgsFeatureRequest())  # a memory layer copy
    assert memory.providerType() == "memory"
    feedback = _LogFeedback()
    QgsProject.instance().addMapLayer(memory)
    try:
        memory.selectByIds([feature.id() for feature in memory.getFeatures()][::2])
        results = processing.run(
            "landprobe:trainclassifier",
            {
                "RASTER": str(sample_raster),
                "LABELS": QgsProcessingFeatureSourceDefinition(memory.id(), selectedFeaturesOnly=True),
                "FIELD": "class",
                "METHOD": 0,
                "OUTPUT_MODEL": str(tmp_path / "model.lpmodel"),
                "OUTPUT_REPORT": str(tmp_path / "report.json"),
            },
            feedback=feedback,
        )
        selected = memory.selectedFeatureCount()
    finally:
        QgsProject.instance().removeMapLayer(memory.id())
    assert Path(results["OUTPUT_MODEL"]).is_file()
    assert 0 < selected < source.featureCount()
    polygons = re.search(r"from (\d+) polygons", feedback.log)  # the engine's sampling summary, when it says so
    assert polygons is None or int(polygons.group(1)) == selected, feedback.log


def test_train_from_the_second_layer_of_a_geopackage(
    landprobe_plugin: Any, engine_python: str, sample_raster: Path, sample_labels: Path, tmp_path: Path
) -> None:
    """A layer inside a multi-layer GeoPackage is copied on its own (the engine reads a file's first layer)."""
    import processing
    from osgeo import gdal

    gdal.UseExceptions()
    gpkg = tmp_path / "two_layers.gpkg"
    gdal.VectorTranslate(str(gpkg), str(sample_labels), layerName="decoy", where="class = 'water'")
    gdal.VectorTranslate(str(gpkg), str(sample_labels), layerName="labels", accessMode="update")
    results = processing.run(
        "landprobe:trainclassifier",
        {
            "RASTER": str(sample_raster),
            "LABELS": f"{gpkg}|layername=labels",
            "FIELD": "class",
            "METHOD": 0,
            "OUTPUT_MODEL": str(tmp_path / "model.lpmodel"),
        },
    )
    assert results["OVERALL_ACCURACY"] > 0.6  # the decoy layer holds one class only: training on it would fail


def test_forest_with_kfold_styled_labels_probabilities_and_assessment(
    landprobe_plugin: Any, engine_python: str, sample_raster: Path, sample_labels: Path, tmp_path: Path
) -> None:
    """Random forest, k-fold validation, colours from a categorized style, probability outputs, assessment."""
    import processing
    from osgeo import gdal
    from qgis.core import (
        QgsCategorizedSymbolRenderer,
        QgsProject,
        QgsRendererCategory,
        QgsSymbol,
        QgsVectorLayer,
    )
    from qgis.PyQt.QtGui import QColor

    layer = QgsVectorLayer(str(sample_labels), "labels", "ogr")
    categories = []
    for value in sorted({f["class"] for f in layer.getFeatures()}):
        symbol = QgsSymbol.defaultSymbol(layer.geometryType())
        symbol.setColor(QColor("#0000ff" if value == "water" else "#228b22"))
        categories.append(QgsRendererCategory(value, symbol, value))
    layer.setRenderer(QgsCategorizedSymbolRenderer("class", categories))
    QgsProject.instance().addMapLayer(layer)
    try:
        trained = processing.run(
            "landprobe:trainclassifier",
            {
                "RASTER": str(sample_raster),
                "LABELS": layer.id(),
                "FIELD": "class",
                "METHOD": 2,
                "VALIDATION": 1,
                "OUTPUT_MODEL": str(tmp_path / "rf.lpmodel"),
                "OUTPUT_REPORT": str(tmp_path / "rf.json"),
            },
        )
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
    report = json.loads(Path(trained["OUTPUT_REPORT"]).read_text())
    assert report["method"] == "random_forest"
    assert report["validation"]["scheme"] == "group_kfold" and report["validation"]["n_folds"] == 5
    assert 0.5 < trained["MACRO_F1"] <= 1 and Path(trained["OUTPUT_HTML"]).is_file()
    colors = {c["name"]: c["color"] for c in report["classes"]}
    assert colors["water"] == "#0000ff" and colors["forest"] == "#228b22"

    classified = processing.run(
        "landprobe:classifyraster",
        {
            "RASTER": str(sample_raster),
            "MODEL": trained["OUTPUT_MODEL"],
            "OUTPUT": str(tmp_path / "map.tif"),
            "OUTPUT_PROBABILITY": str(tmp_path / "proba.tif"),
            "OUTPUT_CONFIDENCE": str(tmp_path / "confidence.tif"),
        },
    )
    proba = gdal.Open(classified["OUTPUT_PROBABILITY"])
    assert proba.RasterCount == 5 and gdal.Open(classified["OUTPUT_CONFIDENCE"]).RasterCount == 1
    water_code = next(c["code"] for c in report["classes"] if c["name"] == "water")
    dataset = gdal.Open(classified["OUTPUT"])  # keep the dataset alive while its band is used
    band = dataset.GetRasterBand(1)
    assert band.GetColorTable().GetColorEntry(water_code)[:3] == (0, 0, 255)
    assert band.GetCategoryNames()[water_code] == "water"

    assessed = processing.run(
        "landprobe:assessaccuracy",
        {
            "CLASSIFIED": classified["OUTPUT"],
            "REFERENCE": str(sample_labels),
            "FIELD": "class",
            "OUTPUT_REPORT": str(tmp_path / "accuracy.json"),
        },
    )
    accuracy = json.loads(Path(assessed["OUTPUT_REPORT"]).read_text())
    assert sum(accuracy["map"]["class_pixels"].values()) == proba.RasterXSize * proba.RasterYSize
    assert accuracy["validation"]["n"] == report["training"]["n_samples"]  # every labelled pixel compared once
    assert 0 < assessed["OVERALL_ACCURACY"] <= 1 and assessed["KAPPA"] is not None
    assert "water" in Path(assessed["OUTPUT_HTML"]).read_text()


def test_bands_given_as_one_file_each_give_the_same_model_and_map(
    landprobe_plugin: Any, engine_python: str, sample_raster: Path, sample_labels: Path, tmp_path: Path
) -> None:
    import zipfile

    import processing
    from osgeo import gdal

    bands = []
    for b in range(1, 9):
        path = tmp_path / f"band{b}.tif"
        gdal.Translate(str(path), str(sample_raster), bandList=[b])
        bands.append(str(path))
    maps = {}
    for name, raster, more in (("whole", str(sample_raster), []), ("split", bands[0], bands[1:])):
        common = {"RASTER": raster, "MORE_BANDS": more}
        trained = processing.run("landprobe:trainclassifier", {
            **common, "LABELS": str(sample_labels), "FIELD": "class", "VALIDATION": 4,
            "OUTPUT_MODEL": str(tmp_path / f"{name}.lpmodel")})
        processing.run("landprobe:classifyraster", {
            **common, "MODEL": trained["OUTPUT_MODEL"], "OUTPUT": str(tmp_path / f"{name}.tif")})
        dataset = gdal.Open(str(tmp_path / f"{name}.tif"))
        maps[name] = dataset.GetRasterBand(1).ReadAsArray()
        assert dataset.GetGeoTransform() == gdal.Open(str(sample_raster)).GetGeoTransform()
        dataset = None
    assert maps["whole"].shape == (250, 250)
    assert len(set(maps["whole"].ravel().tolist())) >= 4
    assert (maps["whole"] == maps["split"]).all()
    with pytest.raises(QgsProcessingException, match="band"):  # a stack the model was not trained on
        processing.run("landprobe:classifyraster", {
            "RASTER": bands[0], "MORE_BANDS": bands[1:4], "MODEL": str(tmp_path / "whole.lpmodel"),
            "OUTPUT": str(tmp_path / "refused.tif")})
    chosen = processing.run("landprobe:trainclassifier", {  # bands chosen in the dialog
        "RASTER": str(sample_raster), "BANDS": [1, 2, 3, 4, 5, 7], "LABELS": str(sample_labels), "FIELD": "class",
        "VALIDATION": 4, "OUTPUT_MODEL": str(tmp_path / "chosen.lpmodel")})
    with zipfile.ZipFile(chosen["OUTPUT_MODEL"]) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["input"]["band_selection"] == [1, 2, 3, 4, 5, 7] and manifest["input"]["band_count"] == 6
    mapped = processing.run("landprobe:classifyraster", {
        "RASTER": str(sample_raster), "MODEL": chosen["OUTPUT_MODEL"], "OUTPUT": str(tmp_path / "chosen.tif")})
    assert Path(mapped["OUTPUT"]).is_file()


def test_extract_embeddings_writes_the_patch_grid(
    landprobe_plugin: Any, engine_python: str, sample_raster: Path, tmp_path: Path
) -> None:
    import subprocess

    import processing
    from landprobe.plugin.algorithms.encoder_params import ENCODERS
    from osgeo import gdal

    registry = QgsApplication.processingRegistry().algorithmById("landprobe:extractembeddings")
    assert [p.name() for p in registry.parameterDefinitions()][:5] == [
        "RASTER", "MORE_BANDS", "ENCODER", "PATCH_SIZE", "STRIDE"]
    engine_names = subprocess.run(
        [engine_python, "-c", "from engine.embeddings.encoders import ENCODERS; print(' '.join(ENCODERS))"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2],
    ).stdout.split()
    assert [name for _, name in ENCODERS] == engine_names  # the toolbox offers exactly the engine's registry
    results = processing.run("landprobe:extractembeddings", {
        "RASTER": str(sample_raster), "ENCODER": 0, "PATCH_SIZE": 10, "FEATURES": 8,
        "OUTPUT": str(tmp_path / "embedding.tif"), "OUTPUT_PREVIEW": str(tmp_path / "preview.tif")})
    assert results["DIMENSIONS"] == 8 and results["DEVICE"] == "cpu"
    preview = gdal.Open(results["OUTPUT_PREVIEW"])
    assert preview.RasterCount == 3 and preview.RasterXSize == 25  # a false-colour view on the embedding grid
    dataset = gdal.Open(results["OUTPUT"])
    source = gdal.Open(str(sample_raster))
    assert (dataset.RasterXSize, dataset.RasterYSize, dataset.RasterCount) == (25, 25, 8)
    transform, origin = dataset.GetGeoTransform(), source.GetGeoTransform()
    assert transform[0] == origin[0] and transform[3] == origin[3] and transform[1] == 10 * origin[1]
    assert "rcf_gaussian" in dataset.GetMetadataItem("LANDPROBE_EMBEDDING")


def test_probes_on_embeddings_from_a_raster_and_on_the_fly(
    landprobe_plugin: Any, sample_raster: Path, sample_labels: Path, tmp_path: Path
) -> None:
    import json

    import processing
    from osgeo import gdal

    embedding = processing.run("landprobe:extractembeddings", {
        "RASTER": str(sample_raster), "ENCODER": 0, "PATCH_SIZE": 8, "STRIDE": 2, "FEATURES": 16,
        "OUTPUT": str(tmp_path / "emb.tif")})["OUTPUT"]
    trained = processing.run("landprobe:trainclassifier", {
        "RASTER": embedding, "LABELS": str(sample_labels), "FIELD": "class", "FEATURES": 1,
        "OUTPUT_MODEL": str(tmp_path / "emb.lpmodel"), "OUTPUT_REPORT": str(tmp_path / "emb.json")})
    assert 0 < trained["OVERALL_ACCURACY"] <= 1
    assert json.loads((tmp_path / "emb.json").read_text())["features"]["recipe"] == "embeddings"
    mapped = processing.run("landprobe:classifyraster", {
        "RASTER": embedding, "MODEL": trained["OUTPUT_MODEL"], "GRID_RASTER": str(sample_raster),
        "OUTPUT": str(tmp_path / "on_raw_grid.tif")})
    out, source = gdal.Open(mapped["OUTPUT"]), gdal.Open(str(sample_raster))
    assert out.GetGeoTransform() == source.GetGeoTransform()
    assert (out.RasterXSize, out.RasterYSize) == (source.RasterXSize, source.RasterYSize)

    on_the_fly = processing.run("landprobe:trainclassifier", {
        "RASTER": str(sample_raster), "LABELS": str(sample_labels), "FIELD": "class", "FEATURES": 2,
        "ENCODER": 0, "PATCH_SIZE": 8, "STRIDE": 2, "LEARNING_CURVE": True,
        "OUTPUT_MODEL": str(tmp_path / "fly.lpmodel"), "OUTPUT_REPORT": str(tmp_path / "fly.json")})
    report = json.loads((tmp_path / "fly.json").read_text())
    assert {row["per_class"] for row in report["learning_curve"]["rows"]} == {5, 10, 25, 50, "all"}
    assert "data:image/png;base64," in Path(on_the_fly["OUTPUT_HTML"]).read_text()
    fly_map = processing.run("landprobe:classifyraster", {
        "RASTER": str(sample_raster), "MODEL": on_the_fly["OUTPUT_MODEL"], "OUTPUT": str(tmp_path / "fly.tif")})
    fly = gdal.Open(fly_map["OUTPUT"])  # keep the dataset alive while its band is used
    table = fly.GetRasterBand(1).GetRasterColorTable()
    assert fly.GetGeoTransform() == source.GetGeoTransform()
    assert table is not None and table.GetCount() > 1


def test_finetune_in_the_background_then_map_and_onnx(
    landprobe_plugin: Any, engine_python: str, sample_raster: Path, sample_labels: Path, tmp_path: Path
) -> None:
    import subprocess

    import processing
    from landprobe.plugin.algorithms.finetune import BACKBONES, TASKS
    from osgeo import gdal

    registry = QgsApplication.processingRegistry()
    tune = registry.algorithmById("landprobe:finetune")
    assert [p.name() for p in tune.parameterDefinitions()][:5] == ["RASTER", "LABELS", "FIELD", "TASK", "BACKBONE"]
    known = subprocess.run(
        [engine_python, "-c", "from engine.deep.networks import BACKBONES as B, TASKS as T; "
         "print(' '.join(T)); print(' '.join(sorted({b for v in B.values() for b in v})))"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2],
    ).stdout.splitlines()
    assert [name for _, name in TASKS] == known[0].split()
    assert {name for _, name in BACKBONES if name} <= set(known[1].split())  # every toolbox choice exists
    log: list[str] = []

    class Recorder(QgsProcessingFeedback):
        def pushInfo(self, info: str) -> None:
            log.append(info)
            super().pushInfo(info)

    results = processing.run("landprobe:finetune", {
        "RASTER": str(sample_raster), "LABELS": str(sample_labels), "FIELD": "class", "TASK": 0,
        "BACKBONE": 5, "CHIP_SIZE": 16, "EPOCHS": 2, "PATIENCE": 0, "DEVICE": 1,
        "OUTPUT_MODEL": str(tmp_path / "deep.lpmodel"), "OUTPUT_REPORT": str(tmp_path / "deep.json")},
        feedback=Recorder())
    assert results["EPOCHS_RUN"] == 2 and results["DEVICE_USED"] == "CPU"
    assert 0 <= results["OVERALL_ACCURACY"] <= 1
    assert any("Epoch 2/2" in line and "validation accuracy" in line for line in log), log[-10:]
    assert "Training curve" in Path(results["OUTPUT_HTML"]).read_text()
    assert any(line.startswith("Report: file://") and line.endswith(".html") for line in log)  # a link
    mapped = processing.run("landprobe:classifyraster", {
        "RASTER": str(sample_raster), "MODEL": results["OUTPUT_MODEL"], "OUTPUT": str(tmp_path / "deep.tif")})
    out, source = gdal.Open(mapped["OUTPUT"]), gdal.Open(str(sample_raster))
    assert out.GetGeoTransform() == source.GetGeoTransform()
    table = out.GetRasterBand(1).GetRasterColorTable()
    assert table is not None and table.GetCount() > 1
    assert Path(mapped["OUTPUT"]).with_suffix(".qml").is_file()
    onnx = processing.run("landprobe:exportonnx", {"MODEL": results["OUTPUT_MODEL"],
                                                   "OUTPUT": str(tmp_path / "deep.onnx")})
    assert Path(onnx["OUTPUT"]).stat().st_size > 0 and onnx["MAX_DIFFERENCE"] <= 1e-3


def test_hyperspectral_ground_truth_from_mat_to_training_polygons(landprobe_plugin: Any, tmp_path: Path) -> None:
    import processing
    from osgeo import gdal
    from qgis.core import QgsVectorLayer

    mat = Path(__file__).resolve().parents[1] / "data" / "hsi" / "Indian_pines_gt.mat"
    raster = processing.run("landprobe:importmat", {"MAT": str(mat), "OUTPUT": str(tmp_path / "gt.tif")})
    dataset = gdal.Open(raster["OUTPUT"])
    band = dataset.GetRasterBand(1)
    assert (dataset.RasterXSize, dataset.RasterYSize, raster["BANDS"]) == (145, 145, 1)
    assert band.GetNoDataValue() == 0 and band.ComputeRasterMinMax(False) == (1.0, 16.0)
    polygons = processing.run("landprobe:labelpolygons", {"RASTER": raster["OUTPUT"],
                                                          "OUTPUT": str(tmp_path / "gt.gpkg")})
    layer = QgsVectorLayer(polygons["OUTPUT"], "gt", "ogr")
    assert layer.isValid() and layer.featureCount() == polygons["POLYGONS"] > 16
    assert {f["class"] for f in layer.getFeatures()} == {str(c) for c in range(1, 17)}


def test_install_engine_builds_a_venv_checks_it_and_saves_the_setting(landprobe_plugin: Any, tmp_path: Path) -> None:
    import processing
    from landprobe.plugin.installer import has_nvidia_gpu, install_plan
    from landprobe.plugin.settings import ENGINE_PYTHON_SETTING
    from processing.core.ProcessingConfig import ProcessingConfig

    lock = tmp_path / "engine.lock"
    lock.write_text("torch==2.14.1\ntorchvision==0.29.1\n", encoding="utf-8")
    cpu = [label for label, _ in install_plan(tmp_path / "env", "cpu", lock, python="python3")]
    assert cpu[1] == "Installing PyTorch (CPU build)" and cpu[-1] == "Checking the engine"
    assert install_plan(tmp_path / "env", "cpu", lock, python="python3")[1][1][-1].endswith("/whl/cpu")
    if not has_nvidia_gpu():
        assert len(install_plan(tmp_path / "env", "auto", lock, python="python3")) == 4  # the CPU build
    lock.write_text("# nothing to download in a test: the check needs only the standard library\n")
    log: list[str] = []

    class Recorder(QgsProcessingFeedback):
        def pushInfo(self, info: str) -> None:
            log.append(info)

    saved = ProcessingConfig.getSetting(ENGINE_PYTHON_SETTING)
    try:
        results = processing.run("landprobe:installengine", {
            "FOLDER": str(tmp_path / "env"), "COMPUTE": 1, "REQUIREMENTS": str(lock), "TORCH_INDEX": "none"},
            feedback=Recorder())
        python = results["ENGINE_PYTHON"]
        assert Path(python).is_file() and Path(python).parent.parent == tmp_path / "env"
        assert ProcessingConfig.getSetting(ENGINE_PYTHON_SETTING) == python
    finally:
        ProcessingConfig.setSettingValue(ENGINE_PYTHON_SETTING, saved or "")
    assert "Checking the engine" in log and any(line.startswith("The plugin now uses") for line in log)


def test_batch_over_several_rasters_as_the_batch_dialog_runs_it(
    trained: dict[str, Any], sample_raster: Path, tmp_path: Path
) -> None:
    """What QGIS 3.22's BatchAlgorithmDialog.runAlgorithm does for each row, with its multi-step feedback."""
    from osgeo import gdal
    from processing.gui.Postprocessing import handleAlgorithmResults
    from processing.tools import dataobjects
    from qgis.core import QgsProcessingMultiStepFeedback

    rasters = []
    for i, window in enumerate(([0, 0, 125, 125], [125, 0, 125, 250], [0, 125, 250, 125])):
        path = tmp_path / f"part{i}.tif"
        gdal.Translate(str(path), str(sample_raster), srcWin=window)
        rasters.append(path)
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("landprobe:classifyraster")
    feedback = QgsProcessingFeedback()
    steps = QgsProcessingMultiStepFeedback(len(rasters), feedback)
    for count, raster in enumerate(rasters):
        steps.setCurrentStep(count)
        parameters = {"RASTER": str(raster), "MODEL": trained["results"]["OUTPUT_MODEL"],
                      "OUTPUT": str(tmp_path / f"map{count}.tif")}
        context = dataobjects.createContext(steps)  # a new context for each row, as the dialog does
        results, ok = algorithm.run(parameters, context, steps)
        assert ok, f"row {count} failed"
        handleAlgorithmResults(algorithm, context, steps, False, parameters)
        out = gdal.Open(results["OUTPUT"])
        source = gdal.Open(str(raster))
        assert (out.RasterXSize, out.RasterYSize) == (source.RasterXSize, source.RasterYSize)
        assert out.GetGeoTransform() == source.GetGeoTransform()
    assert feedback.progress() >= 99  # the rows' progress adds up over the batch
