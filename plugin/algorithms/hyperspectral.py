"""``landprobe:importmat`` and ``landprobe:labelpolygons``: benchmark cubes and ground truths into QGIS layers."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)

from .base import LandprobeAlgorithm


class ImportMatAlgorithm(LandprobeAlgorithm):
    """A MATLAB ``.mat`` hyperspectral cube or ground truth as a GeoTIFF."""

    ALGORITHM_ID = "importmat"
    DISPLAY_NAME = "Import MATLAB hyperspectral file"
    TAGS = ("hyperspectral", "matlab", "mat", "import", "convert", "indian pines", "pavia", "salinas", "benchmark",
            "ground truth", "prepare data")
    GROUP = "Prepare data"
    GROUP_ID = "preparedata"

    MAT, KEY, OUTPUT, BANDS = "MAT", "KEY", "OUTPUT", "BANDS"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Converts a MATLAB <i>.mat</i> file of the hyperspectral benchmarks (Indian Pines, Pavia University, "
            "Salinas...) into a GeoTIFF that the other algorithms read. A cube (rows x columns x bands) becomes a "
            "raster with one band per spectral band; a ground truth (rows x columns of class numbers, 0 = "
            "unlabelled) becomes a class raster with nodata 0. The files have no georeferencing: the raster gets "
            "one unit per pixel, north up.<br><b>Variable</b>: the name of the array to read when the file holds "
            "several (e.g. <i>indian_pines_corrected</i>)."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.addParameter(QgsProcessingParameterFile(self.MAT, self.tr("MATLAB file"),
                                                     fileFilter=self.tr("MATLAB (*.mat)")))
        self.addParameter(QgsProcessingParameterString(self.KEY, self.tr("Variable"), optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Raster")))
        self.addOutput(QgsProcessingOutputNumber(self.BANDS, self.tr("Bands")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Run the ``import_mat`` job in the engine."""
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        outputs = self.run_engine("import_mat", {
            "mat": self.parameterAsFile(parameters, self.MAT, context), "output": output,
            "key": self.parameterAsString(parameters, self.KEY, context) or None}, feedback)
        return {self.OUTPUT: outputs.get("output", output), self.BANDS: outputs.get("bands")}


class LabelPolygonsAlgorithm(LandprobeAlgorithm):
    """A class raster (a ground truth) as polygons that training reads."""

    ALGORITHM_ID = "labelpolygons"
    DISPLAY_NAME = "Class raster to training polygons"
    TAGS = ("ground truth", "polygonize", "vectorize", "training data", "labels", "reference", "prepare data",
            "hyperspectral", "benchmark")
    GROUP = "Prepare data"
    GROUP_ID = "preparedata"

    RASTER, UNLABELLED, OUTPUT, POLYGONS = "RASTER", "UNLABELLED", "OUTPUT", "POLYGONS"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Turns a class raster (a ground-truth map, or labels painted as a raster) into polygons: one polygon per "
            "connected patch of a class, with the fields <i>class</i> (the code as text), <i>code</i> and "
            "<i>patch</i>. Use them as training polygons with the field <i>class</i>; the polygon split then "
            "holds out whole patches.<br><b>Unlabelled code</b>: the value of pixels without a class (default 0; "
            "the raster's nodata is unlabelled too)."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.addParameter(QgsProcessingParameterRasterLayer(self.RASTER, self.tr("Class raster")))
        self.addParameter(QgsProcessingParameterNumber(self.UNLABELLED, self.tr("Unlabelled code"),
                                                       QgsProcessingParameterNumber.Type.Integer, defaultValue=0))
        self.addParameter(QgsProcessingParameterVectorDestination(self.OUTPUT, self.tr("Training polygons")))
        self.addOutput(QgsProcessingOutputNumber(self.POLYGONS, self.tr("Polygons")))

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Run the ``label_polygons`` job in the engine."""
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        outputs = self.run_engine("label_polygons", {
            "raster": self.raster_path(parameters, self.RASTER, context), "output": output,
            "unlabelled": self.parameterAsInt(parameters, self.UNLABELLED, context)}, feedback)
        return {self.OUTPUT: outputs.get("output", output), self.POLYGONS: outputs.get("n_polygons")}
