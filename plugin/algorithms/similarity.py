"""``landprobe:similarity``: find more like these. A 0..1 map of how much each pixel looks like the examples."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterVectorDestination,
)

from .base import LandprobeAlgorithm
from .cluster import FEATURES
from .styles import style_on_load

#: (display name, engine name) of the MODE options, in order (append only: batch files store indices).
MODES = [
    ("Mean of the examples (cosine to their mean direction)", "mean"),
    ("Best-matching example", "best"),
]


class SimilarityAlgorithm(LandprobeAlgorithm):
    """Map how much each pixel looks like example points or polygons."""

    ALGORITHM_ID = "similarity"
    DISPLAY_NAME = "Find similar pixels"
    TAGS = ("similarity search", "find more like these", "cosine similarity", "embeddings", "alphaearth",
            "tessera", "query by example", "detection", "exploration")

    EXAMPLES = "EXAMPLES"
    COUNTER_EXAMPLES = "COUNTER_EXAMPLES"
    MODE = "MODE"
    FEATURES = "FEATURES"
    THRESHOLD = "THRESHOLD"
    OUTPUT = "OUTPUT"
    OUTPUT_POLYGONS = "OUTPUT_POLYGONS"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    MATCHED_AREA = "MATCHED_AREA"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Maps how much each pixel looks like the pixels under a few example points or polygons, from 0 "
            "(unlike) to 1 (alike): the cosine similarity of embeddings (Google Satellite Embedding / AlphaEarth, "
            "TESSERA, <i>Extract embeddings</i>), or of band values standardised by the raster's own statistics."
            "<h3>Parameters</h3>"
            "<b>Raster</b>: the embedding raster or the raster of bands (<b>More bands</b>, advanced: rasters "
            "stacked after it).<br>"
            "<b>Examples</b>: points or polygons on what you are looking for.<br>"
            "<b>Counter-examples</b> (optional): points or polygons of what it is not; pixels closer to them than "
            "to the examples score below 0.5.<br>"
            "<b>Compare with</b>: the examples' mean (smooth, the usual choice) or the best-matching example "
            "(keeps examples of several looks apart).<br>"
            "<b>Threshold</b>: the similarity at or above which a pixel is a match, for the matched area and the "
            "polygons.<br>"
            "<b>Matches as polygons</b> (optional): the matching pixels as polygons with their area.<br>"
            "<b>Similarity model</b> (optional): the search as a model file, to map other rasters with "
            "<i>Classify raster</i> or a whole region with <i>Map region</i>."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.add_raster_parameters()
        shapes = [QgsProcessing.SourceType.TypeVectorPolygon, QgsProcessing.SourceType.TypeVectorPoint]
        self.addParameter(QgsProcessingParameterFeatureSource(self.EXAMPLES, self.tr("Examples"), shapes))
        self.addParameter(QgsProcessingParameterFeatureSource(self.COUNTER_EXAMPLES, self.tr("Counter-examples"),
                                                              shapes, optional=True))
        self.addParameter(QgsProcessingParameterEnum(self.MODE, self.tr("Compare with"), [n for n, _ in MODES],
                                                     defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            self.THRESHOLD, self.tr("Threshold of a match (0 to 1)"), QgsProcessingParameterNumber.Type.Double,
            defaultValue=0.8, minValue=0.0, maxValue=1.0))
        features = QgsProcessingParameterEnum(self.FEATURES, self.tr("Features"), [n for n, _ in FEATURES],
                                              defaultValue=0)
        features.setFlags(features.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(features)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Similarity")))
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT_POLYGONS, self.tr("Matches as polygons"), optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_MODEL, self.tr("Similarity model"), self.tr("Landprobe model (*.lpmodel)"), optional=True,
            createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber(self.MATCHED_AREA, self.tr("Matched area (m²)")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Convert the parameters into a ``similarity`` job and run it in the engine."""
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        counter = None
        if self.parameterAsSource(parameters, self.COUNTER_EXAMPLES, context) is not None:
            counter = self.vector_path(parameters, self.COUNTER_EXAMPLES, context, feedback)
        outputs = self.run_engine(
            "similarity",
            {
                "raster": self.raster_stack(parameters, context),
                "examples": self.vector_path(parameters, self.EXAMPLES, context, feedback),
                "counter_examples": counter,
                "output": output,
                "mode": MODES[self.parameterAsEnum(parameters, self.MODE, context)][1],
                "features": FEATURES[self.parameterAsEnum(parameters, self.FEATURES, context)][1],
                "threshold": self.parameterAsDouble(parameters, self.THRESHOLD, context),
                "output_polygons": self.parameterAsOutputLayer(parameters, self.OUTPUT_POLYGONS, context) or None,
                "output_model": self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context) or None,
            },
            feedback,
        )
        feedback.pushInfo(self.tr("{} examples; {} pixels at or above {}.").format(
            outputs.get("n_examples"), outputs.get("matched_pixels"), outputs.get("threshold")))
        results = {
            self.OUTPUT: outputs.get("output", output),
            self.OUTPUT_POLYGONS: outputs.get("output_polygons"),
            self.OUTPUT_MODEL: outputs.get("output_model"),
            self.MATCHED_AREA: outputs.get("matched_area_m2"),
        }
        style_on_load(context, results[self.OUTPUT])
        return results
