"""Run inside QGIS desktop (``qgis --code``) by ``test_desktop.py``: the sample pipeline, then screenshots.

Environment: ``LANDPROBE_DESKTOP_OUT`` (folder for the results), ``LANDPROBE_SAMPLE`` (the sample folder).

The session loads the sample raster and its training polygons into the project, as an analyst would, then writes:

- ``dialog.png``: the *Train classifier* dialog as it opens on that project (the class field left to the plugin);
- ``layers.png``: the Layers panel after *Classify raster* loaded the class map, probabilities and confidence;
- ``finetune_log.png`` and ``finetune_log.txt``: the Log tab of a short *Fine-tune deep model* run in its dialog;
- ``report.png``: the HTML report written by *Train classifier*, rendered in a QTextBrowser (its first screen;
  ``report_full.png``: the whole page);
- ``canvas.png`` (the map canvas) and ``window.png`` (the main window with the Processing toolbox filtered on
  Landprobe);
- ``result.json``: what the session saw (layer tree top to bottom, the dialog's class field, timings), with the
  traceback of any capture that failed under ``errors`` (one failing capture does not stop the others).

After those, the analyses as a user runs them from the toolbox (``runAndLoadResults``, so that the plugin styles
each layer as it loads), each shown alone on the canvas, zoomed to it, and saved cropped to the layer and at most
``ANALYSIS_WIDTH`` pixels wide (the README's pictures):

- ``cluster.png``: *Cluster raster* on the 1999 scene (number of clusters chosen, at most 6, seed 0);
- ``similarity.png``: *Find similar pixels* on the 1999 scene with the forest polygons as examples (outlined);
- ``change.png`` and ``transitions.png``: *Map change* from 1999 to 2002 with the model trained above: the change
  magnitude, then the from-to transitions;
- ``suggestions.png``: *Suggest where to label next* (30 points, white) with the same model, over its class map and
  the training polygons (outlined).

Their renderers go under ``analyses`` in ``result.json`` (the analyses hide the other layers, so they come last).

Then it quits QGIS. Layers are neither reordered nor hidden here: what the layer tree shows is the plugin's doing.
"""

from __future__ import annotations

import base64
import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsFeatureRequest,
    QgsLayerTreeGroup,
    QgsLayerTreeLayer,
    QgsMapLayer,
    QgsMarkerSymbol,
    QgsProject,
    QgsRasterLayer,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QEventLoop, QRect, Qt, QTimer, QUrl
from qgis.PyQt.QtGui import QFont, QImage, QTextDocument
from qgis.PyQt.QtWidgets import QApplication, QDockWidget, QPlainTextEdit, QTextBrowser, QTextEdit
from qgis.utils import iface

OUT = Path(os.environ["LANDPROBE_DESKTOP_OUT"])
SAMPLE = Path(os.environ["LANDPROBE_SAMPLE"])
RASTER = SAMPLE / "LE70220491999322EDC01_stack.gtif"
AFTER = SAMPLE / "LE70220492002106EDC00_stack.gtif"  # the same footprint, 2002
LABELS = SAMPLE / "training_data.shp"
#: The fine-tune run of ``finetune_log.*``: the dialog's defaults (patch task, small CNN, automatic device) but two
#: epochs, so that it takes well under a minute on a CPU.
FINETUNE = {"RASTER": str(RASTER), "LABELS": str(LABELS), "FIELD": "class", "TASK": 0, "BACKBONE": 0,
            "EPOCHS": 2, "OUTPUT_MODEL": str(OUT / "deep.lpmodel"), "OUTPUT_REPORT": str(OUT / "deep.json")}
FINETUNE_TIMEOUT_S = 300
#: The widest the analyses' pictures are saved (they are the README's).
ANALYSIS_WIDTH = 800


