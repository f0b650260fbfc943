"""``landprobe:assessaccuracy``: compare a classified raster with independent reference polygons or points."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputHtml,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import LandprobeAlgorithm


class AssessAccuracyAlgorithm(LandprobeAlgorithm):
    """Accuracy of a class map against reference data, with area-adjusted estimates."""

    ALGORITHM_ID = "assessaccuracy"
    DISPLAY_NAME = "Assess accuracy"
    TAGS = ("accuracy assessment", "validation", "confusion matrix", "kappa", "f1", "error matrix", "olofsson",
            "area estimation", "land cover")

    CLASSIFIED = "CLASSIFIED"
    REFERENCE = "REFERENCE"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    OUTPUT_HTML = "OUTPUT_HTML"
    OVERALL_ACCURACY = "OVERALL_ACCURACY"
    KAPPA = "KAPPA"
    MACRO_F1 = "MACRO_F1"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Compares a classified raster with reference polygons or points, pixel by pixel, and writes an "
            "accuracy report: confusion matrix, overall accuracy, kappa, user's and producer's accuracy and F1 of "
            "each class, macro F1, and the area-adjusted accuracy and class areas with 95 % confidence intervals "
            "(Olofsson et al. 2014), weighted by the map's class proportions."
            "<h3>Parameters</h3>"
            "<b>Classified raster</b>: a class map, for example from <i>Classify raster</i> (its class names are "
            "read from the file; other rasters are compared by class code).<br>"
            "<b>Reference data</b>: polygons or points of known class, not used for training.<br>"
            "<b>Class field</b>: the reference class, by name (text) or code (integer); left empty, the field "
            "named like a class field (<i>class</i>, <i>label</i>, <i>landcover</i>...) is used and named in the "
            "log.<br>"
            "<b>Accuracy report</b>: JSON file; an HTML page with the same name is written beside it and opens "
            "in the Results Viewer."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.addParameter(QgsProcessingParameterRasterLayer(self.CLASSIFIED, self.tr("Classified raster")))
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.REFERENCE,
                self.tr("Reference data"),
                [QgsProcessing.SourceType.TypeVectorPolygon, QgsProcessing.SourceType.TypeVectorPoint],
            )
        )
        self.add_class_field(self.REFERENCE)
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_REPORT, self.tr("Accuracy report"), self.tr("JSON (*.json)")
            )
        )
        self.addOutput(QgsProcessingOutputHtml(self.OUTPUT_HTML, self.tr("Accuracy report (HTML)")))
        self.addOutput(QgsProcessingOutputNumber(self.OVERALL_ACCURACY, self.tr("Overall accuracy")))
        self.addOutput(QgsProcessingOutputNumber(self.KAPPA, self.tr("Kappa")))
        self.addOutput(QgsProcessingOutputNumber(self.MACRO_F1, self.tr("Macro F1")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Convert the parameters into an ``assess_accuracy`` job and run it in the engine."""
        report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context)
        outputs = self.run_engine(
            "assess_accuracy",
            {
                "classified": self.raster_path(parameters, self.CLASSIFIED, context),
                "reference": self.vector_path(parameters, self.REFERENCE, context, feedback),
                "field": self.class_field(parameters, context, feedback, self.REFERENCE),
                "output_report": report,
            },
            feedback,
        )
        self.log_accuracy(feedback, outputs.get("overall_accuracy"), outputs.get("kappa"), outputs.get("macro_f1"),
                          "Overall accuracy against the reference")
        self.link_report(feedback, outputs.get("output_html"))
        return {
            self.OUTPUT_REPORT: outputs.get("output_report", report),
            self.OUTPUT_HTML: outputs.get("output_html"),
            self.OVERALL_ACCURACY: outputs.get("overall_accuracy"),
            self.KAPPA: outputs.get("kappa"),
            self.MACRO_F1: outputs.get("macro_f1"),
        }
