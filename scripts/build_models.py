"""Build the graphical models shipped in resources/models/ with the QgsProcessingModelAlgorithm API.

Run with QGIS's Python from the plugin folder:  /usr/bin/python3 scripts/build_models.py

resources/models/raw_band_probe.model3 ("Raw-band probe: train and classify", group "Landprobe") chains
landprobe:trainclassifier -> landprobe:classifyraster. Its parameters for qgis_process (QGIS 3.22, checked with
`qgis_process.bin help resources/models/raw_band_probe.model3`):

    raster                    raster layer: the multi-band raster (trained on and classified)
    labels                    polygon layer: training polygons
    field                     field of labels: the class field (text or integer)
    method                    enum: 0 = Logistic regression, 1 = XGBoost, 2 = Random forest, 3 = k-NN,
                              4 = support vector machine (default)
    validation                enum: 0 = hold out 30 % of polygons (default), 1 = 5-fold by polygons,
                              2 = 5-fold by spatial blocks, 3 = random pixels (optimistic), 4 = none
    train:trained_model       file destination (.lpmodel): the trained model
    train:validation_report   file destination (.json, optional): the validation report
    classify:classified       raster destination (.tif): the classified raster

    qgis_process.bin run resources/models/raw_band_probe.model3 -- raster=scene.tif labels=labels.shp field=class \
        method=4 train:trained_model=model.lpmodel train:validation_report=report.json \
        classify:classified=classified.tif
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "resources" / "models"


def _start_qgis() -> object:
    """Start a headless QgsApplication with Processing and the Landprobe provider; return the app."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    # Qt 5 writes XML attributes in hash order: a fixed seed makes the .model3 files reproducible.
    os.environ["QT_HASH_SEED"] = "0"
    # A throw-away profile: building must not touch the user's QGIS settings.
    os.environ.setdefault("QGIS_CUSTOM_CONFIG_PATH", tempfile.mkdtemp(prefix="landprobe-profile-"))
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append("/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    # The repository is the plugin folder: import it as ``landprobe``, the way QGIS installs it.
    plugins = Path(tempfile.mkdtemp(prefix="landprobe-build-"))
    (plugins / "landprobe").symlink_to(REPO_ROOT, target_is_directory=True)
    sys.path.insert(0, str(plugins))
    import landprobe

    plugin = landprobe.classFactory(None)
    plugin.initProcessing()
    app.landprobe_plugin = plugin  # keep the provider alive
    app.landprobe_plugins_dir = plugins
    return app


def build_raw_band_probe() -> object:
    """The model "Raw-band probe: train and classify"."""
    from landprobe.plugin.algorithms.train_classifier import DEFAULT_METHOD, METHODS, VALIDATIONS
    from qgis.core import (
        QgsProcessing,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterEnum,
        QgsProcessingParameterFeatureSource,
        QgsProcessingParameterField,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.PyQt.QtCore import QPointF

    model = QgsProcessingModelAlgorithm("Raw-band probe: train and classify", "Landprobe", "landprobe")
    model.setHelpContent(
        {
            "ALG_DESC": "Trains a classifier on the raw band values under labelled polygons, then classifies "
            "every pixel of the same raster with it.",
            "raster": "A multi-band raster stored in a file (GeoTIFF).",
            "labels": "Polygons outlining areas of known class.",
            "field": "The field holding each polygon's class (text or integer).",
            "method": "Support vector machine (default), logistic regression, XGBoost, random forest or k-nearest "
            "neighbours.",
            "validation": "How accuracy is measured: held-out polygons (default), cross-validation by polygons or "
            "spatial blocks, or an optimistic random pixel split.",
        }
    )

    inputs = [
        (QgsProcessingParameterRasterLayer("raster", "Raster"), QPointF(120, 80)),
        (
            QgsProcessingParameterFeatureSource(
                "labels", "Training polygons", [QgsProcessing.SourceType.TypeVectorPolygon]
            ),
            QPointF(120, 160),
        ),
        (
            QgsProcessingParameterField(
                "field", "Class field", parentLayerParameterName="labels", type=QgsProcessingParameterField.DataType.Any
            ),
            QPointF(120, 240),
        ),
        (
            QgsProcessingParameterEnum("method", "Method", options=[label for label, _ in METHODS],
                                       defaultValue=DEFAULT_METHOD),
            QPointF(120, 320),
        ),
        (
            QgsProcessingParameterEnum(
                "validation", "Validation", options=[label for label, _ in VALIDATIONS], defaultValue=0
            ),
            QPointF(120, 400),
        ),
    ]
    for definition, position in inputs:
        component = QgsProcessingModelParameter(definition.name())
        component.setPosition(position)
        model.addModelParameter(definition, component)

    def model_input(name: str) -> list:
        return [QgsProcessingModelChildParameterSource.fromModelParameter(name)]

    def output(child_id: str, child_output: str, name: str, description: str, position: QPointF) -> object:
        out = QgsProcessingModelOutput(name, description)
        out.setChildId(child_id)
        out.setChildOutputName(child_output)
        out.setDescription(description)
        out.setPosition(position)
        return out

    train = QgsProcessingModelChildAlgorithm("landprobe:trainclassifier")
    train.setChildId("train")
    train.setDescription("Train classifier")
    train.setPosition(QPointF(420, 200))
    train.addParameterSources("RASTER", model_input("raster"))
    train.addParameterSources("LABELS", model_input("labels"))
    train.addParameterSources("FIELD", model_input("field"))
    train.addParameterSources("METHOD", model_input("method"))
    train.addParameterSources("VALIDATION", model_input("validation"))
    train.setModelOutputs(
        {
            "trained_model": output("train", "OUTPUT_MODEL", "trained_model", "Trained model", QPointF(640, 150)),
            "validation_report": output(
                "train", "OUTPUT_REPORT", "validation_report", "Validation report", QPointF(640, 250)
            ),
        }
    )
    model.addChildAlgorithm(train)

    classify = QgsProcessingModelChildAlgorithm("landprobe:classifyraster")
    classify.setChildId("classify")
    classify.setDescription("Classify raster")
    classify.setPosition(QPointF(420, 400))
    classify.addParameterSources("RASTER", model_input("raster"))
    classify.addParameterSources(
        "MODEL", [QgsProcessingModelChildParameterSource.fromChildOutput("train", "OUTPUT_MODEL")]
    )
    classify.setModelOutputs(
        {"classified": output("classify", "OUTPUT", "classified", "Classified raster", QPointF(640, 450))}
    )
    model.addChildAlgorithm(classify)
    return model


def main() -> int:
    """Build every model into resources/models/ and list its parameters."""
    app = _start_qgis()
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    try:
        model = build_raw_band_probe()
        valid, errors = model.validate()
        if not valid:
            print("\n".join(errors), file=sys.stderr)
            return 1
        path = MODELS_DIR / "raw_band_probe.model3"
        if not model.toFile(str(path)):
            print(f"Could not write {path}", file=sys.stderr)
            return 1
        print(f"Wrote {path}")
        for definition in model.parameterDefinitions():
            print(f"  {definition.name():26} {definition.type():20} {definition.description()}")
    finally:
        shutil.rmtree(app.landprobe_plugins_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
