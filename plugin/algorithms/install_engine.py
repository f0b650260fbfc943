"""``landprobe:installengine``: create the engine's private environment from inside QGIS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputString,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)

from .. import installer
from ..engine_process import engine_environment
from .base import LandprobeAlgorithm

COMPUTES = [("Automatic: CUDA when an NVIDIA GPU is found, else CPU", "auto"), ("CPU only", "cpu"),
            ("NVIDIA GPU (CUDA)", "cuda")]


class InstallEngineAlgorithm(LandprobeAlgorithm):
    """Build the engine's environment with pip and make the plugin use it."""

    ALGORITHM_ID = "installengine"
    DISPLAY_NAME = "Install engine"
    TAGS = ("engine", "install", "setup", "python", "torch", "environment")
    GROUP = "Engine"
    GROUP_ID = "engine"

    FOLDER, COMPUTE, REQUIREMENTS, TORCH_INDEX = "FOLDER", "COMPUTE", "REQUIREMENTS", "TORCH_INDEX"
    ENGINE_PYTHON = "ENGINE_PYTHON"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Creates the private Python environment the Landprobe engine runs in (PyTorch, TorchGeo, Lightning, "
            "scikit-learn, rasterio...), with pip, from the versions pinned in the plugin's "
            "<i>requirements/engine.lock</i>, and sets <i>Engine Python interpreter</i> in the Processing options "
            "to it. It downloads about 1 GB (CPU) to 3 GB (CUDA) and takes 5 to 20 minutes; progress and pip's "
            "messages show in the log, and Cancel stops it (run it again to finish). QGIS's own Python is not "
            "touched.<br><b>Folder</b>: where the environment goes (it needs about 2 to 6 GB).<br>"
            "<b>Compute</b>: the PyTorch build: CPU only, or CUDA for an NVIDIA GPU (automatic: CUDA when "
            "<i>nvidia-smi</i> lists a GPU).<br><b>PyTorch index</b> (advanced): the pip index of the PyTorch "
            "build, or <i>none</i> to take PyTorch from pip's own index (a local mirror)."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.addParameter(QgsProcessingParameterFile(
            self.FOLDER, self.tr("Folder"), behavior=QgsProcessingParameterFile.Behavior.Folder,
            defaultValue=str(installer.default_folder())))
        self.addParameter(QgsProcessingParameterEnum(self.COMPUTE, self.tr("Compute"),
                                                     options=[self.tr(label) for label, _ in COMPUTES],
                                                     defaultValue=0))
        advanced = [
            QgsProcessingParameterFile(self.REQUIREMENTS, self.tr("Requirements (empty: the plugin's lock file)"),
                                       optional=True, fileFilter="Requirements (*.lock *.txt)"),
            QgsProcessingParameterString(self.TORCH_INDEX, self.tr("PyTorch index"), optional=True),
        ]
        for parameter in advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(parameter)
        self.addOutput(QgsProcessingOutputString(self.ENGINE_PYTHON, self.tr("Engine Python interpreter")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Build the environment, check that the engine starts, and save the interpreter in the settings."""
        folder = Path(self.parameterAsFile(parameters, self.FOLDER, context)).expanduser()
        compute = COMPUTES[self.parameterAsEnum(parameters, self.COMPUTE, context)][1]
        lock = Path(self.parameterAsFile(parameters, self.REQUIREMENTS, context) or installer.LOCK)
        index = self.parameterAsString(parameters, self.TORCH_INDEX, context) or None
        try:
            plan = installer.install_plan(folder, compute, lock, index)
            for label, command in plan:
                feedback.pushCommandInfo(f"{label}: {' '.join(command)}")

            def report(fraction: float, message: str) -> None:
                feedback.setProgress(100 * fraction)
                feedback.setProgressText(message)
                if ": Collecting" not in message and ": Downloading" not in message:  # steps and their outcome
                    feedback.pushInfo(message)

            installer.run_plan(plan, report, feedback.isCanceled, engine_environment())
        except (RuntimeError, ValueError, OSError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        python = str(installer.venv_python(folder))
        try:
            from processing.core.ProcessingConfig import ProcessingConfig

            from ..settings import ENGINE_PYTHON_SETTING

            ProcessingConfig.setSettingValue(ENGINE_PYTHON_SETTING, python)
            feedback.pushInfo(self.tr("The plugin now uses {} (Processing options > Landprobe).").format(python))
        except ImportError:
            feedback.pushInfo(self.tr("Set the environment variable LANDPROBE_PYTHON to {}.").format(python))
        return {self.ENGINE_PYTHON: python}