def _settle(ms: int) -> None:
    """Let the event loop run for ``ms`` milliseconds (widgets lay out, signals queued from threads arrive)."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec_()


def _save(info: dict) -> None:
    (OUT / "result.json").write_text(json.dumps(info, indent=2, default=str))


def _capture(info: dict, name: str, step: Callable[[dict], None]) -> None:
    """Run one capture; a failure is recorded under ``info["errors"][name]`` and the session goes on."""
    try:
        step(info)
    except Exception:
        info["errors"][name] = traceback.format_exc()
    _save(info)


def _load_inputs(info: dict) -> None:
    """The sample raster and the training polygons in the project, as a user who opened both files."""
    raster = QgsRasterLayer(str(RASTER), RASTER.stem, "gdal")
    polygons = QgsVectorLayer(str(LABELS), LABELS.stem, "ogr")
    if not raster.isValid() or not polygons.isValid():
        raise RuntimeError(f"could not open the sample: raster valid {raster.isValid()}, "
                           f"polygons valid {polygons.isValid()}")
    symbol = polygons.renderer().symbol()
    symbol.setColor(symbol.color().fromRgb(0, 0, 0, 0))  # outlines only: the map stays readable under them
    symbol.symbolLayer(0).setStrokeColor(symbol.color().fromRgb(0, 0, 0))
    QgsProject.instance().addMapLayer(raster)
    QgsProject.instance().addMapLayer(polygons)
    info["inputs"] = {"raster": raster.name(), "raster_id": raster.id(), "polygons": polygons.name(),
                      "polygons_id": polygons.id(),
                      "polygon_fields": [f.name() for f in polygons.fields()]}


def _dialog(info: dict) -> None:
    """``dialog.png``: the Train classifier dialog on the project's raster and polygons, FIELD left to its default."""
    import processing

    dialog = processing.createAlgorithmDialog("landprobe:trainclassifier", {
        "RASTER": info["inputs"]["raster_id"], "LABELS": info["inputs"]["polygons_id"]})
    if dialog is None:
        raise RuntimeError("processing.createAlgorithmDialog returned None for landprobe:trainclassifier")
    found: dict[str, Any] = {}
    info["dialog"] = found
    try:
        dialog.resize(1100, 850)
        dialog.show()
        dialog.raise_()
        _settle(1500)
        dialog.grab().save(str(OUT / "dialog.png"))
        panel = dialog.mainWidget()
        wrappers = getattr(panel, "wrappers", {})
        for name in ("RASTER", "LABELS", "FIELD"):
            try:
                value = wrappers[name].parameterValue()
                layer = QgsProject.instance().mapLayer(value) if isinstance(value, str) else None
                found[f"{name}_widget"] = layer.name() if layer is not None else value
            except Exception as exc:  # recorded; the other values are still read
                found[f"{name}_widget_error"] = f"{type(exc).__name__}: {exc}"
        try:
            parameters = panel.createProcessingParameters()
            found["FIELD"] = parameters.get("FIELD")
        except Exception as exc:  # e.g. InvalidParameterValue: no field chosen
            parameter = getattr(exc, "parameter", None)
            found["FIELD_error"] = f"{type(exc).__name__}: {parameter.name() if parameter else ''} {exc}".strip()
            if "FIELD_widget" in found:
                found["FIELD"] = found["FIELD_widget"]
    finally:
        dialog.close()
        dialog.deleteLater()


