"""Landprobe engine: embeddings, probes and deep models for raster classification. Never imports QGIS.

The package is importable as ``engine`` (from the plugin folder, the way the plugin runs it) or as
``landprobe_engine`` (when installed with pip); all imports inside it are relative.
"""

__version__ = "0.1.0"
