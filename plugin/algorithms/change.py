"""``landprobe:change``: what changed between two dates, how much, where, and from what class to what."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputHtml,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import LandprobeAlgorithm
from .cluster import FEATURES
from .model_paths import model_parameter
from .styles import ResultLayers, style_on_load


class ChangeAlgorithm(LandprobeAlgorithm):
    """Map the change between two rasters of the same kind, and with a model the from-to transitions."""

    ALGORITHM_ID = "change"
    DISPLAY_NAME = "Map change"
    TAGS = ("change detection", "change vector analysis", "cosine distance", "embeddings", "alphaearth", "tessera",
            "otsu", "from-to", "transition matrix", "multi-temporal", "two dates")

    BEFORE = "BEFORE"
    AFTER = "AFTER"
    THRESHOLD = "THRESHOLD"
    FEATURES = "FEATURES"
    MODEL = "MODEL"
    OUTPUT = "OUTPUT"
    OUTPUT_TRANSITIONS = "OUTPUT_TRANSITIONS"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    OUTPUT_HTML = "OUTPUT_HTML"
    CHANGED_AREA = "CHANGED_AREA"
    CHANGED_SHARE = "CHANGED_SHARE"
    USED_THRESHOLD = "USED_THRESHOLD"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Maps how much each pixel changed between two rasters of the same kind: the cosine distance of "
            "embeddings (two years of Google Satellite Embedding / AlphaEarth, TESSERA, or <i>Extract "
            "embeddings</i> with the same settings), or the change-vector magnitude of band values standardised "
            "over both dates. A threshold splits changed from unchanged pixels (Otsu's, automatic, unless you give "
            "one) and the report gives the changed area. Given a Landprobe model, both dates are classified and "
            "the from-to transitions are mapped and tabulated in hectares."
            "<h3>Parameters</h3>"
            "<b>First date</b>, <b>Second date</b>: the same bands in the same order, or embeddings of the same "
            "encoder; the second is resampled onto the first one's grid (nearest neighbour) when the grids differ."
            "<br><b>Threshold</b> (advanced): the change at or above which a pixel counts as changed; 0: "
            "automatic.<br>"
            "<b>Model</b> (optional): a model from <i>Train classifier</i> for the from-to transitions.<br>"
            "<b>Transitions</b> (optional, with a model): one code per pair of classes, named 'forest -&gt; "
            "water' in the legend; no change is grey.<br>"
            "<b>Report</b> (optional): the threshold, the changed area and the transition matrix (JSON, and HTML "
            "beside it).<br>"
            "<b>Change model</b> (optional): the change measure as a model file: <i>Map region</i> maps a whole "
            "region with it, given the two dates stacked band after band (a VRT of the first date's bands then the "
            "second's, e.g. gdalbuildvrt -separate)."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.addParameter(QgsProcessingParameterRasterLayer(self.BEFORE, self.tr("First date")))
        self.addParameter(QgsProcessingParameterRasterLayer(self.AFTER, self.tr("Second date")))
        threshold = QgsProcessingParameterNumber(self.THRESHOLD, self.tr("Threshold of change (0: automatic)"),
                                                 QgsProcessingParameterNumber.Type.Double, defaultValue=0.0,
                                                 minValue=0.0)
        features = QgsProcessingParameterEnum(self.FEATURES, self.tr("Features"), [n for n, _ in FEATURES],
                                              defaultValue=0)
        for parameter in (threshold, features):
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(parameter)
        self.addParameter(model_parameter(self.MODEL, self.tr("Model (for the from-to transitions)"),
                                          optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Change")))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_TRANSITIONS, self.tr("From-to transitions"), optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_REPORT, self.tr("Report"), self.tr("JSON (*.json)"), optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_MODEL, self.tr("Change model"), self.tr("Landprobe model (*.lpmodel)"), optional=True,
            createByDefault=False))
        self.addOutput(QgsProcessingOutputHtml(self.OUTPUT_HTML, self.tr("Report (HTML)")))
        self.addOutput(QgsProcessingOutputNumber(self.CHANGED_AREA, self.tr("Changed area (m²)")))
        self.addOutput(QgsProcessingOutputNumber(self.CHANGED_SHARE, self.tr("Changed share of the pixels")))
        self.addOutput(QgsProcessingOutputNumber(self.USED_THRESHOLD, self.tr("Threshold used")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Convert the parameters into a ``change`` job and run it in the engine."""
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        threshold = self.parameterAsDouble(parameters, self.THRESHOLD, context)
        outputs = self.run_engine(
            "change",
            {
                "before": self.raster_path(parameters, self.BEFORE, context),
                "after": self.raster_path(parameters, self.AFTER, context),
                "output": output,
                "threshold": threshold if threshold > 0 else None,
                "features": FEATURES[self.parameterAsEnum(parameters, self.FEATURES, context)][1],
                "model": self.parameterAsFile(parameters, self.MODEL, context) or None,
                "output_transitions": self.parameterAsOutputLayer(parameters, self.OUTPUT_TRANSITIONS, context)
                or None,
                "output_report": self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None,
                "output_model": self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context) or None,
            },
            feedback,
        )
        feedback.pushInfo(self.tr("{:.1%} of the pixels changed (threshold {:.4g}, {}).").format(
            outputs.get("changed_share") or 0.0, outputs.get("threshold") or 0.0, outputs.get("threshold_method")))
        self.link_report(feedback, outputs.get("output_html"))
        results = {
            self.OUTPUT: outputs.get("output", output),
            self.OUTPUT_TRANSITIONS: outputs.get("output_transitions"),
            self.OUTPUT_REPORT: outputs.get("output_report"),
            self.OUTPUT_HTML: outputs.get("output_html"),
            self.OUTPUT_MODEL: outputs.get("output_model"),
            self.CHANGED_AREA: outputs.get("changed_area_m2"),
            self.CHANGED_SHARE: outputs.get("changed_share"),
            self.USED_THRESHOLD: outputs.get("threshold"),
        }
        arrangement = ResultLayers(results[self.OUTPUT], [results[self.OUTPUT_TRANSITIONS]])
        for path in (results[self.OUTPUT], results[self.OUTPUT_TRANSITIONS]):
            style_on_load(context, path, arrangement)
        return results
