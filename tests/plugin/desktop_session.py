"""Run inside QGIS desktop (``qgis --code``) by ``test_desktop.py``: the sample pipeline, then screenshots.

Environment: ``LANDPROBE_DESKTOP_OUT`` (folder for the results), ``LANDPROBE_SAMPLE`` (the sample folder).
Writes ``result.json`` (what the session saw), ``canvas.png`` (the map canvas) and ``window.png`` (the main window
with the Processing toolbox filtered on Landprobe), then quits QGIS.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path

from qgis.core import QgsApplication, QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QDockWidget
from qgis.utils import iface

OUT = Path(os.environ["LANDPROBE_DESKTOP_OUT"])
SAMPLE = Path(os.environ["LANDPROBE_SAMPLE"])


def _pipeline(info: dict) -> None:
    import processing

    raster, labels = SAMPLE / "LE70220491999322EDC01_stack.gtif", SAMPLE / "training_data.shp"
    start = time.perf_counter()
    trained = processing.run("landprobe:trainclassifier", {
        "RASTER": str(raster), "LABELS": str(labels), "FIELD": "class", "OUTPUT_MODEL": str(OUT / "model.lpmodel"),
        "OUTPUT_REPORT": str(OUT / "report.json")})
    info["train_s"] = time.perf_counter() - start
    info["overall_accuracy"] = trained["OVERALL_ACCURACY"]
    start = time.perf_counter()
    processing.runAndLoadResults("landprobe:classifyraster", {
        "RASTER": str(raster), "MODEL": trained["OUTPUT_MODEL"], "OUTPUT": str(OUT / "classes.tif"),
        "OUTPUT_CONFIDENCE": str(OUT / "confidence.tif")})
    info["classify_s"] = time.perf_counter() - start
    polygons = QgsVectorLayer(str(labels), "training polygons", "ogr")
    polygons.renderer().symbol().setColor(polygons.renderer().symbol().color().fromRgb(0, 0, 0, 0))
    polygons.renderer().symbol().symbolLayer(0).setStrokeColor(polygons.renderer().symbol().color().fromRgb(0, 0, 0))
    QgsProject.instance().addMapLayer(polygons)
    layers = {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}
    info["layers"] = {name: layer.renderer().type() if hasattr(layer, "renderer") and layer.renderer() else None
                      for name, layer in layers.items()}
    classes = next(layer for layer in layers.values() if layer.source().endswith("classes.tif"))
    confidence = next(layer for layer in layers.values() if layer.source().endswith("confidence.tif"))
    root = QgsProject.instance().layerTreeRoot()
    root.findLayer(confidence.id()).setItemVisibilityChecked(False)  # the class map on top of the sample
    info["class_labels"] = [c.label for c in classes.renderer().classes()]
    info["class_colors"] = [c.color.name() for c in classes.renderer().classes()]
    canvas = iface.mapCanvas()
    canvas.setDestinationCrs(classes.crs())
    canvas.setExtent(classes.extent())
    canvas.refreshAllLayers()


def _toolbox(info: dict) -> None:
    dock = iface.mainWindow().findChild(QDockWidget, "ProcessingToolbox")
    if dock is not None:
        dock.show()
        dock.raise_()
        search = getattr(dock, "searchBox", None)
        if search is not None:
            search.setText("Landprobe")
    info["toolbox_shown"] = dock is not None and dock.isVisible()


def _shoot(info: dict) -> None:
    canvas = iface.mapCanvas()
    canvas.waitWhileRendering()
    canvas.saveAsImage(str(OUT / "canvas.png"))
    iface.mainWindow().grab().save(str(OUT / "window.png"))
    (OUT / "result.json").write_text(json.dumps(info, indent=2))
    QgsApplication.exit(0)


def main() -> None:
    """Run the pipeline, show the toolbox, and take the screenshots once the canvas has drawn."""
    info: dict = {"providers": [p.id() for p in QgsApplication.processingRegistry().providers()]}
    try:
        iface.mainWindow().showMaximized()
        _pipeline(info)
        _toolbox(info)
    except Exception:
        info["error"] = traceback.format_exc()
    QTimer.singleShot(2000, lambda: _shoot(info))


QTimer.singleShot(1000, main)
