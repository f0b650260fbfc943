"""The base class of every Landprobe algorithm: parameters in, one engine job out."""

from __future__ import annotations

import html
import os
from typing import Any

from qgis.core import (
    QgsFeatureRequest,
    QgsFeatureSink,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsVectorFileWriter,
)
from qgis.PyQt.QtCore import QCoreApplication, QUrl
from qgis.PyQt.QtGui import QIcon

from ..engine_process import EngineCancelledError, EngineError, find_engine_python, run_engine_job
from ..icons import provider_icon
from ..settings import engine_preferences, engine_python_setting

HELP_URL = "https://github.com/landprobe/landprobe#readme"


class LandprobeAlgorithm(QgsProcessingAlgorithm):
    """Shared behaviour: group, icon, help, creating instances and running the engine.

    Subclasses set :attr:`ALGORITHM_ID`, :attr:`DISPLAY_NAME`, :attr:`GROUP` and :attr:`GROUP_ID`, and implement
    ``initAlgorithm``, ``shortHelpString`` and ``processAlgorithm``.
    """

    ALGORITHM_ID = ""
    DISPLAY_NAME = ""
    GROUP = "Classify"
    GROUP_ID = "classify"
    #: Words the toolbox search finds the algorithm by (its methods and tasks), besides its name.
    TAGS: tuple[str, ...] = ()

    def tr(self, text: str) -> str:
        """Translate ``text`` in the Processing context."""
        return QCoreApplication.translate("Processing", text)

    def name(self) -> str:
        """The algorithm id inside the provider (``landprobe:<name>``)."""
        return self.ALGORITHM_ID

    def displayName(self) -> str:
        """The name shown in the toolbox."""
        return self.tr(self.DISPLAY_NAME)

    def group(self) -> str:
        """The toolbox group."""
        return self.tr(self.GROUP)

    def groupId(self) -> str:
        """The toolbox group id."""
        return self.GROUP_ID

    def tags(self) -> list[str]:
        """Search words for the toolbox: the algorithm's methods and tasks, and Landprobe's own."""
        return [self.tr(tag) for tag in (*self.TAGS, "landprobe", "machine learning", "remote sensing")]

    def helpUrl(self) -> str:
        """Where the full documentation lives."""
        return HELP_URL

    def icon(self) -> QIcon:
        """The Landprobe icon."""
        return provider_icon()

    def createInstance(self) -> LandprobeAlgorithm:
        """A fresh instance of the same class (Processing runs each execution on its own copy)."""
        return type(self)()

    def run_engine(self, operation: str, params: dict[str, Any], feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Run one engine job and return its outputs.

        Args:
            operation: the engine operation name.
            params: the job's parameters (plain JSON).
            feedback: the Processing feedback; progress, logs and cancel go through it.

        Returns:
            The engine's outputs.

        Raises:
            QgsProcessingException: when the engine is missing, fails, or the job was cancelled.

        """
        try:
            python = find_engine_python(engine_python_setting())
            return run_engine_job(operation, params, feedback, python=python, preferences=engine_preferences())
        except EngineCancelledError as exc:
            raise QgsProcessingException(self.tr("Cancelled: {}").format(exc)) from exc
        except EngineError as exc:
            raise QgsProcessingException(str(exc)) from exc

    LABELS = "LABELS"
    FIELD = "FIELD"

    def add_class_field(self, parent: str = "LABELS", what: str = "Class field") -> None:
        """``FIELD`` of the layer parameter ``parent``: optional, empty meaning the field named like a class field.

        The default is the guess for the layer the dialog is likely to offer (QGIS's own fallback is the first
        field, an identifier in most layers).
        """
        from qgis.core import QgsProcessingParameterField

        from .class_field import guess_for_project

        self.addParameter(QgsProcessingParameterField(
            self.FIELD, self.tr("{} (empty: the one named like a class)").format(self.tr(what)),
            defaultValue=guess_for_project(), parentLayerParameterName=parent,
            type=QgsProcessingParameterField.DataType.Any, optional=True))

    def class_field(self, parameters: dict[str, Any], context: QgsProcessingContext,
                    feedback: QgsProcessingFeedback, parent: str = "LABELS") -> str:
        """The ``FIELD`` the user set, else the field of ``parent`` named like a class field (logged).

        Raises:
            QgsProcessingException: when the field is empty and no field looks like a class field.

        """
        from .class_field import guess_for_source

        field = self.parameterAsString(parameters, self.FIELD, context)
        if field:
            return field
        source = self.parameterAsSource(parameters, parent, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, parent))
        guess = guess_for_source(source)
        if guess is None:
            names = ", ".join(source.fields().names()) or "none"
            raise QgsProcessingException(self.tr(
                "Set Class field: no field of the labels looks like a class field (a text field, or "
                "whole numbers with a few values, named like class, label or landcover). Its fields: {}."
            ).format(names))
        feedback.pushInfo(self.tr('Class field: "{}" (Class field was left empty; this field is named like a '
                                  "class field. Set Class field to use another.)").format(guess))
        return guess

    def log_accuracy(self, feedback: QgsProcessingFeedback, accuracy: float | None, kappa: float | None,
                     macro_f1: float | None, what: str = "Held-out overall accuracy") -> None:
        """The accuracy figures in one line, as the report shows them (accuracy in %, kappa and F1 from 0 to 1)."""
        if accuracy is None:
            return
        extra = [f"kappa {kappa:.3f}" if kappa is not None else "", f"macro F1 {macro_f1:.3f}"
                 if macro_f1 is not None else ""]
        feedback.pushInfo(self.tr("{}: {:.1f} %{}").format(
            self.tr(what), 100 * accuracy, "".join(f", {e}" for e in extra if e)))

    def label_files(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> list[str] | None:
        """The files of the layers of the multiple-layer parameter ``name`` (e.g. MORE_LABELS); ``None`` for none.

        Saved layers only (the engine reads files), as ``file|layername=name`` for a layer inside a GeoPackage.

        Raises:
            QgsProcessingException: for a layer that is not stored in a file.

        """
        paths = []
        for layer in self.parameterAsLayerList(parameters, name, context):
            if layer.providerType() != "ogr":
                raise QgsProcessingException(self.tr("Layer {} is not stored in a file: save it (Export > Save "
                                                     "Features As...) and give the saved layer.").format(
                                                         layer.name()))
            source, _, options = layer.source().partition("|")
            layer_name = options.partition("layername=")[2].partition("|")[0]
            paths.append(f"{source}|layername={layer_name}" if layer_name else source)
        return paths or None

    def link_report(self, feedback: QgsProcessingFeedback, path: str | None) -> None:
        """Put the HTML report's path in the log as a link (plain text before QGIS 3.36)."""
        if not path:
            return
        url = QUrl.fromLocalFile(path).toString()
        if hasattr(feedback, "pushFormattedMessage"):
            feedback.pushFormattedMessage(
                self.tr("Report: {}").format(f'<a href="{url}">{html.escape(path)}</a>'),
                self.tr("Report: {}").format(path))
        else:
            feedback.pushInfo(self.tr("Report: {}").format(url))

    RASTER = "RASTER"
    MORE_BANDS = "MORE_BANDS"

    def add_raster_parameters(self) -> None:
        """``RASTER`` and the advanced ``MORE_BANDS``: rasters whose bands are stacked after the first one's."""
        self.addParameter(QgsProcessingParameterRasterLayer(self.RASTER, self.tr("Raster")))
        more = QgsProcessingParameterMultipleLayers(
            self.MORE_BANDS, self.tr("More bands (rasters stacked after the first, in order)"),
            QgsProcessing.SourceType.TypeRaster, optional=True,
        )
        more.setFlags(more.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(more)

    def raster_stack(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | list[str]:
        """The file of ``RASTER``, or the files of ``RASTER`` and ``MORE_BANDS`` whose bands are stacked in order."""
        first = self.raster_path(parameters, self.RASTER, context)
        more = [self.layer_file(layer) for layer in self.parameterAsLayerList(parameters, self.MORE_BANDS, context)]
        return [first, *more] if more else first

    def raster_path(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> str:
        """The GeoTIFF (or other GDAL file) behind a raster layer parameter.

        Raises:
            QgsProcessingException: when the layer is not a GDAL raster stored in a file.

        """
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, name))
        return self.layer_file(layer)

    def layer_file(self, layer: QgsRasterLayer) -> str:
        """The file behind a raster layer; an error that says what to do when it is not a GDAL file."""
        if not isinstance(layer, QgsRasterLayer):
            raise QgsProcessingException(self.tr('The layer "{}" is not a raster.').format(layer.name()))
        path = ""
        if layer.providerType() == "gdal":
            source = layer.source()
            # decodeUri drops GDAL open options ("file.tif|option:..."); splitting on "|" is the fallback.
            path = QgsProviderRegistry.instance().decodeUri("gdal", source).get("path") or source.split("|")[0]
        if not path or not os.path.isfile(path):
            raise QgsProcessingException(
                self.tr(
                    'The raster "{}" is not a file that the engine can read ({} layer). Save it as a GeoTIFF '
                    "first (right-click the layer > Export > Save As…) and use the saved file."
                ).format(layer.name(), layer.providerType())
            )
        return path

    def class_colors(
        self, parameters: dict[str, Any], name: str, field: str, context: QgsProcessingContext
    ) -> dict[str, str] | None:
        """Colours of the classes when the label layer is styled by categories of ``field``, else ``None``."""
        layer = self.parameterAsVectorLayer(parameters, name, context)
        renderer = layer.renderer() if layer is not None else None
        if renderer is None or renderer.type() != "categorizedSymbol" or renderer.classAttribute() != field:
            return None
        colors = {}
        for category in renderer.categories():
            value = category.value()
            if value is None or category.symbol() is None:
                continue
            key = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip()
            colors[key] = category.symbol().color().name()
        return colors or None

    def vector_path(
        self,
        parameters: dict[str, Any],
        name: str,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> str:
        """A GeoPackage or shapefile holding the features of a vector parameter, honouring selections.

        Memory layers, selections, filtered layers and other formats are written to a temporary GeoPackage. A
        layer inside a multi-layer file is copied on its own, since the engine reads the first layer of a file.

        Raises:
            QgsProcessingException: when the layer cannot be read or written.

        """
        path, layer_name = self.parameterAsCompatibleSourceLayerPathAndLayerName(
            parameters, name, context, ["gpkg", "shp"], "gpkg", feedback
        )
        if not path:
            raise QgsProcessingException(self.invalidSourceError(parameters, name))
        path = path.split("|")[0]
        if layer_name and path.lower().endswith(".gpkg") and not _single_layer(path):
            path = self._copy_source_to_gpkg(parameters, name, context)
        return path

    def _copy_source_to_gpkg(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> str:
        """Write the features of a vector parameter to a temporary single-layer GeoPackage."""
        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, name))
        path = QgsProcessingUtils.generateTempFilename(f"{name.lower()}.gpkg")
        options = QgsVectorFileWriter.SaveVectorOptions()
        options.driverName = "GPKG"
        options.fileEncoding = "UTF-8"
        writer = QgsVectorFileWriter.create(
            path, source.fields(), source.wkbType(), source.sourceCrs(), context.transformContext(), options
        )
        if writer.hasError() != QgsVectorFileWriter.WriterError.NoError:
            raise QgsProcessingException(
                self.tr("Could not write a temporary copy of the labels: {}").format(writer.errorMessage())
            )
        for feature in source.getFeatures(QgsFeatureRequest()):
            writer.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        del writer
        return path


def _single_layer(path: str) -> bool:
    """Whether the OGR dataset at ``path`` has exactly one layer."""
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(path, "probe", "ogr")
    return layer.isValid() and len(layer.dataProvider().subLayers()) <= 1
