"""``landprobe:cluster``: what is there before anyone labels: k-means clusters of a raster, mapped and styled."""

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
    QgsProcessingParameterVectorDestination,
)

from .base import LandprobeAlgorithm
from .styles import ResultLayers, style_on_load

#: (display name, engine name) of the FEATURES options, in order (append only: batch files store indices).
FEATURES = [
    ("Automatic (embeddings for an embedding raster, else band values)", "auto"),
    ("Band values (standardised)", "bands"),
    ("Embeddings", "embeddings"),
]


class ClusterAlgorithm(LandprobeAlgorithm):
    """Group a raster's pixels into clusters without labels, and map them."""

    ALGORITHM_ID = "cluster"
    DISPLAY_NAME = "Cluster raster"
    TAGS = ("unsupervised classification", "clustering", "k-means", "kmeans", "segmentation", "embeddings",
            "alphaearth", "tessera", "exploration", "first labels", "silhouette", "calinski-harabasz")

    K = "K"
    K_MIN = "K_MIN"
    K_MAX = "K_MAX"
    FEATURES = "FEATURES"
    SAMPLE_SIZE = "SAMPLE_SIZE"
    SEED = "SEED"
    OUTPUT = "OUTPUT"
    OUTPUT_CONFIDENCE = "OUTPUT_CONFIDENCE"
    OUTPUT_POLYGONS = "OUTPUT_POLYGONS"
    MIN_POLYGON_PIXELS = "MIN_POLYGON_PIXELS"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    OUTPUT_CENTRES = "OUTPUT_CENTRES"
    OUTPUT_HTML = "OUTPUT_HTML"
    CLUSTERS = "CLUSTERS"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Groups the pixels of a raster into clusters of pixels that look alike, without any label: k-means "
            "fitted on a seeded sample of pixels, then applied to every pixel window by window. Clusters are numbered "
            "by size (1 the largest) and styled; what each one is, you decide. Works on embedding rasters (Google "
            "Satellite Embedding / AlphaEarth, TESSERA, <i>Extract embeddings</i>) and on band values."
            "<h3>Parameters</h3>"
            "<b>Raster</b>: the raster to cluster (<b>More bands</b>, advanced: rasters whose bands are stacked "
            "after it).<br>"
            "<b>Number of clusters</b>: 0 (default) chooses it between the fewest and the most clusters (advanced) "
            "by the Calinski-Harabasz score; the report lists every score.<br>"
            "<b>Features</b> (advanced): embeddings as they are, or band values standardised.<br>"
            "<b>Pixels sampled</b>, <b>Seed</b> (advanced): the sample the clusters are fitted on; the same seed "
            "gives the same map.<br>"
            "<b>Cluster polygons</b> (optional): the clusters as polygons with a <i>cluster</i> field and an empty "
            "<i>class</i> field: fill it in to make a first label layer for <i>Train classifier</i>. Areas smaller "
            "than the smallest polygon are merged into their neighbours.<br>"
            "<b>Cluster model</b> (optional): the clusters as a model file, to map other rasters with <i>Classify "
            "raster</i> or a whole region with <i>Map region</i>.<br>"
            "<b>Report</b> (optional): the choice of the number of clusters, each cluster's area and centre, and "
            "the sampled pixels in two dimensions coloured by cluster (JSON, and HTML beside it).<br>"
            "<b>Cluster centres</b> (optional): a CSV table, one row per cluster, one column per band or dimension."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.add_raster_parameters()
        integer = QgsProcessingParameterNumber.Type.Integer
        self.addParameter(QgsProcessingParameterNumber(self.K, self.tr("Number of clusters (0: choose)"), integer,
                                                       defaultValue=0, minValue=0, maxValue=255))
        advanced = [
            QgsProcessingParameterNumber(self.K_MIN, self.tr("Fewest clusters tried"), integer, defaultValue=2,
                                         minValue=2, maxValue=255),
            QgsProcessingParameterNumber(self.K_MAX, self.tr("Most clusters tried"), integer, defaultValue=10,
                                         minValue=2, maxValue=255),
            QgsProcessingParameterEnum(self.FEATURES, self.tr("Features"), [n for n, _ in FEATURES],
                                       defaultValue=0),
            QgsProcessingParameterNumber(self.SAMPLE_SIZE, self.tr("Pixels sampled"), integer, defaultValue=20000,
                                         minValue=100),
            QgsProcessingParameterNumber(self.SEED, self.tr("Seed"), integer, defaultValue=0, minValue=0),
            QgsProcessingParameterNumber(self.MIN_POLYGON_PIXELS, self.tr("Smallest polygon (pixels)"), integer,
                                         defaultValue=9, minValue=1),
        ]
        for parameter in advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(parameter)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Clusters")))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_CONFIDENCE, self.tr("Membership of the pixel's cluster"), optional=True,
            createByDefault=False))
        polygons = QgsProcessingParameterVectorDestination(
            self.OUTPUT_POLYGONS, self.tr("Cluster polygons (a first label layer)"), optional=True,
            createByDefault=False)
        self.addParameter(polygons)
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_MODEL, self.tr("Cluster model"), self.tr("Landprobe model (*.lpmodel)"), optional=True,
            createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_REPORT, self.tr("Report"), self.tr("JSON (*.json)"), optional=True,
            createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_CENTRES, self.tr("Cluster centres"), self.tr("CSV (*.csv)"), optional=True,
            createByDefault=False))
        self.addOutput(QgsProcessingOutputHtml(self.OUTPUT_HTML, self.tr("Report (HTML)")))
        self.addOutput(QgsProcessingOutputNumber(self.CLUSTERS, self.tr("Number of clusters")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Convert the parameters into a ``cluster`` job and run it in the engine."""
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        polygons = self.parameterAsOutputLayer(parameters, self.OUTPUT_POLYGONS, context) or None
        outputs = self.run_engine(
            "cluster",
            {
                "raster": self.raster_stack(parameters, context),
                "output": output,
                "k": self.parameterAsInt(parameters, self.K, context),
                "k_min": self.parameterAsInt(parameters, self.K_MIN, context),
                "k_max": self.parameterAsInt(parameters, self.K_MAX, context),
                "features": FEATURES[self.parameterAsEnum(parameters, self.FEATURES, context)][1],
                "sample_size": self.parameterAsInt(parameters, self.SAMPLE_SIZE, context),
                "seed": self.parameterAsInt(parameters, self.SEED, context),
                "output_confidence": self.parameterAsOutputLayer(parameters, self.OUTPUT_CONFIDENCE, context)
                or None,
                "output_polygons": polygons,
                "min_polygon_pixels": self.parameterAsInt(parameters, self.MIN_POLYGON_PIXELS, context),
                "output_model": self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context) or None,
                "output_report": self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None,
                "output_centres": self.parameterAsFileOutput(parameters, self.OUTPUT_CENTRES, context) or None,
            },
            feedback,
        )
        feedback.pushInfo(self.tr("{} clusters ({}).").format(outputs.get("k"), outputs.get("criterion")))
        self.link_report(feedback, outputs.get("output_html"))
        results = {
            self.OUTPUT: outputs.get("output", output),
            self.OUTPUT_CONFIDENCE: outputs.get("output_confidence"),
            self.OUTPUT_POLYGONS: outputs.get("output_polygons"),
            self.OUTPUT_MODEL: outputs.get("output_model"),
            self.OUTPUT_REPORT: outputs.get("output_report"),
            self.OUTPUT_CENTRES: outputs.get("output_centres"),
            self.OUTPUT_HTML: outputs.get("output_html"),
            self.CLUSTERS: outputs.get("k"),
        }
        arrangement = ResultLayers(results[self.OUTPUT], [results[self.OUTPUT_CONFIDENCE]])
        for path in (results[self.OUTPUT], results[self.OUTPUT_CONFIDENCE]):
            style_on_load(context, path, arrangement)
        return results