def _pipeline(info: dict) -> None:
    """Train on the sample, then classify it with the class map, probabilities and confidence loaded."""
    import processing

    start = time.perf_counter()
    trained = processing.run("landprobe:trainclassifier", {
        "RASTER": str(RASTER), "LABELS": str(LABELS), "FIELD": "class", "OUTPUT_MODEL": str(OUT / "model.lpmodel"),
        "OUTPUT_REPORT": str(OUT / "report.json")})
    info["train_s"] = time.perf_counter() - start
    info["model_path"] = trained["OUTPUT_MODEL"]
    info["overall_accuracy"] = trained["OVERALL_ACCURACY"]
    info["report_html"] = trained.get("OUTPUT_HTML")
    start = time.perf_counter()
    processing.runAndLoadResults("landprobe:classifyraster", {
        "RASTER": str(RASTER), "MODEL": trained["OUTPUT_MODEL"], "OUTPUT": str(OUT / "classes.tif"),
        "OUTPUT_PROBABILITY": str(OUT / "probabilities.tif"), "OUTPUT_CONFIDENCE": str(OUT / "confidence.tif")})
    info["classify_s"] = time.perf_counter() - start
    _settle(500)
    layers = {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}
    info["layers"] = {name: layer.renderer().type() if hasattr(layer, "renderer") and layer.renderer() else None
                      for name, layer in layers.items()}
    classes = next(layer for layer in layers.values() if layer.source().endswith("classes.tif"))
    info["class_labels"] = [c.label for c in classes.renderer().classes()]
    info["class_colors"] = [c.color.name() for c in classes.renderer().classes()]
    canvas = iface.mapCanvas()
    canvas.setDestinationCrs(classes.crs())
    canvas.setExtent(classes.extent())
    canvas.refreshAllLayers()


def _tree(node: Any, depth: int, rows: list[dict]) -> None:
    for child in node.children():
        row: dict[str, Any] = {"name": child.name(), "depth": depth, "visible": child.itemVisibilityChecked(),
                               "shown": child.isVisible(), "expanded": child.isExpanded()}
        if isinstance(child, QgsLayerTreeLayer):
            layer = child.layer()
            source = layer.source().split("|")[0] if layer is not None else ""
            row |= {"type": "layer", "source": os.path.basename(source),
                    "renderer": layer.renderer().type() if layer is not None and hasattr(layer, "renderer")
                    and layer.renderer() else None}
            if isinstance(layer, QgsRasterLayer) and layer.renderer() is not None:
                row["bands"] = layer.renderer().usesBands()
        else:
            row |= {"type": "group" if isinstance(child, QgsLayerTreeGroup) else type(child).__name__,
                    "source": None}
        rows.append(row)
        if isinstance(child, QgsLayerTreeGroup):
            _tree(child, depth + 1, rows)


def _layers(info: dict) -> None:
    """``layers.png`` and ``layer_tree``: the Layers panel as the plugin left it, top to bottom."""
    rows: list[dict] = []
    _tree(QgsProject.instance().layerTreeRoot(), 0, rows)
    info["layer_tree"] = rows
    dock = iface.mainWindow().findChild(QDockWidget, "Layers")
    if dock is None:
        raise RuntimeError("no dock widget named 'Layers' in the main window")
    dock.show()
    dock.raise_()
    window = iface.mainWindow()
    window.resizeDocks([dock], [440], Qt.Horizontal)  # wide enough for the layer names and legends
    browser = window.findChild(QDockWidget, "Browser")
    if browser is not None and browser.isVisible() and window.dockWidgetArea(browser) == window.dockWidgetArea(dock):
        window.resizeDocks([browser, dock], [150, 800], Qt.Vertical)
    _settle(800)
    dock.grab().save(str(OUT / "layers.png"))
    info["layers_panel_size"] = [dock.width(), dock.height()]


class _Recorder:
    """Fallback for the fine-tune log: the lines a Processing feedback receives, in order."""

    def __init__(self) -> None:
        from qgis.core import QgsProcessingFeedback

        lines: list[str] = []
        self.lines = lines

        class Feedback(QgsProcessingFeedback):
            def setProgressText(self, text: str) -> None:
                lines.append(text)
                super().setProgressText(text)

            def reportError(self, error: str, fatalError: bool = False) -> None:
                lines.append(error)
                super().reportError(error, fatalError)

            def pushInfo(self, info: str) -> None:
                lines.append(info)
                super().pushInfo(info)

            def pushWarning(self, warning: str) -> None:
                lines.append(warning)
                super().pushWarning(warning)

            def pushCommandInfo(self, info: str) -> None:
                lines.append(info)
                super().pushCommandInfo(info)

            def pushConsoleInfo(self, info: str) -> None:
                lines.append(info)
                super().pushConsoleInfo(info)

        self.feedback = Feedback()


