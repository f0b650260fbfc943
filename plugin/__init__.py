"""The QGIS side of Landprobe: runs inside QGIS's Python (qgis.*, qgis.PyQt and the standard library only)."""
