"""``landprobe:extractembeddings``: encode every patch of a raster into an embedding raster."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from .base import LandprobeAlgorithm

#: (display name, engine name) of each encoder in the order of the ENCODER options (append only); the engine's
#: registry is engine.encoders.ENCODERS (a test checks that both agree).
ENCODERS = [
    ("Random convolutional features, Gaussian filters (MOSAIKS; no weights needed)", "rcf_gaussian"),
    ("Random convolutional features, filters drawn from the raster (MOSAIKS)", "rcf_empirical"),
    ("ResNet-18 (torchgeo)", "resnet18"),
    ("ResNet-50 (torchgeo)", "resnet50"),
    ("ViT-S/16 (torchgeo)", "vit_small16"),
    ("Your checkpoint (timm architecture + weights file)", "checkpoint"),
]


class ExtractEmbeddingsAlgorithm(LandprobeAlgorithm):
    """Write an embedding raster: one band per embedding dimension, one cell per patch."""

    ALGORITHM_ID = "extractembeddings"
    DISPLAY_NAME = "Extract embeddings"
    GROUP = "Embeddings"
    GROUP_ID = "embeddings"

    ENCODER = "ENCODER"
    PATCH_SIZE = "PATCH_SIZE"
    STRIDE = "STRIDE"
    WEIGHTS = "WEIGHTS"
    WEIGHTS_FILE = "WEIGHTS_FILE"
    BAND_MAP = "BAND_MAP"
    ARCHITECTURE = "ARCHITECTURE"
    FEATURES = "FEATURES"
    OUTPUT = "OUTPUT"
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
            "<b>Encoder</b>: random convolutional features need no weights and always work offline; torchgeo "
            "backbones need weights to be meaningful (without them they are random networks, not pretrained).<br>"
            "<b>Patch size</b> and <b>Stride</b> (pixels): each cell's embedding comes from the patch centred on "
            "it; 0 means the encoder's default (16 for random features, 32 for backbones) and a stride equal to "
            "the patch.<br>"
            "<b>Weights</b> (advanced): a torchgeo weight name, e.g. <i>SENTINEL2_ALL_MOCO</i> or "
            "<i>LANDSAT_ETM_SR_MOCO</i>. Downloaded by torchgeo when online; offline, give the file below.<br>"
            "<b>Weights file</b> (advanced): a state-dict file (.pth), loaded without executing code.<br>"
            "<b>Band map</b> (advanced): which raster band holds each band the weights expect, e.g. "
            "<i>B4=3, B8=4</i>, when the band names do not say.<br>"
            "<b>Architecture</b> (advanced): the timm name of your checkpoint's network, e.g. <i>resnet18</i>.<br>"
            "<b>Random features</b> (advanced): embedding dimensions of the random convolutional features."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.add_raster_parameters()
        self.addParameter(QgsProcessingParameterEnum(
            self.ENCODER, self.tr("Encoder"), options=[self.tr(label) for label, _ in ENCODERS], defaultValue=0))
        for name, label in ((self.PATCH_SIZE, "Patch size (pixels, 0 = encoder default)"),
                            (self.STRIDE, "Stride (pixels, 0 = patch size)")):
            self.addParameter(QgsProcessingParameterNumber(
                name, self.tr(label), QgsProcessingParameterNumber.Type.Integer, defaultValue=0, minValue=0))
        advanced = [
            QgsProcessingParameterString(self.WEIGHTS, self.tr("Weights (torchgeo weight name)"), optional=True),
            QgsProcessingParameterFile(self.WEIGHTS_FILE, self.tr("Weights file"), optional=True,
                                       fileFilter=self.tr("PyTorch weights (*.pth *.pt *.ckpt)")),
            QgsProcessingParameterString(self.BAND_MAP, self.tr("Band map, e.g. B4=3, B8=4"), optional=True),
            QgsProcessingParameterString(self.ARCHITECTURE, self.tr("Architecture (timm name)"), optional=True),
            QgsProcessingParameterNumber(self.FEATURES, self.tr("Random features"),
                                         QgsProcessingParameterNumber.Type.Integer, defaultValue=128, minValue=2),
        ]
        for parameter in advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(parameter)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Embedding raster")))
        self.addOutput(QgsProcessingOutputNumber(self.DIMENSIONS, self.tr("Embedding dimensions")))
        self.addOutput(QgsProcessingOutputString(self.DEVICE, self.tr("Device used")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Convert the parameters into an ``extract_embeddings`` job and run it in the engine."""
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        params = {
            "raster": self.raster_stack(parameters, context),
            "output": output,
            "encoder": ENCODERS[self.parameterAsEnum(parameters, self.ENCODER, context)][1],
            "patch_size": self.parameterAsInt(parameters, self.PATCH_SIZE, context) or None,
            "stride": self.parameterAsInt(parameters, self.STRIDE, context) or None,
            "weights": self.parameterAsString(parameters, self.WEIGHTS, context) or None,
            "weights_file": self.parameterAsFile(parameters, self.WEIGHTS_FILE, context) or None,
            "band_map": self.parameterAsString(parameters, self.BAND_MAP, context) or None,
            "architecture": self.parameterAsString(parameters, self.ARCHITECTURE, context) or None,
            "features": self.parameterAsInt(parameters, self.FEATURES, context),
        }
        outputs = self.run_engine("extract_embeddings", params, feedback)
        return {self.OUTPUT: outputs.get("output", output), self.DIMENSIONS: outputs.get("dim"),
                self.DEVICE: outputs.get("device")}