def _dismiss_modal(info: dict, keep: Any) -> None:
    """Close a modal window (e.g. a message box) other than ``keep`` that would block the session, keeping its text."""
    modal = QApplication.activeModalWidget()
    if modal is not None and modal is not keep:
        text = modal.text() if hasattr(modal, "text") else modal.windowTitle()
        info.setdefault("modal_messages", []).append(text)
        modal.close()


def _finetune_in_dialog(info: dict) -> None:
    """Run the fine-tune from its algorithm dialog, as a user clicking Run, and grab the Log tab."""
    import processing

    dialog = processing.createAlgorithmDialog("landprobe:finetune", FINETUNE)
    if dialog is None:
        raise RuntimeError("processing.createAlgorithmDialog returned None for landprobe:finetune")
    finished: dict[str, Any] = {}
    loop = QEventLoop()

    def done(ok: bool, results: dict) -> None:
        finished.update(ok=ok, results=results)
        loop.quit()

    dialog.algorithmFinished.connect(done)
    watchdog = QTimer()  # a message box (CRS warning, invalid value) would block the run: record it and close it
    watchdog.timeout.connect(lambda: _dismiss_modal(info, dialog))
    watchdog.start(2000)
    dialog.resize(1200, 980)
    dialog.show()
    _settle(1000)
    start = time.perf_counter()
    dialog.runAlgorithm()
    if not finished:  # the run goes on in a background task; wait for it
        QTimer.singleShot(FINETUNE_TIMEOUT_S * 1000, loop.quit)
        loop.exec_()
    info["finetune_s"] = time.perf_counter() - start
    watchdog.stop()
    _settle(1000)  # the last log lines travel from the task's thread as queued signals
    if not finished:
        info["errors"]["finetune_run"] = f"the fine-tune did not finish within {FINETUNE_TIMEOUT_S} s"
    else:
        info["finetune"] = {"ok": finished["ok"], "epochs_run": (finished["results"] or {}).get("EPOCHS_RUN"),
                            "device": (finished["results"] or {}).get("DEVICE_USED")}
    dialog.show()  # Processing closes the dialog after a success unless "keep dialog open" is set
    dialog.showLog()
    _settle(800)
    log = dialog.findChild(QTextEdit, "txtLog")
    if log is None:
        raise RuntimeError(f"the dialog has no txtLog; its text boxes: "
                           f"{[w.objectName() for w in dialog.findChildren(QTextEdit)]}")
    (OUT / "finetune_log.txt").write_text(log.toPlainText() + "\n", encoding="utf-8")
    # The view starts at the run's parameters, so that the engine's first lines (where libraries print their
    # banners and warnings) and the first epochs are in the picture; the whole log is in finetune_log.txt.
    start_of_run = log.document().find("Input parameters:")
    if not start_of_run.isNull():
        top = log.document().documentLayout().blockBoundingRect(start_of_run.block()).top()
        log.verticalScrollBar().setValue(int(top))
    _settle(300)
    dialog.grab().save(str(OUT / "finetune_log.png"))
    info["finetune_log_source"] = "algorithm dialog"
    if not finished:
        dialog.cancelButton().click()
    dialog.close()


def _finetune_recorded(info: dict) -> None:
    """The fallback: run the fine-tune with a recording feedback and show its lines in a text box."""
    import processing

    recorder = _Recorder()
    start = time.perf_counter()
    try:
        results = processing.run("landprobe:finetune", FINETUNE, feedback=recorder.feedback)
        info["finetune"] = {"ok": True, "epochs_run": results.get("EPOCHS_RUN"), "device": results.get("DEVICE_USED")}
    finally:
        info["finetune_s"] = time.perf_counter() - start
        text = "\n".join(recorder.lines)
        (OUT / "finetune_log.txt").write_text(text + "\n", encoding="utf-8")
        box = QPlainTextEdit()
        box.setReadOnly(True)
        box.setFont(QFont("Monospace", 9))
        box.setPlainText(text)
        box.resize(900, 600)
        box.show()
        box.moveCursor(box.textCursor().End)
        _settle(500)
        box.grab().save(str(OUT / "finetune_log.png"))
        box.close()
        info["finetune_log_source"] = "recording feedback"


