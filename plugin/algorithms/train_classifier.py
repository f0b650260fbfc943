"""``landprobe:trainclassifier``: train a pixel classifier from labelled polygons."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputHtml,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterString,
)

from . import encoder_params as enc
from .base import LandprobeAlgorithm
from .model_paths import model_destination, report_model

#: (display name, engine name) of each classifier, in the order of the METHOD options.
#: Append only: batch files and graphical models store the option's index.
METHODS = [
    ("Logistic regression", "logistic_regression"),
    ("XGBoost (gradient-boosted trees)", "xgboost"),
    ("Random forest", "random_forest"),
    ("k-nearest neighbours", "knn"),
    ("Support vector machine, RBF kernel", "svm"),
    ("Automatic: the best method and settings by cross-validation on the training polygons (default)", "auto"),
]
#: Index of the default method in :data:`METHODS`.
DEFAULT_METHOD = 5

#: (display name, engine name) of what the automatic choice maximises, in the order of the OBJECTIVE options.
OBJECTIVES = [
    ("Overall accuracy: the share of the map's area classified correctly", "overall_accuracy"),
    ("Balanced accuracy: rare classes count as much as common ones", "balanced_accuracy"),
    ("Macro F1: rare classes count as much as common ones", "macro_f1"),
]

#: (display name, engine name) of the class weighting options, in the order of the CLASS_WEIGHTS options.
CLASS_WEIGHTS = [
    ("Chosen by cross-validation (default)", "auto"),
    ("Balanced: weight classes by inverse frequency", "balanced"),
    ("None: every pixel counts alike", "none"),
]

#: (display name, engine name) of each validation scheme, in the order of the VALIDATION options (append only).
VALIDATIONS = [
    ("Hold out 30 % of each class's polygons", "polygon_groups"),
    ("5-fold cross-validation by polygons", "group_kfold"),
    ("5-fold cross-validation by spatial blocks", "spatial_blocks"),
    ("Random pixels (optimistic: neighbouring pixels leak)", "random_pixels"),
    ("None", "none"),
]

#: The FEATURES options (kept here by name: the plugin tests and Train regressor read them).
FEATURE_SOURCES = enc.FEATURE_SOURCES


class TrainClassifierAlgorithm(LandprobeAlgorithm):
    """Train a classifier on band values or embeddings under labelled polygons and save it as a model file."""

    ALGORITHM_ID = "trainclassifier"
    DISPLAY_NAME = "Train classifier"
    TAGS = ("supervised classification", "land cover", "land use", "training", "random forest", "svm",
            "support vector machine", "xgboost", "gradient boosting", "logistic regression", "k-nearest neighbours",
            "knn", "cross-validation", "embeddings", "probe", "linear probe", "accuracy", "pixel classifier")

    BANDS = "BANDS"
    METHOD = "METHOD"
    OBJECTIVE = "OBJECTIVE"
    CLASS_WEIGHTS = "CLASS_WEIGHTS"
    VALIDATION = "VALIDATION"
    INDICES = "INDICES"
    BAND_ROLES = "BAND_ROLES"
    FEATURES = enc.FEATURES
    MIN_COVERAGE = enc.MIN_COVERAGE
    LEARNING_CURVE = "LEARNING_CURVE"
    MORE_LABELS = "MORE_LABELS"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    OVERALL_ACCURACY = "OVERALL_ACCURACY"
    KAPPA = "KAPPA"
    MACRO_F1 = "MACRO_F1"
    OUTPUT_HTML = "OUTPUT_HTML"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Trains a pixel classifier on the values of every band of a raster (or on embeddings) under labelled "
            "polygons, and saves "
            "it as a Landprobe model file for <i>Classify raster</i>. Part of the labelled pixels is held out to "
            "measure the accuracy, which is written to the validation report and returned as outputs."
            "<h3>Parameters</h3>"
            "<b>Raster</b>: a multi-band raster stored in a file (GeoTIFF or a VRT); its bands are the features.<br>"
            "<b>More bands</b> (advanced, optional): further rasters on the same grid whose bands are stacked after "
            "the first raster's, in order; for data delivered as one file per band, pick band 1 as the raster and "
            "the others here.<br>"
            "<b>Bands</b> (optional): train on these bands only, e.g. without a thermal or an empty band; empty "
            "means all. The model remembers them and <i>Classify raster</i> picks the same bands again. With "
            "<i>More bands</i>, bands after the first raster's are numbered on.<br>"
            "<b>Training polygons</b>: polygons that outline areas of known class, in any CRS "
            "(they are reprojected to the raster's). Selected features only is honoured.<br>"
            "<b>Class field</b>: the field holding each polygon's class, as text or whole numbers. Left empty, "
            "the field named like a class field (<i>class</i>, <i>label</i>, <i>landcover</i>, <i>type</i>...) "
            "is used, else the first text field, and the log names it. A field with one value per polygon (an "
            "identifier such as <i>fid</i> or <i>id</i>) is refused with the likely class field named.<br>"
            "<b>Method</b>: <i>Automatic</i> (the default) tries logistic regression, support vector machines, "
            "XGBoost, random forest and k-nearest neighbours with a few settings each, by cross-validation on the "
            "training polygons only (the held-out polygons never take part in the choice), and keeps the best; the "
            "report lists every candidate with its score and time and says why the winner won. Or one method: "
            "<i>Support vector machine</i> with an RBF kernel, <i>Logistic regression</i> (fastest, a linear "
            "probe), <i>XGBoost</i> (gradient-boosted trees), <i>Random forest</i> or <i>k-nearest "
            "neighbours</i>. Bands are standardised.<br>"
            "<b>Objective</b> (advanced): what the automatic choice maximises: <i>overall accuracy</i> (the share "
            "of the map's area that is right; the default) or <i>balanced accuracy</i> / <i>macro F1</i> (rare "
            "classes count as much as common ones).<br>"
            "<b>Class weights</b> (advanced): weighting classes by inverse frequency raises the accuracy of rare "
            "classes and lowers the overall accuracy when one class dominates. By default both are tried by "
            "cross-validation and the report says which was used and why.<br>"
            "<b>Validation</b>: how accuracy is measured. By default 30 % of each class's polygons are held out "
            "whole, so neighbouring pixels of one polygon never sit on both sides; cross-validation by polygons or "
            "by spatial blocks tests every polygon once. A random pixel split is offered for comparison with other "
            "tools and is marked optimistic in the report. The final model is always trained on all labels.<br>"
            "<b>Add spectral indices</b> (advanced): adds normalised-difference indices (NDVI, NDWI, MNDWI, NDBI, "
            "NBR, NDMI) to the band values, each one whose two bands have a known role. Roles are read from band "
            "names such as <i>Red</i>, <i>NIR</i>, <i>SWIR 1</i> or Sentinel-2's <i>B04</i>, <i>B08</i>, "
            "<i>B11</i>.<br>"
            "<b>Band roles</b> (advanced): roles of bands whose names do not say, as role=band pairs, e.g. "
            "<i>blue=1, green=2, red=3, nir=4, swir1=5, swir2=6</i> for Landsat 5 and 7 (Landsat 8 and 9: "
            "<i>blue=2, green=3, red=4, nir=5, swir1=6, swir2=7</i>).<br>"
            "<b>Features</b>: what the classifier sees. <i>Band values</i> of each pixel; an <i>embedding "
            "raster</i> given as the raster (one band per embedding dimension, e.g. written by <i>Extract "
            "embeddings</i>, or a Google Satellite Embedding / AlphaEarth GeoTIFF of 64 int8 bands, de-quantised "
            "and with -128 as nodata, or TESSERA's 128 bands); or <i>embeddings computed on the fly</i> from the "
            "raster's bands by the encoder below, whose weights are stored in the model so that <i>Classify "
            "raster</i> computes the same. With embeddings, each embedding cell is a sample when one class covers "
            "at least the <b>minimum coverage</b> (advanced, default 0.5) of it.<br>"
            + enc.HELP
            + "<b>Learning curve</b>: also reports the accuracy with 5, 10, 25, 50 and all labelled samples per "
            "class (three polygon splits), for the features chosen and, with embeddings, for the raster's band "
            "values averaged over the same cells, as a table and a plot in the report. With embeddings the report "
            "also shows the labelled samples in a 2-D projection (PCA, and t-SNE).<br>"
            "<b>Trained model</b>: the model file to write (.lpmodel; added when missing). Left as a temporary "
            "file, the model is saved in the models folder instead (<i>models</i> beside the saved project, else "
            "<i>~/Landprobe/models</i>, or the folder set in Settings > Options > Processing > Providers > "
            "Landprobe), since QGIS deletes temporary files on exit. <i>Classify raster</i> then offers the new "
            "model as its model.<br>"
            "<b>Validation report</b>: optional JSON file with the accuracy, kappa, confusion matrix and "
            "per-class scores; an HTML page with the same name is written beside it.<br>"
            "<h3>Outputs</h3>"
            "<b>Overall accuracy</b>, <b>Kappa</b> and <b>Macro F1</b> on the held-out pixels (empty when no "
            "class has two polygons to hold one out)."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.add_raster_parameters()
        self.addParameter(QgsProcessingParameterBand(self.BANDS, self.tr("Bands (empty: all)"),
                                                     parentLayerParameterName=self.RASTER, optional=True,
                                                     allowMultiple=True))
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.LABELS,
                self.tr("Training polygons (or points)"),
                [QgsProcessing.SourceType.TypeVectorPolygon, QgsProcessing.SourceType.TypeVectorPoint],
            )
        )
        self.add_class_field()
        self.addParameter(
            QgsProcessingParameterEnum(
                self.METHOD, self.tr("Method"), options=[self.tr(label) for label, _ in METHODS],
                defaultValue=DEFAULT_METHOD,
            )
        )
        objective = QgsProcessingParameterEnum(
            self.OBJECTIVE, self.tr("Objective of the automatic choice"),
            options=[self.tr(label) for label, _ in OBJECTIVES], defaultValue=0)
        weights = QgsProcessingParameterEnum(
            self.CLASS_WEIGHTS, self.tr("Class weights"), options=[self.tr(label) for label, _ in CLASS_WEIGHTS],
            defaultValue=0)
        for parameter in (objective, weights):
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(parameter)
        self.addParameter(
            QgsProcessingParameterEnum(
                self.VALIDATION,
                self.tr("Validation"),
                options=[self.tr(label) for label, _ in VALIDATIONS],
                defaultValue=0,
            )
        )
        indices = QgsProcessingParameterBoolean(
            self.INDICES, self.tr("Add spectral indices (NDVI, NDWI, MNDWI, NDBI, NBR, NDMI)"), defaultValue=False
        )
        roles = QgsProcessingParameterString(
            self.BAND_ROLES, self.tr("Band roles, e.g. red=3, nir=4 (when band names do not say)"), optional=True
        )
        for parameter in (indices, roles):
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(parameter)
        enc.add_feature_parameters(self, "one class")
        self.addParameter(QgsProcessingParameterBoolean(
            self.LEARNING_CURVE, self.tr("Learning curve (accuracy against labelled samples per class)"),
            defaultValue=False))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.MORE_LABELS, self.tr("More labels (e.g. the points of Suggest where to label next, filled in)"),
            QgsProcessing.SourceType.TypeVector, optional=True))
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_MODEL, self.tr("Trained model"), self.tr("Landprobe model (*.lpmodel)")
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_REPORT,
                self.tr("Validation report"),
                self.tr("JSON (*.json)"),
                optional=True,
                createByDefault=True,
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.OVERALL_ACCURACY, self.tr("Overall accuracy")))
        self.addOutput(QgsProcessingOutputNumber(self.KAPPA, self.tr("Kappa")))
        self.addOutput(QgsProcessingOutputNumber(self.MACRO_F1, self.tr("Macro F1")))
        self.addOutput(QgsProcessingOutputHtml(self.OUTPUT_HTML, self.tr("Validation report (HTML)")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Convert the parameters into a ``train_classifier`` job and run it in the engine."""
        raster = self.raster_stack(parameters, context)
        labels = self.vector_path(parameters, self.LABELS, context, feedback)
        field = self.class_field(parameters, context, feedback)
        method = METHODS[self.parameterAsEnum(parameters, self.METHOD, context)][1]
        validation = VALIDATIONS[self.parameterAsEnum(parameters, self.VALIDATION, context)][1]
        output_model = model_destination(self, parameters, self.OUTPUT_MODEL, context, feedback, labels)
        output_report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None
        outputs = self.run_engine(
            "train_classifier",
            {
                "raster": raster,
                "labels": labels,
                "field": field,
                "method": method,
                "objective": OBJECTIVES[self.parameterAsEnum(parameters, self.OBJECTIVE, context)][1],
                "class_weight": CLASS_WEIGHTS[self.parameterAsEnum(parameters, self.CLASS_WEIGHTS, context)][1],
                "validation": validation,
                "indices": self.parameterAsBoolean(parameters, self.INDICES, context),
                "band_roles": self.parameterAsString(parameters, self.BAND_ROLES, context) or None,
                "class_colors": self.class_colors(parameters, self.LABELS, field, context),
                "output_model": output_model,
                "output_report": output_report,
                **enc.feature_job(self, parameters, context),
                "learning_curve": self.parameterAsBoolean(parameters, self.LEARNING_CURVE, context),
                "bands": self.parameterAsInts(parameters, self.BANDS, context) or None,
                "more_labels": self.label_files(parameters, self.MORE_LABELS, context),
            },
            feedback,
        )
        if outputs.get("method"):
            feedback.pushInfo(self.tr("Method: {}. {}").format(outputs.get("method_label") or outputs["method"],
                                                               outputs.get("method_reason", "")))
        accuracy = outputs.get("overall_accuracy")
        kappa = outputs.get("kappa")
        self.log_accuracy(feedback, accuracy, kappa, outputs.get("macro_f1"))
        self.link_report(feedback, outputs.get("output_html"))
        report_model(feedback, outputs.get("output_model", output_model))
        return {
            self.OUTPUT_MODEL: outputs.get("output_model", output_model),
            self.OUTPUT_REPORT: outputs.get("output_report", output_report),
            self.OVERALL_ACCURACY: accuracy,
            self.KAPPA: kappa,
            self.MACRO_F1: outputs.get("macro_f1"),
            self.OUTPUT_HTML: outputs.get("output_html"),
        }
