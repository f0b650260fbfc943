"""Styles and places for the layers QGIS loads when an algorithm finishes.

QGIS applies a raster's ``<name>.qml`` when a user opens the file later; in the Processing run itself the layer is
loaded by Processing, so a post-processor applies the same style at once (class names and colours, or a 0..1 ramp).

A run of *Classify raster* loads up to three layers, in an order that depends on the QGIS version and the file
names. :class:`ResultLayers` puts them as a user expects: the class map on top and visible; the confidence and the
probabilities right below it, unchecked (they would hide the map); and the probabilities as a group with one layer per
class, named after it, plus the multi-band layer itself (whose Identify shows every class's probability at a pixel).
The layers are arranged each time one of them is loaded and once more after Processing is done (QGIS versions differ
in when a loaded layer enters the layer tree).
"""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsContrastEnhancement,
    QgsLayerTreeGroup,
    QgsLayerTreeLayer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandGrayRenderer,
)
from qgis.PyQt.QtCore import QTimer

#: QGIS keeps only a pointer to a post-processor: the Python objects must outlive the algorithm that made them.
_KEEP: list[Any] = []
#: Name of the group holding the probability layers ("<layer name>: " before it).
PROBABILITY_GROUP = "{}: one layer per class"


class StyleFromFile(QgsProcessingLayerPostProcessorInterface):
    """Loads a ``.qml`` style into the layer once it is in the project, then lets ``arrangement`` place it."""

    def __init__(self, qml: str, arrangement: ResultLayers | None = None, path: str = "") -> None:
        """Apply ``qml``; tell ``arrangement`` (if any) that the layer of ``path`` is loaded."""
        super().__init__()
        self.qml = qml
        self.arrangement = arrangement
        self.path = path

    def postProcessLayer(self, layer: Any, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> None:
        """Apply the style when the file exists, then place the layer."""
        if layer is None:
            return
        if os.path.isfile(self.qml):
            layer.loadNamedStyle(self.qml)
            layer.triggerRepaint()
        if self.arrangement is not None:
            self.arrangement.loaded(self.path, layer)


def style_on_load(context: QgsProcessingContext, output: str | None, arrangement: ResultLayers | None = None) -> None:
    """When Processing will load the raster ``output``, give it the style file beside it (and a place)."""
    if not output or not context.willLoadLayerOnCompletion(output):
        return
    processor = StyleFromFile(os.path.splitext(output)[0] + ".qml", arrangement, output)
    _KEEP.append(processor)
    context.layerToLoadOnCompletionDetails(output).setPostProcessor(processor)


class ResultLayers:
    """The layers of one run: the main one on top and visible, the others right below it and unchecked."""

    def __init__(self, main: str, below: list[str | None], per_class: str | None = None) -> None:
        """``main`` and ``below`` are output files; ``per_class`` (one of ``below``) gets a layer per band."""
        self.main = main
        self.below = [path for path in below if path]
        self.per_class = per_class
        self.layer_ids: dict[str, str] = {}
        self.group_name: str | None = None
        _KEEP.append(self)

    def loaded(self, path: str, layer: Any) -> None:
        """The layer of ``path`` is in the project: arrange now, and again once Processing is done."""
        self.layer_ids[path] = layer.id()
        self.arrange()
        QTimer.singleShot(0, self.arrange)

    def _node(self, root: QgsLayerTreeGroup, path: str) -> Any:
        """The tree node of ``path``'s layer (its group, for the per-class probabilities), or None."""
        node = root.findLayer(self.layer_ids[path]) if path in self.layer_ids else None
        if node is not None and path == self.per_class and isinstance(node.parent(), QgsLayerTreeGroup) \
                and node.parent().name() == self.group_name:
            return node.parent()
        return node

    def arrange(self) -> None:
        """Put the nodes in order (a no-op when they are already, or not in the layer tree yet)."""
        project = QgsProject.instance()
        if project is None:
            return
        root = project.layerTreeRoot()
        if self.per_class in self.layer_ids and self.group_name is None:
            node = root.findLayer(self.layer_ids[self.per_class])
            if node is not None:
                self.group_name = split_by_class(node)
        below = [node for node in (self._node(root, path) for path in self.below) if node is not None]
        for node in below:
            node.setItemVisibilityChecked(False)
        main = self._node(root, self.main)
        if main is None:
            return
        main.setItemVisibilityChecked(True)
        parent = main.parent()
        wanted = [main, *[node for node in below if node.parent() is parent]]
        children = parent.children()
        positions = [_index(children, node) for node in wanted]
        start = min(positions)
        if positions == list(range(start, start + len(wanted))):
            return
        # Fresh nodes made by the tree itself (a clone made in Python may be collected with its wrapper); the
        # probability group stays where it is, below the layers put above it.
        moved = [node for node in wanted if isinstance(node, QgsLayerTreeLayer)]
        for offset, node in enumerate(moved):
            fresh = parent.insertLayer(start + offset, node.layer())
            fresh.setItemVisibilityChecked(node.itemVisibilityChecked())
        for node in moved:
            parent.removeChildNode(node)


def _index(children: list[Any], node: Any) -> int:
    """Position of ``node`` among ``children`` (tree nodes are compared by identity of the wrapped object)."""
    for i, child in enumerate(children):
        if child is node or (isinstance(child, QgsLayerTreeLayer) and isinstance(node, QgsLayerTreeLayer)
                             and child.layerId() == node.layerId()) or (
                isinstance(child, QgsLayerTreeGroup) and isinstance(node, QgsLayerTreeGroup)
                and not isinstance(child, QgsLayerTreeLayer) and child.name() == node.name()):
            return i
    return len(children)


def split_by_class(node: QgsLayerTreeLayer) -> str | None:
    """Replace a multi-band probability layer's node by a group: one layer per band (class), and the layer itself.

    Returns the group's name, or None when the layer has a single band (left as it is).
    """
    layer = node.layer()
    if not isinstance(layer, QgsRasterLayer) or layer.bandCount() < 2:
        return None
    parent = node.parent()
    name = PROBABILITY_GROUP.format(layer.name())
    group = parent.insertGroup(_index(parent.children(), node), name)
    qml = os.path.splitext(layer.source().split("|")[0])[0] + ".qml"
    project = QgsProject.instance()
    names = band_names(layer)
    for band in range(1, layer.bandCount() + 1):
        title = names[band - 1] or f"Class {band}"
        one = QgsRasterLayer(layer.source(), title, "gdal")
        if os.path.isfile(qml):
            one.loadNamedStyle(qml)
        _show_band(one, band)
        project.addMapLayer(one, False)
        group.addLayer(one).setItemVisibilityChecked(False)
    layer.setName(f"{layer.name()} (all classes: Identify shows every probability)")
    group.addLayer(layer).setItemVisibilityChecked(False)
    parent.removeChildNode(node)
    group.setItemVisibilityChecked(False)
    group.setExpanded(False)
    return name


def band_names(layer: QgsRasterLayer) -> list[str]:
    """The bands' descriptions (the engine names each probability band after its class); "" where none."""
    provider = layer.dataProvider()
    if hasattr(provider, "bandDescription"):  # QGIS 3.36 and later
        return [provider.bandDescription(band) for band in range(1, layer.bandCount() + 1)]
    from osgeo import gdal  # GDAL's bindings ship with QGIS; not the engine's stack

    dataset = gdal.Open(layer.source().split("|")[0])
    if dataset is None:
        return [""] * layer.bandCount()
    return [dataset.GetRasterBand(band).GetDescription() for band in range(1, dataset.RasterCount + 1)]


def _show_band(layer: QgsRasterLayer, band: int) -> None:
    """Draw ``band`` with the layer's single-band renderer, or in grey from 0 to 1 when it has another one."""
    renderer = layer.renderer()
    if renderer is not None and renderer.type() == "singlebandpseudocolor":
        if not (hasattr(renderer, "setInputBand") and renderer.setInputBand(band)):
            renderer.setBand(band)
        return
    gray = QgsSingleBandGrayRenderer(layer.dataProvider(), band)
    contrast = QgsContrastEnhancement(layer.dataProvider().dataType(band))
    contrast.setMinimumValue(0.0)
    contrast.setMaximumValue(1.0)
    contrast.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
    gray.setContrastEnhancement(contrast)
    layer.setRenderer(gray)