def _finetune(info: dict) -> None:
    """``finetune_log.png`` and ``finetune_log.txt``: from the real dialog, or else from a recording feedback."""
    try:
        _finetune_in_dialog(info)
    except Exception:
        info["errors"]["finetune_dialog"] = traceback.format_exc()
        if "finetune_s" in info:  # it ran in the dialog (and failed after): do not train twice
            raise
        _finetune_recorded(info)


class _ReportBrowser(QTextBrowser):
    """A QTextBrowser that shows the report's inline ``data:`` PNGs, scaled to the page's width."""

    def loadResource(self, kind: int, url: QUrl) -> Any:
        if kind == QTextDocument.ImageResource and url.scheme() == "data":
            encoded = url.toString().split(",", 1)[-1]
            image = QImage.fromData(base64.b64decode(encoded))
            width = self.viewport().width() - 40
            return image.scaledToWidth(width) if image.width() > width > 0 else image
        return super().loadResource(kind, url)


def _report(info: dict) -> None:
    """``report.png``: the training's HTML report in a QTextBrowser, 1000 x 1400."""
    html = info.get("report_html") or str(OUT / "report.html")
    if not Path(html).is_file():
        raise RuntimeError(f"no HTML report at {html}")
    browser = _ReportBrowser()
    browser.resize(1000, 1400)
    browser.show()
    browser.document().setBaseUrl(QUrl.fromLocalFile(html))
    browser.setHtml(Path(html).read_text(encoding="utf-8"))
    _settle(800)
    browser.grab().save(str(OUT / "report.png"))
    info["report_chars"] = len(browser.toPlainText())
    # The whole page too (the accuracy and confusion matrix sit below the first screen), at most 8000 px high.
    browser.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    browser.resize(1000, min(8000, int(browser.document().size().height()) + 20))
    _settle(500)
    browser.grab().save(str(OUT / "report_full.png"))
    browser.close()


def _toolbox(info: dict) -> None:
    dock = iface.mainWindow().findChild(QDockWidget, "ProcessingToolbox")
    if dock is not None:
        dock.show()
        dock.raise_()
        search = getattr(dock, "searchBox", None)
        if search is not None:
            search.setText("Landprobe")
    info["toolbox_shown"] = dock is not None and dock.isVisible()


def _layer_of(path: str) -> QgsMapLayer:
    """The project's layer read from the file ``path`` (a Processing output loaded on completion)."""
    wanted = os.path.realpath(path)
    for layer in QgsProject.instance().mapLayers().values():
        if os.path.realpath(layer.source().split("|")[0]) == wanted:
            return layer
    raise RuntimeError(f"no layer of {path} in the project; its layers: "
                       f"{[layer.source() for layer in QgsProject.instance().mapLayers().values()]}")


def _renderer(layer: QgsMapLayer) -> str | None:
    return layer.renderer().type() if hasattr(layer, "renderer") and layer.renderer() is not None else None


def _legend(layer: QgsMapLayer) -> dict[str, str]:
    """A paletted layer's colours by label (empty for other renderers)."""
    renderer = layer.renderer()
    if renderer is None or renderer.type() != "paletted":
        return {}
    return {entry.label: entry.color.name() for entry in renderer.classes()}


def _show_only(layers: list[QgsMapLayer]) -> None:
    """Check ``layers`` (and the groups holding them) in the layer tree, uncheck every other layer."""
    root = QgsProject.instance().layerTreeRoot()
    ids = {layer.id() for layer in layers}
    for node in root.findLayers():
        node.setItemVisibilityChecked(node.layerId() in ids)
    for layer in layers:
        node = root.findLayer(layer.id())
        if node is None:
            raise RuntimeError(f"layer {layer.name()} is not in the layer tree")
        parent = node.parent()
        while parent is not None:
            parent.setItemVisibilityChecked(True)
            parent = parent.parent()


