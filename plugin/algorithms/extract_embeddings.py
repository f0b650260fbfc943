"""``landprobe:extractembeddings``: encode every patch of a raster into an embedding raster."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from . import encoder_params as enc
from .base import LandprobeAlgorithm


class ExtractEmbeddingsAlgorithm(LandprobeAlgorithm):
    """Write an embedding raster: one band per embedding dimension, one cell per patch."""

    ALGORITHM_ID = "extractembeddings"
    DISPLAY_NAME = "Extract embeddings"
    TAGS = ("embeddings", "foundation model", "encoder", "features", "mosaiks",
            "random convolutional features", "resnet", "vit", "torchgeo", "pretrained", "self-supervised")
    GROUP = "Embeddings"
    GROUP_ID = "embeddings"

    ENCODER = enc.ENCODER
    PATCH_SIZE = enc.PATCH_SIZE
    STRIDE = enc.STRIDE
    WEIGHTS = enc.WEIGHTS
    WEIGHTS_FILE = enc.WEIGHTS_FILE
    BAND_MAP = enc.BAND_MAP
    ARCHITECTURE = enc.ARCHITECTURE
    FEATURES = "FEATURES"
    OUTPUT = "OUTPUT"
    OUTPUT_PREVIEW = "OUTPUT_PREVIEW"
    DIMENSIONS = "DIMENSIONS"
    DEVICE = "DEVICE"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Runs an encoder over every patch of a raster and writes an <b>embedding raster</b>: a Float32 GeoTIFF "
            "with one band per embedding dimension and one cell per patch, aligned with the raster (cell size = "
            "stride x pixel size). Its metadata records the encoder, weights, bands, patch size, stride and "
            "normalisation. Runs on the GPU when there is one (the log names the device); cancel stops at the "
            "next batch and leaves no partial file."
            "<h3>Parameters</h3>"
            + enc.HELP
            + "<b>Random features</b> (advanced): embedding dimensions of the random convolutional features.<br>"
            "<b>Preview</b>: the embeddings' first three principal components as red, green and blue, stretched: "
            "cells the encoder sees as alike get alike colours (the embedding raster itself has one band per "
            "dimension)."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.add_raster_parameters()
        enc.add_encoder_parameters(self)
        features = QgsProcessingParameterNumber(self.FEATURES, self.tr("Random features"),
                                                QgsProcessingParameterNumber.Type.Integer, defaultValue=128, minValue=2)
        features.setFlags(features.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(features)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Embedding raster")))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_PREVIEW, self.tr("Preview (first three principal components as RGB)"), optional=True,
            createByDefault=True))
        self.addOutput(QgsProcessingOutputNumber(self.DIMENSIONS, self.tr("Embedding dimensions")))
        self.addOutput(QgsProcessingOutputString(self.DEVICE, self.tr("Device used")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Convert the parameters into an ``extract_embeddings`` job and run it in the engine."""
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        preview = self.parameterAsOutputLayer(parameters, self.OUTPUT_PREVIEW, context) or None
        params = {
            "raster": self.raster_stack(parameters, context),
            "output": output,
            **enc.encoder_job(self, parameters, context),
            "features": self.parameterAsInt(parameters, self.FEATURES, context),
            "output_preview": preview,
        }
        outputs = self.run_engine("extract_embeddings", params, feedback)
        return {self.OUTPUT: outputs.get("output", output), self.OUTPUT_PREVIEW: outputs.get("preview"),
                self.DIMENSIONS: outputs.get("dim"), self.DEVICE: outputs.get("device")}
