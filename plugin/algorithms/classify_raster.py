"""``landprobe:classifyraster``: apply a trained model to every pixel of a raster."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import LandprobeAlgorithm
from .model_paths import model_parameter
from .styles import ResultLayers, style_on_load

#: (display name, engine name) of each output grid, in the order of the OUTPUT_GRID options (append only).
OUTPUT_GRIDS = [
    ("The raster's pixels (each pixel takes its embedding cell's class)", "input"),
    ("The embedding grid (one pixel per embedding cell)", "embedding"),
]


class ClassifyRasterAlgorithm(LandprobeAlgorithm):
    """Classify each pixel of a raster with a model made by *Train classifier*."""

    ALGORITHM_ID = "classifyraster"
    DISPLAY_NAME = "Classify raster"
    TAGS = ("supervised classification", "land cover", "land use", "map", "predict", "inference", "apply model",
            "probability", "confidence", "random forest", "svm", "xgboost", "deep learning", "segmentation")

    MODEL = "MODEL"
    OUTPUT = "OUTPUT"
    OUTPUT_PROBABILITY = "OUTPUT_PROBABILITY"
    OUTPUT_CONFIDENCE = "OUTPUT_CONFIDENCE"
    OUTPUT_UNCERTAINTY = "OUTPUT_UNCERTAINTY"
    OUTPUT_GRID = "OUTPUT_GRID"
    GRID_RASTER = "GRID_RASTER"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Classifies every pixel of a raster with a model trained by <i>Train classifier</i> and writes a "
            "single-band GeoTIFF of class codes, on the input's grid (same size, extent and CRS). Pixels that are "
            "nodata in the input are nodata in the output. The raster is processed window by window, so it may "
            "be larger than memory; cancelling stops at the next window and leaves no partial file."
            "<h3>Parameters</h3>"
            "<b>Raster</b>: a raster stored in a file (GeoTIFF) with the same bands, in the same order, as the "
            "raster the model was trained on.<br>"
            "<b>More bands</b> (advanced, optional): further rasters whose bands are stacked after the first "
            "raster's, as at training.<br>"
            "<b>Model</b>: a Landprobe model file (.lpmodel); the last model trained is offered. A model "
            "trained on an embedding raster classifies "
            "embedding rasters of the same kind (same encoder, weights, patch size and stride: others are refused "
            "with the difference named); a model that computes embeddings on the fly takes the raster's bands as "
            "at training.<br>"
            "<b>Output grid</b> (advanced): for a model computing embeddings on the fly, the map is on the "
            "raster's pixels (default) or one pixel per embedding cell.<br>"
            "<b>Grid of this raster</b> (advanced, optional): writes the maps on that raster's grid instead, "
            "e.g. the original image under an embedding raster. Embedding cells are never interpolated: each "
            "pixel takes its nearest cell.<br>"
            "<b>Classified raster</b>: a Cloud-Optimized GeoTIFF of class codes with a colour table; the class "
            "names travel with it (GDAL category names in the .aux.xml and a QGIS style in the .qml beside it).<br>"
            "<b>Class probabilities</b> (optional): one Float32 band per class, named after the class.<br>"
            "<b>Confidence</b> (optional): the probability of the mapped class at each pixel (0..1), low where the "
            "model hesitates.<br>"
            "<b>Uncertainty</b> (optional, models from <i>Train regressor</i> with the random forest or k-nearest "
            "neighbours): each pixel's uncertainty in the quantity's unit, the standard deviation of the trees' "
            "predictions or of the nearest training samples' values; high where the model extrapolates."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters."""
        self.add_raster_parameters()
        self.addParameter(model_parameter(self.MODEL, self.tr("Model")))
        grid = QgsProcessingParameterEnum(self.OUTPUT_GRID, self.tr("Output grid (models computing embeddings)"),
                                          options=[self.tr(label) for label, _ in OUTPUT_GRIDS], defaultValue=0)
        grid_raster = QgsProcessingParameterRasterLayer(self.GRID_RASTER, self.tr("Grid of this raster"),
                                                        optional=True)
        for parameter in (grid, grid_raster):
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(parameter)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Classified raster")))
        for name, label in ((self.OUTPUT_PROBABILITY, "Class probabilities"), (self.OUTPUT_CONFIDENCE, "Confidence"),
                            (self.OUTPUT_UNCERTAINTY, "Uncertainty (regression models)")):
            self.addParameter(
                QgsProcessingParameterRasterDestination(name, self.tr(label), optional=True, createByDefault=False)
            )

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Convert the parameters into a ``classify_raster`` job and run it in the engine."""
        raster = self.raster_stack(parameters, context)
        model = self.parameterAsFile(parameters, self.MODEL, context)
        feedback.pushInfo(self.tr("Model: {}").format(model))
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        probability = self.parameterAsOutputLayer(parameters, self.OUTPUT_PROBABILITY, context) or None
        confidence = self.parameterAsOutputLayer(parameters, self.OUTPUT_CONFIDENCE, context) or None
        uncertainty = self.parameterAsOutputLayer(parameters, self.OUTPUT_UNCERTAINTY, context) or None
        grid_layer = self.parameterAsRasterLayer(parameters, self.GRID_RASTER, context)
        outputs = self.run_engine(
            "classify_raster",
            {
                "raster": raster,
                "model": model,
                "output": output,
                "output_probability": probability,
                "output_confidence": confidence,
                "output_uncertainty": uncertainty,
                "output_grid": OUTPUT_GRIDS[self.parameterAsEnum(parameters, self.OUTPUT_GRID, context)][1],
                "grid_raster": self.layer_file(grid_layer) if grid_layer else None,
            },
            feedback,
        )
        results = {
            self.OUTPUT: outputs.get("output", output),
            self.OUTPUT_PROBABILITY: outputs.get("output_probability"),
            self.OUTPUT_CONFIDENCE: outputs.get("output_confidence"),
            self.OUTPUT_UNCERTAINTY: outputs.get("output_uncertainty"),
        }
        # Class names and colours, probabilities on a 0..1 ramp; the class map on top, the others below, unchecked.
        arrangement = ResultLayers(results[self.OUTPUT], [results[self.OUTPUT_CONFIDENCE],
                                                          results[self.OUTPUT_UNCERTAINTY],
                                                          results[self.OUTPUT_PROBABILITY]],
                                   per_class=results[self.OUTPUT_PROBABILITY])
        for path in results.values():
            style_on_load(context, path, arrangement)
        return results