def _save_canvas(layer: QgsMapLayer, name: str, shown: list[QgsMapLayer] | None = None) -> dict:
    """Show ``shown`` (default: ``layer``) alone, zoomed to ``layer``; save the canvas cropped to it as ``name``."""
    _show_only(shown or [layer])
    canvas = iface.mapCanvas()
    canvas.setDestinationCrs(layer.crs())
    canvas.setExtent(layer.extent())
    _settle(300)  # the layer tree's bridge hands the checked layers to the canvas from the event loop
    loop = QEventLoop()
    timeout = QTimer()
    timeout.setSingleShot(True)
    timeout.timeout.connect(loop.quit)
    canvas.mapCanvasRefreshed.connect(loop.quit)
    timeout.start(20000)
    canvas.refresh()
    loop.exec_()
    drawn = timeout.isActive()  # False: the 20 s ran out before the canvas said it had drawn
    timeout.stop()
    canvas.mapCanvasRefreshed.disconnect(loop.quit)
    canvas.waitWhileRendering()
    _settle(200)
    raw = OUT / f"{Path(name).stem}_canvas.png"
    canvas.saveAsImage(str(raw))
    image = QImage(str(raw))
    if image.isNull():
        raise RuntimeError(f"the canvas was not saved to {raw}")
    # The layer's extent on the canvas (the canvas is wider than the square scene: white on both sides).
    settings = canvas.mapSettings()
    extent = settings.layerExtentToOutputExtent(layer, layer.extent())
    to_pixel = settings.mapToPixel()
    scale = image.width() / max(1, settings.outputSize().width())  # device pixels per canvas pixel
    corner_a = to_pixel.transform(extent.xMinimum(), extent.yMaximum())
    corner_b = to_pixel.transform(extent.xMaximum(), extent.yMinimum())
    left, top = round(corner_a.x() * scale), round(corner_a.y() * scale)
    right, bottom = round(corner_b.x() * scale), round(corner_b.y() * scale)
    crop = QRect(left, top, right - left, bottom - top).intersected(image.rect())
    picture = image.copy(crop) if crop.width() > 50 and crop.height() > 50 else image
    if picture.width() > ANALYSIS_WIDTH:
        picture = picture.scaledToWidth(ANALYSIS_WIDTH, Qt.SmoothTransformation)
    if not picture.save(str(OUT / name), "PNG", 0):  # 0: the smallest file
        raise RuntimeError(f"could not write {OUT / name}")
    return {"drawn": drawn, "canvas": [image.width(), image.height()],
            "crop": [crop.x(), crop.y(), crop.width(), crop.height()], "size": [picture.width(), picture.height()],
            "layers": [canvas_layer.name() for canvas_layer in canvas.layers()]}


def _cluster(info: dict) -> None:
    """``cluster.png``: Cluster raster on the 1999 scene, the number of clusters chosen (at most 6)."""
    import processing

    start = time.perf_counter()
    results = processing.runAndLoadResults("landprobe:cluster", {
        "RASTER": str(RASTER), "K": 0, "K_MAX": 6, "SEED": 0, "OUTPUT": str(OUT / "clusters.tif")})
    info["analyses_s"]["cluster"] = time.perf_counter() - start
    _settle(300)
    layer = _layer_of(results["OUTPUT"])
    info["analyses"]["cluster"] = _renderer(layer)
    info["analyses_details"]["cluster"] = {"clusters": results.get("CLUSTERS"), "legend": _legend(layer),
                                           "picture": _save_canvas(layer, "cluster.png")}


