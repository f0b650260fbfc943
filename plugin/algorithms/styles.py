"""Styles for the layers QGIS loads when an algorithm finishes: the ``.qml`` the engine wrote beside each file.

QGIS applies a raster's ``<name>.qml`` when a user opens the file later; in the Processing run itself the layer is
loaded by Processing, so a post-processor applies the same style at once (class names and colours, or a 0..1 ramp).
"""

from __future__ import annotations

import os
from typing import Any

from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProcessingLayerPostProcessorInterface

#: QGIS keeps only a pointer to a post-processor: the Python objects must outlive the algorithm that made them.
_KEEP: list[QgsProcessingLayerPostProcessorInterface] = []


class StyleFromFile(QgsProcessingLayerPostProcessorInterface):
    """Loads a ``.qml`` style into the layer once it is in the project."""

    def __init__(self, qml: str) -> None:
        """Apply ``qml``."""
        super().__init__()
        self.qml = qml

    def postProcessLayer(self, layer: Any, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> None:
        """Apply the style when the file exists."""
        if layer is not None and os.path.isfile(self.qml):
            layer.loadNamedStyle(self.qml)
            layer.triggerRepaint()


def style_on_load(context: QgsProcessingContext, output: str | None) -> None:
    """When Processing will load the raster ``output``, give it the style file beside it."""
    if not output or not context.willLoadLayerOnCompletion(output):
        return
    processor = StyleFromFile(os.path.splitext(output)[0] + ".qml")
    _KEEP.append(processor)
    context.layerToLoadOnCompletionDetails(output).setPostProcessor(processor)
