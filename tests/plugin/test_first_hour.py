"""The analyst's first hour: the class field chosen, models kept and offered, layers in order, the toolbox searchable.

In QGIS's own Python with the real engine (the tests that train are skipped when there is none).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from qgis.core import (
    QgsApplication,
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QVariant


class LogFeedback(QgsProcessingFeedback):
    """Keeps every line the algorithm logs."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def pushInfo(self, info: str) -> None:
        self.lines.append(info)
        super().pushInfo(info)

    def reportError(self, error: str, fatalError: bool = False) -> None:
        self.lines.append(error)
        super().reportError(error, fatalError)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _layer(fields: list[tuple[str, Any]], rows: list[list[Any]]) -> QgsVectorLayer:
    """A memory polygon layer with these fields and one small square per row."""
    layer = QgsVectorLayer("Polygon?crs=EPSG:32616", "labels", "memory")
    layer.dataProvider().addAttributes([QgsField(name, kind) for name, kind in fields])
    layer.updateFields()
    features = []
    for i, row in enumerate(rows):
        feature = QgsFeature(layer.fields())
        feature.setAttributes(row)
        feature.setGeometry(QgsGeometry.fromWkt(f"POLYGON(({i} 0, {i + 1} 0, {i + 1} 1, {i} 1, {i} 0))"))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


@pytest.mark.parametrize(("fields", "rows", "expected"), [
    # A GeoPackage's fid and a numbering first, the class field later: the class field.
    ([("fid", QVariant.Int), ("id", QVariant.Int), ("LC_TYPE", QVariant.String)],
     [[i, i, ["forest", "water", "urban"][i % 3]] for i in range(12)], "LC_TYPE"),
    # No field named like a class: the first text field with a few values, never the identifier or a unique name.
    ([("id", QVariant.Int), ("site", QVariant.String), ("cover", QVariant.String)],
     [[i, f"site {i}", ["a", "b"][i % 2]] for i in range(12)], "cover"),
    ([("id", QVariant.Int), ("site", QVariant.String), ("kind", QVariant.String)],
     [[i, f"site {i}", ["a", "b"][i % 2]] for i in range(12)], "kind"),
    # Whole-number class codes named like a class.
    ([("OBJECTID", QVariant.Int), ("classcode", QVariant.Int)], [[i, i % 4] for i in range(12)], "classcode"),
    # Nothing plausible: no guess (the algorithm then asks for the field).
    ([("id", QVariant.Int), ("area", QVariant.Double)], [[i, 1.5 * i] for i in range(12)], None),
])
def test_the_class_field_guess_is_never_an_identifier(landprobe_plugin: Any, fields: list[tuple[str, Any]],
                                                      rows: list[list[Any]], expected: str | None) -> None:
    from landprobe.plugin.algorithms.class_field import guess_for_source

    assert guess_for_source(_layer(fields, rows)) == expected


def test_toolbox_finds_the_algorithms_by_method_and_task_in_user_groups(landprobe_plugin: Any) -> None:
    provider = QgsApplication.processingRegistry().providerById("landprobe")
    algorithms = provider.algorithms()
    assert {alg.group() for alg in algorithms} == {"Prepare data", "Classify", "Embeddings", "Deep learning",
                                                   "Engine"}
    groups = {alg.name(): alg.group() for alg in algorithms}
    assert groups["importmat"] == groups["labelpolygons"] == "Prepare data"
    assert groups["trainclassifier"] == groups["classifyraster"] == groups["assessaccuracy"] == "Classify"

    def found(word: str) -> set[str]:  # what the toolbox's search box matches: the name and the tags
        return {alg.name() for alg in algorithms
                if word in alg.displayName().lower() or any(word in tag.lower() for tag in alg.tags())}

    for word in ("random forest", "svm", "supervised", "land cover", "machine learning", "xgboost"):
        assert "trainclassifier" in found(word), word
    assert "finetune" in found("u-net") and "finetune" in found("deep learning")
    assert "extractembeddings" in found("foundation model")
    assert "labelpolygons" in found("ground truth")
    assert "assessaccuracy" in found("confusion matrix")
    assert all(alg.tags() for alg in algorithms)