def _similarity(info: dict) -> None:
    """``similarity.png``: Find similar pixels on the 1999 scene, the forest polygons as examples, outlined."""
    import processing

    polygons = QgsVectorLayer(str(LABELS), LABELS.stem, "ogr")
    forest = polygons.materialize(QgsFeatureRequest().setFilterExpression("\"class\" = 'forest'"))
    forest.setName("forest examples")
    if not forest.isValid() or forest.featureCount() == 0:
        raise RuntimeError(f"no forest polygons in {LABELS}")
    symbol = forest.renderer().symbol()
    symbol.setColor(symbol.color().fromRgb(0, 0, 0, 0))  # outlines only
    symbol.symbolLayer(0).setStrokeColor(symbol.color().fromRgb(227, 26, 28))
    symbol.symbolLayer(0).setStrokeWidth(0.6)
    start = time.perf_counter()
    results = processing.runAndLoadResults("landprobe:similarity", {
        "RASTER": str(RASTER), "EXAMPLES": forest, "OUTPUT": str(OUT / "similarity.tif")})
    info["analyses_s"]["similarity"] = time.perf_counter() - start
    _settle(300)
    layer = _layer_of(results["OUTPUT"])
    QgsProject.instance().addMapLayer(forest)  # on top of the similarity
    info["analyses"]["similarity"] = _renderer(layer)
    info["analyses_details"]["similarity"] = {
        "examples": forest.featureCount(), "matched_area_m2": results.get("MATCHED_AREA"),
        "picture": _save_canvas(layer, "similarity.png", [forest, layer])}


def _model(info: dict, key: str) -> str:
    """The model the pipeline trained, or (if it failed before) one trained here, noted under ``key``."""
    import processing

    model = info.get("model_path")
    if not model or not Path(model).is_file():
        model = processing.run("landprobe:trainclassifier", {
            "RASTER": str(RASTER), "LABELS": str(LABELS), "FIELD": "class", "METHOD": 0,
            "OUTPUT_MODEL": str(OUT / f"{key}_model.lpmodel")})["OUTPUT_MODEL"]
        info["analyses_details"][f"{key}_model_trained"] = True
    return str(model)


def _suggestions(info: dict) -> None:
    """``suggestions.png``: Suggest where to label next (30 points) over the class map and the training polygons."""
    import processing

    model = _model(info, "suggestions")
    mapped = processing.runAndLoadResults("landprobe:classifyraster", {
        "RASTER": str(RASTER), "MODEL": model, "OUTPUT": str(OUT / "suggestions_map.tif")})
    start = time.perf_counter()
    results = processing.runAndLoadResults("landprobe:suggestlabels", {
        "RASTER": str(RASTER), "MODEL": model, "LABELS": str(LABELS), "N_POINTS": 30, "SEED": 0,
        "OUTPUT": str(OUT / "suggestions.gpkg")})
    info["analyses_s"]["suggestions"] = time.perf_counter() - start
    _settle(300)
    layer = _layer_of(mapped["OUTPUT"])
    points = _layer_of(results["OUTPUT"])
    polygons = QgsVectorLayer(str(LABELS), "training polygons", "ogr")
    symbol = polygons.renderer().symbol()
    symbol.setColor(symbol.color().fromRgb(0, 0, 0, 0))  # outlines only
    symbol.symbolLayer(0).setStrokeColor(symbol.color().fromRgb(0, 0, 0))
    symbol.symbolLayer(0).setStrokeWidth(0.4)
    QgsProject.instance().addMapLayer(polygons)
    # the points as users see them best over a class map: white, outlined in black
    points.setRenderer(QgsSingleSymbolRenderer(QgsMarkerSymbol.createSimple(
        {"name": "circle", "color": "255,255,255,255", "outline_color": "0,0,0,255", "size": "3.2",
         "outline_width": "0.5"})))
    points.triggerRepaint()
    info["analyses"]["suggestions"] = _renderer(layer)
    info["analyses_details"]["suggestions"] = {
        "points": points.featureCount(), "fields": [f.name() for f in points.fields()],
        "legend": _legend(layer), "picture": _save_canvas(layer, "suggestions.png", [points, polygons, layer])}


