"""``landprobe:trainclassifier``: train a pixel classifier from labelled polygons."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import LandprobeAlgorithm

#: (display name, engine name) of each classifier, in the order of the METHOD options.
METHODS = [
    ("Logistic regression", "logistic_regression"),
    ("XGBoost", "xgboost"),
]


class TrainClassifierAlgorithm(LandprobeAlgorithm):
    """Train a classifier on the raster's band values under labelled polygons and save it as a model file."""

    ALGORITHM_ID = "trainclassifier"
    DISPLAY_NAME = "Train classifier"

    RASTER = "RASTER"
    LABELS = "LABELS"
    FIELD = "FIELD"
    METHOD = "METHOD"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    OVERALL_ACCURACY = "OVERALL_ACCURACY"
    KAPPA = "KAPPA"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Trains a pixel classifier on the values of every band of a raster under labelled polygons, and saves "
            "it as a Landprobe model file for <i>Classify raster</i>. Part of the labelled pixels is held out to "
            "measure the accuracy, which is written to the validation report and returned as outputs."
            "<h3>Parameters</h3>"
            "<b>Raster</b>: a multi-band raster stored in a file (GeoTIFF); its bands are the features.<br>"
            "<b>Training polygons</b>: polygons that outline areas of known class, in any CRS "
            "(they are reprojected to the raster's). Selected features only is honoured.<br>"
            "<b>Class field</b>: the field holding each polygon's class, as text or integer.<br>"
            "<b>Method</b>: <i>Logistic regression</i> (fast, a good linear probe) or <i>XGBoost</i> "
            "(gradient-boosted trees, often more accurate on raw bands).<br>"
            "<b>Trained model</b>: the model file to write (.lpmodel).<br>"
            "<b>Validation report</b>: optional JSON file with the accuracy, kappa, confusion matrix and "
            "per-class scores.<br>"
            "<h3>Outputs</h3>"
            "<b>Overall accuracy</b> and <b>Kappa</b> on the held-out pixels (empty when there were too few "
            "labelled pixels to hold any out)."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.addParameter(QgsProcessingParameterRasterLayer(self.RASTER, self.tr("Raster")))
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.LABELS, self.tr("Training polygons"), [QgsProcessing.SourceType.TypeVectorPolygon]
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.FIELD,
                self.tr("Class field"),
                parentLayerParameterName=self.LABELS,
                type=QgsProcessingParameterField.DataType.Any,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.METHOD, self.tr("Method"), options=[self.tr(label) for label, _ in METHODS], defaultValue=0
            )
        )
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

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Convert the parameters into a ``train_classifier`` job and run it in the engine."""
        raster = self.raster_path(parameters, self.RASTER, context)
        labels = self.vector_path(parameters, self.LABELS, context, feedback)
        field = self.parameterAsString(parameters, self.FIELD, context)
        method = METHODS[self.parameterAsEnum(parameters, self.METHOD, context)][1]
        output_model = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        output_report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None
        outputs = self.run_engine(
            "train_classifier",
            {
                "raster": raster,
                "labels": labels,
                "field": field,
                "method": method,
                "output_model": output_model,
                "output_report": output_report,
            },
            feedback,
        )
        accuracy = outputs.get("overall_accuracy")
        kappa = outputs.get("kappa")
        if accuracy is not None:
            feedback.pushInfo(self.tr("Overall accuracy: {:.3f}").format(accuracy))
        if kappa is not None:
            feedback.pushInfo(self.tr("Kappa: {:.3f}").format(kappa))
        return {
            self.OUTPUT_MODEL: outputs.get("output_model", output_model),
            self.OUTPUT_REPORT: outputs.get("output_report", output_report),
            self.OVERALL_ACCURACY: accuracy,
            self.KAPPA: kappa,
        }
