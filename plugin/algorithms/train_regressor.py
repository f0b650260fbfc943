"""``landprobe:trainregressor``: learn a quantity per pixel (biomass, cover, yield) from polygons with values."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputHtml,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBand,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterString,
)

from . import encoder_params as enc
from .base import LandprobeAlgorithm
from .model_paths import model_destination, report_model

#: (display name, engine name) of the FEATURES options, as Train classifier's (append only).
FEATURE_SOURCES = enc.FEATURE_SOURCES
#: (display name, engine name) of the SUPPORT options (append only).
SUPPORTS = [
    ("Automatic: pixel by pixel or per polygon, the better on held-out polygons (default)", "auto"),
    ("Pixel by pixel: each pixel learns its polygon's value", "pixel"),
    ("Per polygon: the statistics of each polygon's pixels; the map in cells the size of a polygon", "polygon"),
]

#: (display name, engine name) of the METHOD options, in order (append only: batch files store indices).
METHODS = [
    ("Automatic: the best by cross-validation grouped by polygon (default)", "auto"),
    ("Ridge regression (scaled)", "ridge"),
    ("Random forest", "random_forest_regressor"),
    ("XGBoost", "xgboost_regressor"),
    ("k-nearest neighbours", "knn_regressor"),
]


class TrainRegressorAlgorithm(LandprobeAlgorithm):
    """Train a regression probe on the band values under polygons that carry a number."""

    ALGORITHM_ID = "trainregressor"
    DISPLAY_NAME = "Train regressor"
    TAGS = ("regression", "continuous", "biomass", "canopy cover", "yield", "soil carbon", "impervious",
            "quantity", "random forest", "xgboost", "ridge", "knn", "r2", "rmse")

    BANDS = "BANDS"
    LABELS = "LABELS"
    FIELD = "FIELD"
    UNIT = "UNIT"
    METHOD = "METHOD"
    FEATURES = enc.FEATURES
    MIN_COVERAGE = enc.MIN_COVERAGE
    SUPPORT = "SUPPORT"
    MORE_LABELS = "MORE_LABELS"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    OUTPUT_HTML = "OUTPUT_HTML"
    R2 = "R2"
    RMSE = "RMSE"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Learns a quantity per pixel (biomass, canopy cover, crop yield, impervious fraction...) from polygons "
            "or points that carry its value, and validates it on polygons held out from training (folds grouped "
            "by polygon): R², RMSE, MAE and bias per fold and overall, and the observed-against-predicted plot, in "
            "the report. Map it with <i>Classify raster</i> (a float raster on a ramp, in the unit you name) or a "
            "whole region with <i>Map region</i>."
            "<h3>Parameters</h3>"
            "<b>Raster</b>, <b>Bands</b>: as in <i>Train classifier</i>.<br>"
            "<b>Polygons with values</b> and <b>Value field</b>: a numeric field; each pixel under a polygon learns "
            "its polygon's value.<br>"
            "<b>Unit</b>: the quantity's unit, e.g. t/ha or %.<br>"
            "<b>Method</b>: automatic (ridge, random forest, XGBoost and k-NN compared by cross-validation on the "
            "training polygons only), or one of them.<br>"
            "<b>Features</b>: the raster's band values (default), or the raster is an embedding raster (from "
            "<i>Extract embeddings</i>, Google Satellite Embedding / AlphaEarth, TESSERA): each cell covered by the "
            "polygons to at least the <b>Minimum coverage</b> (advanced) learns the value of the polygon covering "
            "most of it, and the map is one value per cell; or embeddings computed on the fly by the <b>Encoder</b> "
            "(advanced; stored in the model and run again by <i>Classify raster</i>, whose map comes back on the "
            "raster's grid).<br>"
            "<b>Support</b>: a value that belongs to a whole polygon (a plot's biomass, a cell's cover) can be "
            "learned pixel by pixel or from each polygon's pixels together (their mean, spread and percentiles: "
            "texture and mixture count); automatic validates both on the same held-out polygons and keeps the "
            "better. With polygon support the map is made in square cells the size of a typical polygon (named "
            "in the log and the report). Points are learned pixel by pixel.<br>"
            "<b>More labels</b> (optional): more layers with the same value field, e.g. the points of <i>Suggest "
            "where to label next</i> with their values measured; merged with the polygons (empty values skipped) "
            "and kept beside the model."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.add_raster_parameters()
        self.addParameter(QgsProcessingParameterBand(self.BANDS, self.tr("Bands (empty: all)"),
                                                     parentLayerParameterName=self.RASTER, optional=True,
                                                     allowMultiple=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.LABELS, self.tr("Polygons (or points) with values"),
            [QgsProcessing.SourceType.TypeVectorPolygon, QgsProcessing.SourceType.TypeVectorPoint]))
        self.addParameter(QgsProcessingParameterField(
            self.FIELD, self.tr("Value field"), parentLayerParameterName=self.LABELS,
            type=QgsProcessingParameterField.DataType.Numeric))
        self.addParameter(QgsProcessingParameterString(self.UNIT, self.tr("Unit (e.g. t/ha, %)"), optional=True))
        self.addParameter(QgsProcessingParameterEnum(self.METHOD, self.tr("Method"),
                                                     options=[self.tr(label) for label, _ in METHODS],
                                                     defaultValue=0))
        enc.add_feature_parameters(self, "the polygons")
        self.addParameter(QgsProcessingParameterEnum(
            self.SUPPORT, self.tr("Support"), options=[self.tr(label) for label, _ in SUPPORTS], defaultValue=0))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.MORE_LABELS, self.tr("More labels (e.g. the points of Suggest where to label next, measured)"),
            QgsProcessing.SourceType.TypeVector, optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_MODEL, self.tr("Trained model"), self.tr("Landprobe model (*.lpmodel)")))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_REPORT, self.tr("Validation report"), self.tr("JSON (*.json)"), optional=True,
            createByDefault=True))
        self.addOutput(QgsProcessingOutputHtml(self.OUTPUT_HTML, self.tr("Validation report (HTML)")))
        self.addOutput(QgsProcessingOutputNumber(self.R2, self.tr("R² on held-out polygons")))
        self.addOutput(QgsProcessingOutputNumber(self.RMSE, self.tr("RMSE on held-out polygons")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Convert the parameters into a ``train_regressor`` job and run it in the engine."""
        labels = self.vector_path(parameters, self.LABELS, context, feedback)
        field = self.parameterAsString(parameters, self.FIELD, context)
        if not field:
            raise QgsProcessingException(self.tr("Choose the value field: the number to learn."))
        output_model = model_destination(self, parameters, self.OUTPUT_MODEL, context, feedback, labels)
        bands = self.parameterAsInts(parameters, self.BANDS, context) or None
        outputs = self.run_engine(
            "train_regressor",
            {
                "raster": self.raster_stack(parameters, context),
                "labels": labels,
                "field": field,
                "unit": self.parameterAsString(parameters, self.UNIT, context) or "",
                "method": METHODS[self.parameterAsEnum(parameters, self.METHOD, context)][1],
                "bands": bands,
                **enc.feature_job(self, parameters, context),
                "support": SUPPORTS[self.parameterAsEnum(parameters, self.SUPPORT, context)][1],
                "more_labels": self.label_files(parameters, self.MORE_LABELS, context),
                "output_model": output_model,
                "output_report": self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None,
            },
            feedback,
        )
        feedback.pushInfo(self.tr("Held-out polygons: R² {:.3f}, RMSE {:.4g}, MAE {:.4g}, bias {:+.4g} ({}).").format(
            outputs.get("r2") or 0.0, outputs.get("rmse") or 0.0, outputs.get("mae") or 0.0,
            outputs.get("bias") or 0.0, outputs.get("method")))
        report_model(feedback, outputs.get("output_model"))
        self.link_report(feedback, outputs.get("output_html"))
        return {
            self.OUTPUT_MODEL: outputs.get("output_model", output_model),
            self.OUTPUT_REPORT: outputs.get("output_report"),
            self.OUTPUT_HTML: outputs.get("output_html"),
            self.R2: outputs.get("r2"),
            self.RMSE: outputs.get("rmse"),
        }
