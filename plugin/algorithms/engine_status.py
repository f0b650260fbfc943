"""``landprobe:enginestatus``: check that the engine starts, and report its packages and devices."""

from __future__ import annotations

import json
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputString,
    QgsProcessingParameterFileDestination,
)

from .base import LandprobeAlgorithm


class EngineStatusAlgorithm(LandprobeAlgorithm):
    """Start the engine once and report its Python, version, packages and compute devices."""

    ALGORITHM_ID = "enginestatus"
    DISPLAY_NAME = "Engine status"
    TAGS = ("engine", "status", "gpu", "cuda", "install", "diagnostics")
    GROUP = "Engine"
    GROUP_ID = "engine"

    OUTPUT = "OUTPUT"
    PYTHON = "PYTHON"
    ENGINE_VERSION = "ENGINE_VERSION"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Starts the Landprobe engine in its own Python environment and reports the interpreter, the engine "
            "version, the versions of the packages it uses (torch, torchgeo, scikit-learn, XGBoost, rasterio...) "
            "and the devices it can compute on (CPU, CUDA GPUs). Run it first after installing, and attach its "
            "log to bug reports."
            "<h3>Parameters</h3>"
            "<b>Status report</b>: optional JSON file to write the same information to.<br>"
            "The engine interpreter is taken from the environment variable LANDPROBE_PYTHON, else from "
            "Settings > Options > Processing > Providers > Landprobe > Engine Python interpreter, else from the "
            "record written by <tt>make setup</tt>."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the optional report and the outputs."""
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT, self.tr("Status report"), self.tr("JSON (*.json)"), optional=True, createByDefault=False
            )
        )
        self.addOutput(QgsProcessingOutputString(self.PYTHON, self.tr("Engine Python interpreter")))
        self.addOutput(QgsProcessingOutputString(self.ENGINE_VERSION, self.tr("Engine version")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Run the ``engine_status`` job and print its answer."""
        status = self.run_engine("engine_status", {}, feedback)
        feedback.pushInfo(self.tr("Engine Python: {}").format(status.get("python")))
        feedback.pushInfo(self.tr("Engine version: {}").format(status.get("engine_version")))
        packages = status.get("packages") or {}
        if packages:
            feedback.pushInfo(self.tr("Packages:"))
            for name in sorted(packages):
                version = packages[name]
                feedback.pushInfo(f"  {name}: {version if version else self.tr('not installed')}")
        devices = status.get("devices") or []
        feedback.pushInfo(self.tr("Devices:") if devices else self.tr("Devices: none reported"))
        for device in devices:
            details = ", ".join(f"{key}={value}" for key, value in device.items() if key not in ("type", "name"))
            feedback.pushInfo(f"  {device.get('type')}: {device.get('name')}" + (f" ({details})" if details else ""))
        feedback.pushInfo(self.tr("Map region runs on: {}").format(
            self.tr("the Dask scheduler at {}").format(status["dask_scheduler"]) if status.get("dask_scheduler")
            else self.tr("a local Dask cluster on this machine")))

        results: dict[str, Any] = {
            self.PYTHON: status.get("python"),
            self.ENGINE_VERSION: status.get("engine_version"),
            "PACKAGES": packages,
            "DEVICES": devices,
        }
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if output:
            try:
                with open(output, "w", encoding="utf-8") as stream:
                    json.dump(status, stream, indent=2, default=str)
            except OSError as exc:
                raise QgsProcessingException(self.tr("Could not write {}: {}").format(output, exc)) from exc
            results[self.OUTPUT] = output
        return results
