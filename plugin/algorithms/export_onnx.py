"""``landprobe:exportonnx``: write a deep model as ONNX, checked against PyTorch on a test tile."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
)

from .base import LandprobeAlgorithm
from .model_paths import model_parameter


class ExportOnnxAlgorithm(LandprobeAlgorithm):
    """Export a fine-tuned model to ONNX for other runtimes."""

    ALGORITHM_ID = "exportonnx"
    DISPLAY_NAME = "Export deep model to ONNX"
    TAGS = ("onnx", "export", "deep learning", "deployment", "model")
    GROUP = "Deep learning"
    GROUP_ID = "deeplearning"

    MODEL = "MODEL"
    OUTPUT = "OUTPUT"
    MAX_DIFFERENCE = "MAX_DIFFERENCE"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Writes a model made by <i>Fine-tune deep model</i> as an ONNX file, for ONNX Runtime, OpenCV or other "
            "tools. The export is run on a test tile with ONNX Runtime and compared with PyTorch; the file is "
            "written only when both agree. The graph takes normalised band values (batch, bands, height, width); "
            "its metadata (key <i>landprobe</i>) lists the classes, the bands read and their mean and standard "
            "deviation.<br><b>Largest difference</b>: the largest gap between ONNX and PyTorch class scores on the "
            "test tile."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.addParameter(model_parameter(self.MODEL, self.tr("Deep model")))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, self.tr("ONNX file"),
                                                                self.tr("ONNX (*.onnx)")))
        self.addOutput(QgsProcessingOutputNumber(self.MAX_DIFFERENCE, self.tr("Largest difference")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Run the ``export_onnx`` job in the engine."""
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        outputs = self.run_engine("export_onnx", {
            "model": self.parameterAsFile(parameters, self.MODEL, context), "output": output}, feedback)
        return {self.OUTPUT: outputs.get("output", output), self.MAX_DIFFERENCE: outputs.get("max_abs_difference")}
