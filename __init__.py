"""Landprobe QGIS plugin: embeddings, probes and deep models in the Processing toolbox.

Nothing is imported at module level: the engine child process runs with this folder on ``PYTHONPATH`` and imports
its ``engine`` package from here, so this file must stay harmless outside QGIS.
"""

from __future__ import annotations

from typing import Any


def classFactory(iface: Any) -> Any:
    """Create the plugin object QGIS loads (``iface`` is the ``QgisInterface``; None under qgis_process)."""
    from .plugin.plugin import LandprobePlugin

    return LandprobePlugin(iface)
