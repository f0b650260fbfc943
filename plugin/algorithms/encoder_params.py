"""The encoder parameters of the algorithms that run encoders, and the training algorithms' feature sources.

``landprobe:extractembeddings`` takes the encoder's; ``landprobe:trainclassifier`` and ``landprobe:trainregressor``
both take FEATURES, the encoder's and MIN_COVERAGE (:func:`add_feature_parameters`, :func:`feature_job`).
"""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

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

#: (display name, engine name) of each feature source, in the order of the FEATURES options (append only).
FEATURE_SOURCES = [
    ("Band values of the raster (default)", "raw_bands"),
    ("Embedding raster (from Extract embeddings, Google Satellite Embedding / AlphaEarth, TESSERA...)",
     "embeddings"),
    ("Embeddings computed on the fly by the encoder below", "encoder"),
]
FEATURES = "FEATURES"
MIN_COVERAGE = "MIN_COVERAGE"
ENCODER = "ENCODER"
PATCH_SIZE = "PATCH_SIZE"
STRIDE = "STRIDE"
WEIGHTS = "WEIGHTS"
WEIGHTS_FILE = "WEIGHTS_FILE"
BAND_MAP = "BAND_MAP"
ARCHITECTURE = "ARCHITECTURE"

HELP = (
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
)


def add_encoder_parameters(algorithm: QgsProcessingAlgorithm, patch_advanced: bool = False,
                           encoder_advanced: bool = False, label: str = "Encoder") -> None:
    """Add ENCODER, PATCH_SIZE, STRIDE and the advanced WEIGHTS, WEIGHTS_FILE, BAND_MAP, ARCHITECTURE.

    ``encoder_advanced`` moves the encoder itself to the advanced parameters (where features are band values by
    default and the encoder only matters for one of the choices); ``label`` is the encoder's label.
    """
    tr = algorithm.tr
    encoder = QgsProcessingParameterEnum(ENCODER, tr(label), options=[tr(text) for text, _ in ENCODERS],
                                         defaultValue=0)
    if encoder_advanced:
        encoder.setFlags(encoder.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    algorithm.addParameter(encoder)
    sizes = [QgsProcessingParameterNumber(name, tr(label), QgsProcessingParameterNumber.Type.Integer,
                                          defaultValue=0, minValue=0)
             for name, label in ((PATCH_SIZE, "Patch size (pixels, 0 = encoder default)"),
                                 (STRIDE, "Stride (pixels, 0 = patch size)"))]
    advanced = [
        QgsProcessingParameterString(WEIGHTS, tr("Weights (torchgeo weight name)"), optional=True),
        QgsProcessingParameterFile(WEIGHTS_FILE, tr("Weights file"), optional=True,
                                   fileFilter=tr("PyTorch weights (*.pth *.pt *.ckpt)")),
        QgsProcessingParameterString(BAND_MAP, tr("Band map, e.g. B4=3, B8=4"), optional=True),
        QgsProcessingParameterString(ARCHITECTURE, tr("Architecture (timm name)"), optional=True),
    ]
    for parameter in sizes + advanced:
        if parameter in advanced or patch_advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        algorithm.addParameter(parameter)


def encoder_job(algorithm: QgsProcessingAlgorithm, parameters: dict[str, Any],
                context: QgsProcessingContext) -> dict[str, Any]:
    """The engine parameters for the encoder the user chose."""
    return {
        "encoder": ENCODERS[algorithm.parameterAsEnum(parameters, ENCODER, context)][1],
        "patch_size": algorithm.parameterAsInt(parameters, PATCH_SIZE, context) or None,
        "stride": algorithm.parameterAsInt(parameters, STRIDE, context) or None,
        "weights": algorithm.parameterAsString(parameters, WEIGHTS, context) or None,
        "weights_file": algorithm.parameterAsFile(parameters, WEIGHTS_FILE, context) or None,
        "band_map": algorithm.parameterAsString(parameters, BAND_MAP, context) or None,
        "architecture": algorithm.parameterAsString(parameters, ARCHITECTURE, context) or None,
    }


def add_feature_parameters(algorithm: QgsProcessingAlgorithm, covered_by: str) -> None:
    """Add FEATURES, the encoder's parameters (advanced) and MIN_COVERAGE (advanced).

    ``covered_by`` ends the coverage's label: what must cover an embedding cell ("one class", "the polygons").
    """
    tr = algorithm.tr
    algorithm.addParameter(QgsProcessingParameterEnum(
        FEATURES, tr("Features"), options=[tr(label) for label, _ in FEATURE_SOURCES], defaultValue=0))
    add_encoder_parameters(algorithm, patch_advanced=True, encoder_advanced=True,
                           label="Encoder (features computed on the fly)")
    coverage = QgsProcessingParameterNumber(
        MIN_COVERAGE, tr("Minimum coverage of an embedding cell by {} (0-1)").format(tr(covered_by)),
        QgsProcessingParameterNumber.Type.Double, defaultValue=0.5, minValue=0.01, maxValue=1.0)
    coverage.setFlags(coverage.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    algorithm.addParameter(coverage)


def feature_job(algorithm: QgsProcessingAlgorithm, parameters: dict[str, Any],
                context: QgsProcessingContext) -> dict[str, Any]:
    """The engine parameters for the feature source (and encoder) the user chose."""
    return {
        "features": FEATURE_SOURCES[algorithm.parameterAsEnum(parameters, FEATURES, context)][1],
        **encoder_job(algorithm, parameters, context),
        "min_coverage": algorithm.parameterAsDouble(parameters, MIN_COVERAGE, context),
    }
