"""The plugin object QGIS creates through ``classFactory``: it only registers the Processing provider."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication

from .provider import LandprobeProvider


class LandprobePlugin:
    """Registers the Landprobe Processing provider in QGIS desktop and in ``qgis_process``."""

    def __init__(self, iface: Any) -> None:
        """Keep the QGIS interface (None under ``qgis_process``)."""
        self.iface = iface
        self.provider: LandprobeProvider | None = None

    def initProcessing(self) -> None:
        """Create the provider, keep a reference to it (or Python collects it) and add it to the registry."""
        if self.provider is None:
            self.provider = LandprobeProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        """Called by QGIS desktop: the plugin has no GUI of its own besides the Processing algorithms."""
        self.initProcessing()

    def unload(self) -> None:
        """Remove the provider from the registry."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