def _change(info: dict) -> None:
    """``change.png`` and ``transitions.png``: Map change from 1999 to 2002 with the model trained above."""
    import processing

    model = _model(info, "change")
    start = time.perf_counter()
    results = processing.runAndLoadResults("landprobe:change", {
        "BEFORE": str(RASTER), "AFTER": str(AFTER), "MODEL": str(model), "OUTPUT": str(OUT / "change.tif"),
        "OUTPUT_TRANSITIONS": str(OUT / "transitions.tif"), "OUTPUT_REPORT": str(OUT / "change.json")})
    info["analyses_s"]["change"] = time.perf_counter() - start
    _settle(300)
    change = _layer_of(results["OUTPUT"])
    transitions = _layer_of(results["OUTPUT_TRANSITIONS"])
    info["analyses"]["change"] = _renderer(change)
    info["analyses"]["transitions"] = _renderer(transitions)
    info["analyses_details"]["change"] = {
        "changed_share": results.get("CHANGED_SHARE"), "threshold": results.get("USED_THRESHOLD"),
        "picture": _save_canvas(change, "change.png")}
    found: dict[str, Any] = {"legend": _legend(transitions)}
    info["analyses_details"]["transitions"] = found
    try:  # the largest transitions, to caption the picture
        report = json.loads(Path(results["OUTPUT_REPORT"]).read_text())["change"]["transitions"]
        names, pixels = report["classes"], report["pixels"]
        pairs = sorted(((pixels[i][j], f"{a} -> {b}") for i, a in enumerate(names) for j, b in enumerate(names)),
                       reverse=True)
        found["largest"] = {pair: count for count, pair in pairs[:6]}
        found["changed_class_share"] = report["changed_class_pixels"] / max(1, report["classified_pixels"])
    except Exception as exc:  # recorded; the picture is still taken
        found["report_error"] = f"{type(exc).__name__}: {exc}"
    found["picture"] = _save_canvas(transitions, "transitions.png")


def _analyses(info: dict) -> None:
    """The analyses, each in its own capture: one failing does not stop the others."""
    info.update(analyses={}, analyses_details={}, analyses_s={})
    start = time.perf_counter()
    _capture(info, "analysis_cluster", _cluster)
    _capture(info, "analysis_similarity", _similarity)
    _capture(info, "analysis_change", _change)
    _capture(info, "analysis_suggestions", _suggestions)
    info["analyses_s"]["all"] = time.perf_counter() - start  # the runs, the renders and the pictures


def _shoot(info: dict) -> None:
    try:
        iface.mainWindow().raise_()
        canvas = iface.mapCanvas()
        canvas.waitWhileRendering()
        canvas.saveAsImage(str(OUT / "canvas.png"))
        iface.mainWindow().grab().save(str(OUT / "window.png"))
    except Exception:
        info["errors"]["canvas_window"] = traceback.format_exc()
    _save(info)
    _capture(info, "analyses", _analyses)  # last: they hide the pipeline's layers
    QgsApplication.exit(0)


def main() -> None:
    """Load the sample, shoot the dialog, run the pipeline, shoot the panels, then the canvas once it has drawn."""
    info: dict = {"providers": [p.id() for p in QgsApplication.processingRegistry().providers()], "errors": {}}
    try:
        iface.mainWindow().showMaximized()
        QApplication.processEvents()
        _load_inputs(info)
    except Exception:
        info["error"] = traceback.format_exc()
    _capture(info, "dialog", _dialog)
    try:
        _pipeline(info)
    except Exception:
        info["error"] = traceback.format_exc()
    _save(info)
    _capture(info, "layers", _layers)
    _capture(info, "finetune_log", _finetune)
    _capture(info, "report", _report)
    _capture(info, "toolbox", _toolbox)
    QTimer.singleShot(2000, lambda: _shoot(info))


QTimer.singleShot(1000, main)