def test_an_empty_class_field_takes_the_class_field_and_the_model_is_kept_and_offered(
        landprobe_plugin: Any, engine_python: str, sample_raster: Path, sample_labels: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import processing

    models = tmp_path / "models"
    monkeypatch.setenv("LANDPROBE_MODELS_FOLDER", str(models))
    feedback = LogFeedback()
    results = processing.run("landprobe:trainclassifier", {
        "RASTER": str(sample_raster), "LABELS": str(sample_labels), "METHOD": 0,
        "OUTPUT_MODEL": "TEMPORARY_OUTPUT"}, feedback=feedback)
    model = Path(results["OUTPUT_MODEL"])
    # The shapefile's fields are id and class: class is used, and the log says so.
    assert 'Class field: "class"' in feedback.text
    assert results["OVERALL_ACCURACY"] > 0.6
    # Left as a temporary file, the model is written to the models folder under the labels' name, and kept.
    assert model.parent == models and model.name == "training_data_model.lpmodel" and model.is_file()
    assert f"Model saved: {model}" in feedback.text
    # The next step offers it.
    classify = QgsApplication.processingRegistry().createAlgorithmById("landprobe:classifyraster")
    assert classify.parameterDefinition("MODEL").defaultValue() == str(model)
    # A second temporary model does not overwrite the first.
    again = processing.run("landprobe:trainclassifier", {
        "RASTER": str(sample_raster), "LABELS": str(sample_labels), "FIELD": "class", "METHOD": 0,
        "OUTPUT_MODEL": "TEMPORARY_OUTPUT"})
    assert Path(again["OUTPUT_MODEL"]).name == "training_data_model_2.lpmodel" and model.is_file()


def test_a_model_name_without_the_extension_gets_it_and_every_reader_takes_either(
        landprobe_plugin: Any, engine_python: str, sample_raster: Path, sample_labels: Path,
        tmp_path: Path) -> None:
    import processing

    feedback = LogFeedback()
    results = processing.run("landprobe:trainclassifier", {
        "RASTER": str(sample_raster), "LABELS": str(sample_labels), "FIELD": "class", "METHOD": 0,
        "OUTPUT_MODEL": str(tmp_path / "model")}, feedback=feedback)
    assert results["OUTPUT_MODEL"] == str(tmp_path / "model.lpmodel") and Path(results["OUTPUT_MODEL"]).is_file()
    assert not (tmp_path / "model").exists()
    # Under /tmp, the end of the algorithm's log warns that the folder is temporary.
    own = [line for line in feedback.lines if not line.startswith("Results:")]
    assert own[-2].startswith("Model saved:") and "temporary folder" in own[-1]
    bare = tmp_path / "copy_without_extension"
    shutil.copy(results["OUTPUT_MODEL"], bare)
    mapped = processing.run("landprobe:classifyraster", {
        "RASTER": str(sample_raster), "MODEL": str(bare), "OUTPUT": str(tmp_path / "map.tif")})
    assert Path(mapped["OUTPUT"]).is_file()


def test_an_identifier_field_is_refused_naming_the_class_field(
        landprobe_plugin: Any, engine_python: str, sample_raster: Path, sample_labels: Path,
        tmp_path: Path) -> None:
    import processing

    # The sample's polygons with a unique number each, as a GeoPackage's fid or an OBJECTID would be.
    labels = processing.run("native:fieldcalculator", {
        "INPUT": str(sample_labels), "FIELD_NAME": "OBJECTID", "FIELD_TYPE": 1, "FIELD_LENGTH": 10,
        "FORMULA": "@row_number", "OUTPUT": str(tmp_path / "numbered.gpkg")})["OUTPUT"]
    with pytest.raises(QgsProcessingException) as caught:
        processing.run("landprobe:trainclassifier", {
            "RASTER": str(sample_raster), "LABELS": labels, "FIELD": "OBJECTID", "METHOD": 0,
            "OUTPUT_MODEL": str(tmp_path / "model.lpmodel")})
    message = str(caught.value)
    assert "'OBJECTID'" in message and "'class'" in message and "identifier" in message, message
    assert not (tmp_path / "model.lpmodel").exists()


def _tree(root: Any) -> list[tuple[int, str, str, bool]]:
    """The layer tree top to bottom: (depth, kind, name, checked)."""
    rows = []

    def walk(node: Any, depth: int) -> None:
        for child in node.children():
            kind = "group" if child.nodeType() == child.NodeGroup else "layer"
            rows.append((depth, kind, child.name(), child.itemVisibilityChecked()))
            if kind == "group":
                walk(child, depth + 1)

    walk(root, 0)
    return rows


def test_classified_layers_load_map_on_top_and_one_probability_layer_per_class(
        landprobe_plugin: Any, engine_python: str, sample_raster: Path, sample_labels: Path,
        tmp_path: Path) -> None:
    import processing

    trained = processing.run("landprobe:trainclassifier", {
        "RASTER": str(sample_raster), "LABELS": str(sample_labels), "FIELD": "class", "METHOD": 0,
        "VALIDATION": 4, "OUTPUT_MODEL": str(tmp_path / "model.lpmodel")})
    project = QgsProject.instance()
    project.addMapLayer(QgsVectorLayer(str(sample_labels), "training polygons", "ogr"))
    try:
        # QGIS 3.22 loads results in the order of their paths, each on top: the map first, so last on top.
        processing.runAndLoadResults("landprobe:classifyraster", {
            "RASTER": str(sample_raster), "MODEL": trained["OUTPUT_MODEL"], "OUTPUT": str(tmp_path / "a_map.tif"),
            "OUTPUT_PROBABILITY": str(tmp_path / "z_proba.tif"),
            "OUTPUT_CONFIDENCE": str(tmp_path / "b_conf.tif")})
        QgsApplication.processEvents()
        tree = _tree(project.layerTreeRoot())
        top = [row for row in tree if row[0] == 0]
        assert top[0][1:] == ("layer", "Classified raster", True), tree
        assert top[1][1:] == ("layer", "Confidence", False), tree
        assert top[2][1] == "group" and "probabilit" in top[2][2].lower() and not top[2][3], tree
        assert top[3][2] == "training polygons", tree
        inside = [row for row in tree if row[0] == 1]
        names = ["barren", "forest", "herbaceous", "urban", "water"]
        assert [row[2] for row in inside[:5]] == [f"probability of {name}" for name in names], tree
        assert not any(row[3] for row in inside), tree
        layers = {layer.name(): layer for layer in project.mapLayers().values()}
        for band, name in enumerate(names, start=1):
            renderer = layers[f"probability of {name}"].renderer()
            assert renderer.type() == "singlebandpseudocolor"
            assert (renderer.inputBand() if hasattr(renderer, "inputBand") else renderer.band()) == band
    finally:
        project.removeAllMapLayers()
        project.layerTreeRoot().removeAllChildren()


def test_the_models_folder_defaults_beside_the_project_else_home(landprobe_plugin: Any, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from landprobe.plugin.algorithms.model_paths import models_folder

    monkeypatch.delenv("LANDPROBE_MODELS_FOLDER", raising=False)
    project = QgsProject.instance()
    previous = project.fileName()
    try:
        project.setFileName(str(tmp_path / "analysis.qgz"))
        assert models_folder() == tmp_path / "models"
        project.setFileName("")
        assert models_folder() == Path(os.path.expanduser("~")) / "Landprobe" / "models"
    finally:
        project.setFileName(previous)
