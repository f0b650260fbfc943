"""``landprobe:finetune``: fine-tune a deep model (patch classifier, U-Net, hyperspectral network)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputHtml,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .base import LandprobeAlgorithm
from .model_paths import model_destination, report_model

#: (display name, engine name) of the TASK, BACKBONE, VALIDATION, SCHEDULER, DEVICE and STRATEGY options, in order.
#: Append only: batch files and graphical models store the option's index.
TASKS = [
    ("Patch classification (a chip around each pixel)", "patch"),
    ("Semantic segmentation (U-Net)", "segmentation"),
    ("Hyperspectral spectral-spatial attention network", "hyperspectral"),
]
BACKBONES = [
    ("Default for the task (a small CNN for patches, ResNet-18 for the U-Net, the attention network for "
     "hyperspectral)", ""),
    ("ResNet-18", "resnet18"),
    ("ResNet-50 (patch classification)", "resnet50"),
    ("ViT-S/16 (patch classification; chip a multiple of 16)", "vit_small16"),
    ("Your checkpoint (timm architecture + weights file; patch classification)", "checkpoint"),
    ("Random convolutional features, frozen (patch classification; a baseline)", "rcf_gaussian"),
    ("ResNet-34 (U-Net encoder)", "resnet34"),
    ("Small CNN for pixel chips (patch classification, from scratch)", "small_cnn"),
]
VALIDATIONS = [
    ("Hold out 30 % of each class's polygons", "polygon_groups"),
    ("Random pixels (optimistic: neighbouring pixels leak)", "random_pixels"),
    ("None", "none"),
]
SCHEDULERS = [("Reduce on plateau", "plateau"), ("Cosine decay", "cosine")]
DEVICES = [("GPU when there is one, else CPU", "auto"), ("CPU", "cpu"), ("GPU (CUDA)", "cuda")]
STRATEGIES = [("One device", "auto"), ("Distributed data parallel (DDP)", "ddp")]


class FinetuneAlgorithm(LandprobeAlgorithm):
    """Fine-tune a deep network on labelled polygons and save it as a model file."""

    ALGORITHM_ID = "finetune"
    DISPLAY_NAME = "Fine-tune deep model"
    TAGS = ("deep learning", "neural network", "cnn", "u-net", "unet", "segmentation", "resnet", "vit", "fine-tune",
            "transfer learning", "pytorch", "lightning", "gpu", "hyperspectral", "land cover",
            "supervised classification")
    GROUP = "Deep learning"
    GROUP_ID = "deeplearning"

    RASTER, LABELS, FIELD, TASK, BACKBONE = "RASTER", "LABELS", "FIELD", "TASK", "BACKBONE"
    WEIGHTS, WEIGHTS_FILE, BAND_MAP, ARCHITECTURE = "WEIGHTS", "WEIGHTS_FILE", "BAND_MAP", "ARCHITECTURE"
    CHIP_SIZE, EPOCHS, BATCH_SIZE, LEARNING_RATE, PATIENCE = "CHIP_SIZE", "EPOCHS", "BATCH_SIZE", "LEARNING_RATE", \
        "PATIENCE"
    FREEZE_EPOCHS, SCHEDULER, VALIDATION, N_PCA = "FREEZE_EPOCHS", "SCHEDULER", "VALIDATION", "N_PCA"
    DEVICE, STRATEGY, DEVICES, NUM_WORKERS, SEED, RESUME = "DEVICE", "STRATEGY", "DEVICES", "NUM_WORKERS", "SEED", \
        "RESUME"
    OUTPUT_MODEL, OUTPUT_REPORT = "OUTPUT_MODEL", "OUTPUT_REPORT"
    OVERALL_ACCURACY, KAPPA, MACRO_F1, OUTPUT_HTML = "OVERALL_ACCURACY", "KAPPA", "MACRO_F1", "OUTPUT_HTML"
    DEVICE_USED, EPOCHS_RUN = "DEVICE_USED", "EPOCHS_RUN"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Trains a deep network on the pixels under labelled polygons, in the background (QGIS stays "
            "responsive; Cancel stops within seconds). Apply the model with <i>Classify raster</i>."
            "<h3>Tasks</h3>"
            "<b>Patch classification</b>: each pixel's class comes from the chip centred on it: a small CNN "
            "trained from scratch (the default: good with a few hundred labelled pixels), ResNet, ViT, your "
            "checkpoint, or frozen random features as a baseline.<br>"
            "<b>Semantic segmentation</b>: a U-Net labels every pixel of a tile; unlabelled pixels are ignored.<br>"
            "<b>Hyperspectral</b>: a spectral branch (bidirectional GRU with attention over the bands) and a "
            "spatial branch (CNN with spatial attention on PCA-reduced chips), for cubes with many bands.<br>"
            "<b>Chip size</b>: the side of the square each prediction sees, in pixels; 0 takes the task's default: "
            "15 for the small CNN, 32 for the other patch classifiers, 64 for U-Net tiles, 11 for hyperspectral "
            "chips."
            "<h3>Training</h3>"
            "Whole polygons are held out for validation, as for <i>Train classifier</i>. Class-weighted loss, "
            "AdamW, flips and rotations; training stops when the validation loss stops improving and keeps the "
            "best epoch. The log shows the loss and validation accuracy of every epoch and the device used.<br>"
            "<b>Weights</b>: a torchgeo weight name (e.g. <i>LANDSAT_ETM_SR_MOCO</i>), downloaded when online; "
            "offline, give the file as <b>Weights file</b>. Empty: trained from scratch.<br>"
            "<b>Freeze backbone epochs</b>: train only the new head this many epochs first (a linear probe), then "
            "everything.<br>"
            "<b>Resume</b>: continue the previous run of the same model file from its last checkpoint (kept in "
            "the folder <i>&lt;model&gt;_run</i> beside it, with CSV and TensorBoard logs)."
        )

    def _enum(self, name: str, label: str, options: list[tuple[str, str]], advanced: bool = False) -> None:
        parameter = QgsProcessingParameterEnum(name, self.tr(label), options=[self.tr(o) for o, _ in options],
                                               defaultValue=0)
        self._add(parameter, advanced)

    def _number(self, name: str, label: str, default: float, minimum: float, advanced: bool = False,
                double: bool = False) -> None:
        kind = QgsProcessingParameterNumber.Type.Double if double else QgsProcessingParameterNumber.Type.Integer
        self._add(QgsProcessingParameterNumber(name, self.tr(label), kind, defaultValue=default, minValue=minimum),
                  advanced)

    def _add(self, parameter: QgsProcessingParameterDefinition, advanced: bool) -> None:
        if advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(parameter)

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.addParameter(QgsProcessingParameterRasterLayer(self.RASTER, self.tr("Raster")))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.LABELS, self.tr("Training polygons"), [QgsProcessing.SourceType.TypeVectorPolygon]))
        self.add_class_field()
        self._enum(self.TASK, "Task", TASKS)
        self._enum(self.BACKBONE, "Backbone", BACKBONES)
        self._add(QgsProcessingParameterString(self.WEIGHTS, self.tr("Weights (torchgeo weight name)"),
                                               optional=True), False)
        self._add(QgsProcessingParameterFile(self.WEIGHTS_FILE, self.tr("Weights file"), optional=True,
                                             fileFilter=self.tr("PyTorch weights (*.pth *.pt *.ckpt)")), True)
        self._add(QgsProcessingParameterString(self.BAND_MAP, self.tr("Band map, e.g. B4=3, B8=4"), optional=True),
                  True)
        self._add(QgsProcessingParameterString(self.ARCHITECTURE, self.tr("Architecture (timm name)"),
                                               optional=True), True)
        self._number(self.CHIP_SIZE, "Chip size in pixels (0: the task's default)", 0, 0)
        self._number(self.EPOCHS, "Epochs (at most)", 20, 1)
        self._number(self.BATCH_SIZE, "Batch size", 32, 1)
        self._number(self.LEARNING_RATE, "Learning rate", 0.001, 0.0, double=True)
        self._number(self.PATIENCE, "Patience (epochs without improvement; 0 = never stop early)", 5, 0)
        self._number(self.FREEZE_EPOCHS, "Freeze backbone epochs (a linear probe first)", 0, 0, advanced=True)
        self._enum(self.SCHEDULER, "Learning-rate schedule", SCHEDULERS, advanced=True)
        self._enum(self.VALIDATION, "Validation", VALIDATIONS)
        self._number(self.N_PCA, "Principal components (hyperspectral)", 30, 1, advanced=True)
        self._enum(self.DEVICE, "Device", DEVICES, advanced=True)
        self._enum(self.STRATEGY, "Multi-GPU strategy", STRATEGIES, advanced=True)
        self._number(self.DEVICES, "GPUs (with DDP)", 1, 1, advanced=True)
        self._number(self.NUM_WORKERS, "Data loader workers", 0, 0, advanced=True)
        self._number(self.SEED, "Seed", 0, 0, advanced=True)
        self.addParameter(QgsProcessingParameterBoolean(self.RESUME, self.tr("Resume the previous run"),
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_MODEL, self.tr("Trained model"), self.tr("Landprobe model (*.lpmodel)")))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_REPORT, self.tr("Training report"), self.tr("JSON (*.json)"), optional=True,
            createByDefault=True))
        for name, label in ((self.OVERALL_ACCURACY, "Overall accuracy"), (self.KAPPA, "Kappa"),
                            (self.MACRO_F1, "Macro F1"), (self.EPOCHS_RUN, "Epochs run")):
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(label)))
        self.addOutput(QgsProcessingOutputString(self.DEVICE_USED, self.tr("Device used")))
        self.addOutput(QgsProcessingOutputHtml(self.OUTPUT_HTML, self.tr("Training report (HTML)")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Convert the parameters into a ``finetune`` job and run it in the engine."""
        field = self.class_field(parameters, context, feedback)
        labels = self.vector_path(parameters, self.LABELS, context, feedback)
        output_model = model_destination(self, parameters, self.OUTPUT_MODEL, context, feedback, labels)
        output_report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None

        def choice(name: str, options: list[tuple[str, str]]) -> str:
            return options[self.parameterAsEnum(parameters, name, context)][1]

        def text(name: str) -> str | None:
            return self.parameterAsString(parameters, name, context) or None

        task = choice(self.TASK, TASKS)
        params = {
            "raster": self.raster_path(parameters, self.RASTER, context),
            "labels": labels,
            "field": field, "output_model": output_model, "output_report": output_report, "task": task,
            "backbone": choice(self.BACKBONE, BACKBONES) or None,
            "weights": text(self.WEIGHTS), "weights_file": self.parameterAsFile(parameters, self.WEIGHTS_FILE,
                                                                                context) or None,
            "band_map": text(self.BAND_MAP), "architecture": text(self.ARCHITECTURE),
            "chip_size": self.parameterAsInt(parameters, self.CHIP_SIZE, context) or None,
            "epochs": self.parameterAsInt(parameters, self.EPOCHS, context),
            "batch_size": self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            "learning_rate": self.parameterAsDouble(parameters, self.LEARNING_RATE, context),
            "patience": self.parameterAsInt(parameters, self.PATIENCE, context),
            "freeze_epochs": self.parameterAsInt(parameters, self.FREEZE_EPOCHS, context),
            "scheduler": choice(self.SCHEDULER, SCHEDULERS), "validation": choice(self.VALIDATION, VALIDATIONS),
            "n_pca": self.parameterAsInt(parameters, self.N_PCA, context),
            "device": choice(self.DEVICE, DEVICES), "strategy": choice(self.STRATEGY, STRATEGIES),
            "devices": self.parameterAsInt(parameters, self.DEVICES, context),
            "num_workers": self.parameterAsInt(parameters, self.NUM_WORKERS, context),
            "seed": self.parameterAsInt(parameters, self.SEED, context),
            "resume": self.parameterAsBoolean(parameters, self.RESUME, context),
            "class_colors": self.class_colors(parameters, self.LABELS, field, context),
        }
        outputs = self.run_engine("finetune", params, feedback)
        self.log_accuracy(feedback, outputs.get("overall_accuracy"), outputs.get("kappa"), outputs.get("macro_f1"))
        self.link_report(feedback, outputs.get("output_html"))
        report_model(feedback, outputs.get("output_model", output_model))
        return {
            self.OUTPUT_MODEL: outputs.get("output_model", output_model),
            self.OUTPUT_REPORT: outputs.get("output_report", output_report),
            self.OVERALL_ACCURACY: outputs.get("overall_accuracy"), self.KAPPA: outputs.get("kappa"),
            self.MACRO_F1: outputs.get("macro_f1"), self.EPOCHS_RUN: outputs.get("epochs_run"),
            self.DEVICE_USED: outputs.get("device"), self.OUTPUT_HTML: outputs.get("output_html"),
        }
