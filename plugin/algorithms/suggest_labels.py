"""``landprobe:suggestlabels``: where to label next, as points with an empty class field to fill in."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputHtml,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterVectorDestination,
)

from .base import LandprobeAlgorithm
from .model_paths import model_parameter

#: (display name, engine name) of the RULE options, in order (append only: batch files store indices).
RULES = [
    ("Margin between the two most probable classes", "margin"),
    ("Entropy of the class probabilities", "entropy"),
]


class SuggestLabelsAlgorithm(LandprobeAlgorithm):
    """Suggest the places where a new label would help the model most."""

    ALGORITHM_ID = "suggestlabels"
    DISPLAY_NAME = "Suggest where to label next"
    TAGS = ("active learning", "uncertainty sampling", "labelling", "training data", "where to label",
            "margin", "entropy", "diversity")

    MODEL = "MODEL"
    LABELS = "LABELS"
    N_POINTS = "N_POINTS"
    RULE = "RULE"
    SPACING = "SPACING"
    SEED = "SEED"
    OUTPUT = "OUTPUT"
    POINTS = "POINTS"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    OUTPUT_HTML = "OUTPUT_HTML"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Suggests the places where a new label would help the model most: pixels the model is least sure "
            "about (the margin between its two most probable classes, or the entropy of its probabilities), "
            "spread over the image's look and over the map, away from the labels it already has. Each point "
            "carries the model's two most probable classes and its confidence, and an empty class field: fill it "
            "in (the attribute table, or the Identify tool), then run <i>Train classifier</i> with the points as "
            "<b>More labels</b> (for a regression model: the prediction and its spread, an empty value field, and "
            "<i>Train regressor</i>)."
            "<h3>Parameters</h3>"
            "<b>Raster</b>, <b>Model</b>: the raster the model maps and a model from <i>Train classifier</i>, or a "
            "random forest or k-NN model from <i>Train regressor</i>: its places are where its trees or neighbours "
            "disagree most (in a simulation this did not beat random points for a quantity: label some random "
            "places too), and the points carry its prediction, the spread and an empty value field.<br>"
            "<b>Current labels</b> (optional): no suggestion within the spacing of them.<br>"
            "<b>Points</b>: how many places to suggest.<br>"
            "<b>Uncertainty</b>, <b>Spacing</b>, <b>Seed</b> (advanced): the rule, the least distance between "
            "two suggestions (pixels), and the seed of the candidate pixels.<br>"
            "<b>Report</b> (optional): the rule, its settings and the points (JSON, and an HTML page beside it)."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.add_raster_parameters()
        self.addParameter(model_parameter(self.MODEL, self.tr("Model")))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.LABELS, self.tr("Current labels"),
            [QgsProcessing.SourceType.TypeVectorPolygon, QgsProcessing.SourceType.TypeVectorPoint], optional=True))
        integer = QgsProcessingParameterNumber.Type.Integer
        self.addParameter(QgsProcessingParameterNumber(self.N_POINTS, self.tr("Points"), integer, defaultValue=50,
                                                       minValue=1))
        advanced = [
            QgsProcessingParameterEnum(self.RULE, self.tr("Uncertainty"), [n for n, _ in RULES], defaultValue=0),
            QgsProcessingParameterNumber(self.SPACING, self.tr("Spacing (pixels)"), integer, defaultValue=10,
                                         minValue=0),
            QgsProcessingParameterNumber(self.SEED, self.tr("Seed"), integer, defaultValue=0, minValue=0),
        ]
        for parameter in advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(parameter)
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT, self.tr("Places to label next"), QgsProcessing.SourceType.TypeVectorPoint))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_REPORT, self.tr("Report"), self.tr("JSON (*.json)"), optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber(self.POINTS, self.tr("Points suggested")))
        self.addOutput(QgsProcessingOutputHtml(self.OUTPUT_HTML, self.tr("Report (HTML)")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Convert the parameters into a ``suggest_labels`` job and run it in the engine."""
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        labels = None
        if self.parameterAsSource(parameters, self.LABELS, context) is not None:
            labels = self.vector_path(parameters, self.LABELS, context, feedback)
        outputs = self.run_engine(
            "suggest_labels",
            {
                "raster": self.raster_stack(parameters, context),
                "model": self.parameterAsFile(parameters, self.MODEL, context),
                "output": output,
                "n_points": self.parameterAsInt(parameters, self.N_POINTS, context),
                "labels": labels,
                "rule": RULES[self.parameterAsEnum(parameters, self.RULE, context)][1],
                "spacing": self.parameterAsInt(parameters, self.SPACING, context),
                "seed": self.parameterAsInt(parameters, self.SEED, context),
                "output_report": self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None,
            },
            feedback,
        )
        if outputs.get("mean_spread") is not None:  # a regression model: ranked by the spread of its trees
            feedback.pushInfo(self.tr("{} places suggested; the model's mean spread there: {:.4g}.").format(
                outputs.get("n_points"), outputs.get("mean_spread")))
        else:
            feedback.pushInfo(self.tr("{} places suggested; the model's mean confidence there: {:.2f}.").format(
                outputs.get("n_points"), outputs.get("mean_confidence") or 0.0))
        self.link_report(feedback, outputs.get("output_html"))
        return {self.OUTPUT: outputs.get("output", output), self.POINTS: outputs.get("n_points"),
                self.OUTPUT_REPORT: outputs.get("output_report"), self.OUTPUT_HTML: outputs.get("output_html")}
