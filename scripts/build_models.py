"""Build the graphical models shipped in resources/models/ with the QgsProcessingModelAlgorithm API.

Run with QGIS's Python from the plugin folder:  /usr/bin/python3 scripts/build_models.py

resources/models/raw_band_probe.model3 ("Raw-band probe: train and classify", group "Landprobe") chains
landprobe:trainclassifier -> landprobe:classifyraster. Its parameters for qgis_process (QGIS 3.22, checked with
`qgis_process.bin help resources/models/raw_band_probe.model3`):

    raster                    raster layer: the multi-band raster (trained on and classified)
    labels                    polygon layer: training polygons
    field                     field of labels: the class field (text or integer)
    method                    enum: 0 = Logistic regression, 1 = XGBoost, 2 = Random forest, 3 = k-NN,
                              4 = support vector machine, 5 = automatic (default)
    validation                enum: 0 = hold out 30 % of polygons (default), 1 = 5-fold by polygons,
                              2 = 5-fold by spatial blocks, 3 = random pixels (optimistic), 4 = none
    train:trained_model       file destination (.lpmodel): the trained model
    train:validation_report   file destination (.json, optional): the validation report
    classify:classified       raster destination (.tif): the classified raster

    qgis_process.bin run resources/models/raw_band_probe.model3 -- raster=scene.tif labels=labels.shp field=class \
        method=5 train:trained_model=model.lpmodel train:validation_report=report.json \
        classify:classified=classified.tif

resources/models/change_with_model.model3 chains landprobe:trainclassifier -> landprobe:change (raster, labels,
field, after, method; outputs train:trained_model, change:change, change:transitions, change:report).

resources/models/embedding_similarity.model3 chains landprobe:extractembeddings -> landprobe:similarity:

    qgis_process.bin run resources/models/embedding_similarity.model3 -- raster=scene.tif examples=forest.gpkg \
        embed:embeddings=embeddings.tif similar:similarity=similarity.tif
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


class _Model:
    """A graphical model under construction: inputs on the left, children in the middle, outputs on the right."""

    def __init__(self, name: str, help_content: dict[str, str]) -> None:
        from qgis.core import QgsProcessingModelAlgorithm

        self.model = QgsProcessingModelAlgorithm(name, "Landprobe", "landprobe")
        self.model.setHelpContent(help_content)
        self._inputs = 0

    def input(self, definition: object) -> None:
        """A model parameter, placed under the previous one."""
        from qgis.core import QgsProcessingModelParameter
        from qgis.PyQt.QtCore import QPointF

        component = QgsProcessingModelParameter(definition.name())
        component.setPosition(QPointF(120, 80 + 80 * self._inputs))
        self.model.addModelParameter(definition, component)
        self._inputs += 1

    def child(self, algorithm: str, child_id: str, description: str, row: int, sources: dict[str, object],
              outputs: dict[str, tuple[str, str]]) -> None:
        """A child algorithm; ``sources`` values are ``"@name"`` (a model input), ``"child.OUTPUT"`` (another
        child's output) or a static value; ``outputs`` maps a child output to (model output name, description)."""
        from qgis.core import (
            QgsProcessingModelChildAlgorithm,
            QgsProcessingModelChildParameterSource,
            QgsProcessingModelOutput,
        )
        from qgis.PyQt.QtCore import QPointF

        child = QgsProcessingModelChildAlgorithm(algorithm)
        child.setChildId(child_id)
        child.setDescription(description)
        child.setPosition(QPointF(420, 120 + 200 * row))
        for name, source in sources.items():
            if isinstance(source, str) and source.startswith("@"):
                value = QgsProcessingModelChildParameterSource.fromModelParameter(source[1:])
            elif isinstance(source, str) and "." in source and source.split(".")[1].isupper():
                other, output = source.split(".")
                value = QgsProcessingModelChildParameterSource.fromChildOutput(other, output)
            else:
                value = QgsProcessingModelChildParameterSource.fromStaticValue(source)
            child.addParameterSources(name, [value])
        from qgis.core import QgsApplication, QgsProcessingDestinationParameter, QgsProcessingParameterDefinition

        algorithm_definition = QgsApplication.processingRegistry().algorithmById(algorithm)
        for definition in algorithm_definition.parameterDefinitions():  # the rest: their defaults, spelled out
            optional = definition.flags() & QgsProcessingParameterDefinition.Flag.FlagOptional
            if definition.name() in sources or optional or isinstance(definition,
                                                                     QgsProcessingDestinationParameter):
                continue
            child.addParameterSources(definition.name(), [
                QgsProcessingModelChildParameterSource.fromStaticValue(definition.defaultValue())])
        model_outputs = {}
        for i, (child_output, (name, text)) in enumerate(outputs.items()):
            out = QgsProcessingModelOutput(name, text)
            out.setChildId(child_id)
            out.setChildOutputName(child_output)
            out.setDescription(text)
            out.setPosition(QPointF(680, 80 + 200 * row + 60 * i))
            model_outputs[name] = out
        child.setModelOutputs(model_outputs)
        self.model.addChildAlgorithm(child)


_LABEL_INPUTS_HELP = {  # help of the inputs that _labels_inputs declares
    "raster": "A multi-band raster stored in a file (GeoTIFF).",
    "labels": "Polygons outlining areas of known class.",
    "field": "The field holding each polygon's class (text or integer).",
}


def _labels_inputs(m: _Model) -> None:
    """raster, labels and field: the inputs every chain starts from."""
    from qgis.core import (
        QgsProcessing,
        QgsProcessingParameterFeatureSource,
        QgsProcessingParameterField,
        QgsProcessingParameterRasterLayer,
    )

    m.input(QgsProcessingParameterRasterLayer("raster", "Raster"))
    m.input(QgsProcessingParameterFeatureSource("labels", "Training polygons",
                                                [QgsProcessing.SourceType.TypeVectorPolygon]))
    m.input(QgsProcessingParameterField("field", "Class field", parentLayerParameterName="labels",
                                        type=QgsProcessingParameterField.DataType.Any))


def build_raw_band_probe() -> object:
    """The model "Raw-band probe: train and classify"."""
    from landprobe.plugin.algorithms.train_classifier import DEFAULT_METHOD, METHODS, VALIDATIONS
    from qgis.core import QgsProcessingParameterEnum

    m = _Model("Raw-band probe: train and classify", {
        "ALG_DESC": "Trains a classifier on the raw band values under labelled polygons, then classifies "
        "every pixel of the same raster with it.",
        **_LABEL_INPUTS_HELP,
        "method": "Support vector machine (default), logistic regression, XGBoost, random forest or k-nearest "
        "neighbours.",
        "validation": "How accuracy is measured: held-out polygons (default), cross-validation by polygons or "
        "spatial blocks, or an optimistic random pixel split.",
    })
    _labels_inputs(m)
    m.input(QgsProcessingParameterEnum("method", "Method", options=[label for label, _ in METHODS],
                                       defaultValue=DEFAULT_METHOD))
    m.input(QgsProcessingParameterEnum("validation", "Validation", options=[label for label, _ in VALIDATIONS],
                                       defaultValue=0))
    m.child("landprobe:trainclassifier", "train", "Train classifier", 0,
            {"RASTER": "@raster", "LABELS": "@labels", "FIELD": "@field", "METHOD": "@method",
             "VALIDATION": "@validation"},
            {"OUTPUT_MODEL": ("trained_model", "Trained model"),
             "OUTPUT_REPORT": ("validation_report", "Validation report")})
    m.child("landprobe:classifyraster", "classify", "Classify raster", 1,
            {"RASTER": "@raster", "MODEL": "train.OUTPUT_MODEL"}, {"OUTPUT": ("classified", "Classified raster")})
    return m.model


def build_embedding_probe() -> object:
    """The model "Embeddings + probe: extract, train and classify"."""
    from landprobe.plugin.algorithms.encoder_params import ENCODERS
    from landprobe.plugin.algorithms.train_classifier import METHODS
    from qgis.core import QgsProcessingParameterEnum, QgsProcessingParameterNumber

    m = _Model("Embeddings + probe: extract, train and classify", {
        "ALG_DESC": "Encodes the raster into an embedding raster, trains a classifier on the embeddings under the "
        "labelled polygons, and maps every embedding cell; the map is written on the raster's own grid.",
        **_LABEL_INPUTS_HELP,
        "encoder": "Random convolutional features (default; no weights needed) or a torchgeo backbone.",
        "patch_size": "Pixels a side of each patch (0 = the encoder's default: 16 for random features).",
        "stride": "Pixels between patch centres, the cell size of the embedding raster (default 4): small cells "
        "give finer maps and keep small polygons, since a cell is a sample only when one class covers half of it.",
        "method": "The classifier trained on the embeddings (logistic regression by default: a linear probe).",
    })
    _labels_inputs(m)
    m.input(QgsProcessingParameterEnum("encoder", "Encoder", options=[label for label, _ in ENCODERS],
                                       defaultValue=0))
    m.input(QgsProcessingParameterNumber("patch_size", "Patch size (pixels, 0 = encoder default)",
                                         QgsProcessingParameterNumber.Type.Integer, defaultValue=0, minValue=0))
    m.input(QgsProcessingParameterNumber("stride", "Stride (pixels between patch centres: the cell size)",
                                         QgsProcessingParameterNumber.Type.Integer, defaultValue=4, minValue=1))
    m.input(QgsProcessingParameterEnum("method", "Method", options=[label for label, _ in METHODS],
                                       defaultValue=0))
    m.child("landprobe:extractembeddings", "embed", "Extract embeddings", 0,
            {"RASTER": "@raster", "ENCODER": "@encoder", "PATCH_SIZE": "@patch_size", "STRIDE": "@stride"},
            {"OUTPUT": ("embeddings", "Embedding raster")})
    m.child("landprobe:trainclassifier", "train", "Train classifier on embeddings", 1,
            {"RASTER": "embed.OUTPUT", "LABELS": "@labels", "FIELD": "@field", "METHOD": "@method",
             "FEATURES": 1},
            {"OUTPUT_MODEL": ("trained_model", "Trained model"),
             "OUTPUT_REPORT": ("validation_report", "Validation report")})
    m.child("landprobe:classifyraster", "classify", "Classify embeddings", 2,
            {"RASTER": "embed.OUTPUT", "MODEL": "train.OUTPUT_MODEL", "GRID_RASTER": "@raster"},
            {"OUTPUT": ("classified", "Classified raster")})
    return m.model


def build_finetune() -> object:
    """The model "Deep model: fine-tune and classify"."""
    from landprobe.plugin.algorithms.finetune import BACKBONES, TASKS
    from qgis.core import QgsProcessingParameterEnum, QgsProcessingParameterNumber

    m = _Model("Deep model: fine-tune and classify", {
        "ALG_DESC": "Fine-tunes a deep network on the labelled polygons (in the background, on the GPU when there "
        "is one), then classifies every pixel of the raster with it.",
        **_LABEL_INPUTS_HELP,
        "task": "Patch classification (default), U-Net segmentation, or the hyperspectral attention network.",
        "backbone": "The network; the default is a small CNN trained from scratch for patches, ResNet-18 for the "
        "U-Net, the attention network for hyperspectral.",
        "epochs": "At most this many epochs; training stops earlier when the validation loss stops improving.",
    })
    _labels_inputs(m)
    m.input(QgsProcessingParameterEnum("task", "Task", options=[label for label, _ in TASKS], defaultValue=0))
    m.input(QgsProcessingParameterEnum("backbone", "Backbone", options=[label for label, _ in BACKBONES],
                                       defaultValue=0))
    m.input(QgsProcessingParameterNumber("epochs", "Epochs (at most)", QgsProcessingParameterNumber.Type.Integer,
                                         defaultValue=20, minValue=1))
    m.child("landprobe:finetune", "finetune", "Fine-tune deep model", 0,
            {"RASTER": "@raster", "LABELS": "@labels", "FIELD": "@field", "TASK": "@task",
             "BACKBONE": "@backbone", "EPOCHS": "@epochs"},
            {"OUTPUT_MODEL": ("trained_model", "Trained model"),
             "OUTPUT_REPORT": ("training_report", "Training report")})
    m.child("landprobe:classifyraster", "classify", "Classify raster", 1,
            {"RASTER": "@raster", "MODEL": "finetune.OUTPUT_MODEL"}, {"OUTPUT": ("classified", "Classified raster")})
    return m.model


def build_embedding_similarity() -> object:
    """The model "Embeddings + similarity: extract, then find more like these"."""
    from landprobe.plugin.algorithms.encoder_params import ENCODERS
    from landprobe.plugin.algorithms.similarity import MODES
    from qgis.core import (
        QgsProcessing,
        QgsProcessingParameterEnum,
        QgsProcessingParameterFeatureSource,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
    )

    m = _Model("Embeddings + similarity: extract, then find more like these", {
        "ALG_DESC": "Encodes the raster into an embedding raster, then maps how much each embedding cell looks "
        "like the cells under the example points or polygons (cosine similarity, 0 to 1).",
        "raster": "A multi-band raster stored in a file (GeoTIFF).",
        "examples": "Points or polygons on what you are looking for.",
        "encoder": "Random convolutional features (default; no weights needed) or a torchgeo backbone.",
        "patch_size": "Pixels a side of each patch (0 = the encoder's default: 16 for random features).",
        "stride": "Pixels between patch centres, the cell size of the embedding raster (default 4).",
        "mode": "Compare with the examples' mean (default) or with the best-matching example.",
        "threshold": "The similarity at or above which a cell is a match.",
    })
    m.input(QgsProcessingParameterRasterLayer("raster", "Raster"))
    m.input(QgsProcessingParameterFeatureSource("examples", "Examples", [
        QgsProcessing.SourceType.TypeVectorPolygon, QgsProcessing.SourceType.TypeVectorPoint]))
    m.input(QgsProcessingParameterEnum("encoder", "Encoder", options=[label for label, _ in ENCODERS],
                                       defaultValue=0))
    m.input(QgsProcessingParameterNumber("patch_size", "Patch size (pixels, 0 = encoder default)",
                                         QgsProcessingParameterNumber.Type.Integer, defaultValue=0, minValue=0))
    m.input(QgsProcessingParameterNumber("stride", "Stride (pixels between patch centres: the cell size)",
                                         QgsProcessingParameterNumber.Type.Integer, defaultValue=4, minValue=1))
    m.input(QgsProcessingParameterEnum("mode", "Compare with", options=[label for label, _ in MODES],
                                       defaultValue=0))
    m.input(QgsProcessingParameterNumber("threshold", "Threshold of a match (0 to 1)",
                                         QgsProcessingParameterNumber.Type.Double, defaultValue=0.8, minValue=0.0,
                                         maxValue=1.0))
    m.child("landprobe:extractembeddings", "embed", "Extract embeddings", 0,
            {"RASTER": "@raster", "ENCODER": "@encoder", "PATCH_SIZE": "@patch_size", "STRIDE": "@stride"},
            {"OUTPUT": ("embeddings", "Embedding raster")})
    m.child("landprobe:similarity", "similar", "Find similar pixels", 1,
            {"RASTER": "embed.OUTPUT", "EXAMPLES": "@examples", "MODE": "@mode", "THRESHOLD": "@threshold"},
            {"OUTPUT": ("similarity", "Similarity")})
    return m.model


def build_change_with_model() -> object:
    """The model "Change with a model: train on the first date, map what changed into what"."""
    from landprobe.plugin.algorithms.train_classifier import DEFAULT_METHOD, METHODS
    from qgis.core import QgsProcessingParameterEnum, QgsProcessingParameterRasterLayer

    m = _Model("Change with a model: train on the first date, map what changed into what", {
        "ALG_DESC": "Trains a classifier on the first date under the labelled polygons, then maps the change "
        "between the two dates (with an automatic threshold) and, with the classifier, the from-to transitions and "
        "their matrix of areas.",
        **_LABEL_INPUTS_HELP,
        "after": "The second date: the same bands in the same order as the first.",
        "method": "The classifier trained on the first date (automatic by default).",
    })
    _labels_inputs(m)
    m.input(QgsProcessingParameterRasterLayer("after", "Second date"))
    m.input(QgsProcessingParameterEnum("method", "Method", options=[label for label, _ in METHODS],
                                       defaultValue=DEFAULT_METHOD))
    m.child("landprobe:trainclassifier", "train", "Train classifier on the first date", 0,
            {"RASTER": "@raster", "LABELS": "@labels", "FIELD": "@field", "METHOD": "@method"},
            {"OUTPUT_MODEL": ("trained_model", "Trained model")})
    m.child("landprobe:change", "change", "Map change", 1,
            {"BEFORE": "@raster", "AFTER": "@after", "MODEL": "train.OUTPUT_MODEL"},
            {"OUTPUT": ("change", "Change"), "OUTPUT_TRANSITIONS": ("transitions", "From-to transitions"),
             "OUTPUT_REPORT": ("report", "Change report")})
    return m.model


BUILDERS = {"raw_band_probe": build_raw_band_probe, "embedding_probe": build_embedding_probe,
            "finetune_classify": build_finetune, "embedding_similarity": build_embedding_similarity,
            "change_with_model": build_change_with_model}


def main() -> int:
    """Build every model into resources/models/ and list its parameters."""
    app = _start_qgis()
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    try:
        for name, builder in BUILDERS.items():
            model = builder()
            valid, errors = model.validate()
            if not valid:
                print(f"{name}: " + "\n".join(errors), file=sys.stderr)
                return 1
            path = MODELS_DIR / f"{name}.model3"
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
