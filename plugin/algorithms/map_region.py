"""``landprobe:mapregion``: apply a model to a whole region (a mosaic, a folder or list of tiles) on Dask."""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .base import LandprobeAlgorithm
from .model_paths import model_parameter
from .styles import ResultLayers, style_on_load

#: Block sizes offered, in the order of the BLOCK_SIZE options (append only: batch files store indices).
BLOCK_SIZES = [512, 1024, 2048, 4096]


class MapRegionAlgorithm(LandprobeAlgorithm):
    """Map a region too large for one raster or one process, block by block, resumable."""

    ALGORITHM_ID = "mapregion"
    DISPLAY_NAME = "Map region"
    TAGS = ("region", "mosaic", "tiles", "vrt", "dask", "cluster", "distributed", "large", "country", "resume",
            "classify", "map", "land cover")

    RASTER = "RASTER"
    TILES = "TILES"
    TILES_FOLDER = "TILES_FOLDER"
    STAC = "STAC"
    ASSETS = "ASSETS"
    MODEL = "MODEL"
    BLOCK_SIZE = "BLOCK_SIZE"
    PROBABILITY = "PROBABILITY"
    CONFIDENCE = "CONFIDENCE"
    UNCERTAINTY = "UNCERTAINTY"
    OUTPUT_UNCERTAINTY = "OUTPUT_UNCERTAINTY"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    OUTPUT_COG = "OUTPUT_COG"
    OUTPUT = "OUTPUT"
    OUTPUT_PROBABILITY = "OUTPUT_PROBABILITY"
    OUTPUT_CONFIDENCE = "OUTPUT_CONFIDENCE"
    BLOCKS_SKIPPED = "BLOCKS_SKIPPED"

    def shortHelpString(self) -> str:
        """Help shown next to the parameters."""
        return self.tr(
            "Applies a model trained by <i>Train classifier</i> to a whole region, block by block, each block a "
            "task on a Dask cluster: by default a local cluster on this machine (one worker per core), or an "
            "existing Dask scheduler named in the Processing settings (Landprobe &gt; Dask scheduler) or in the "
            "LANDPROBE_DASK_SCHEDULER environment variable. The map is the same, pixel for pixel, as "
            "<i>Classify raster</i> gives on the same raster."
            "<h3>Parameters</h3>"
            "<b>Region raster</b>: a raster or a VRT mosaic; or give <b>Tiles</b> (layers) or a <b>Folder of "
            "tiles</b> (every .tif and .vrt in it) on one pixel grid, mosaicked for you; or a <b>STAC Item or "
            "ItemCollection</b> (a .json file or an http(s) URL, e.g. a saved search result) whose items are the "
            "tiles, with the <b>Asset keys</b> stacked as bands (B04,B03,B02 or a range A00..A63; empty: the assets "
            "with the role 'data'). Rasters on the web are read through GDAL (/vsicurl/, /vsis3/, /vsigs/ paths "
            "work too); credentials come from GDAL's own configuration and are never stored. A tile on another "
            "CRS or grid is regridded onto the first tile's (nearest neighbour, named in the log); a tile that is "
            "missing, unreadable or has other bands is named and the job stops: nothing is skipped silently.<br>"
            "<b>Model</b>: any Landprobe model (.lpmodel): a probe on bands or on an embedding raster, a probe "
            "that runs its encoder (the embeddings are computed block by block), or a deep model.<br>"
            "<b>Output folder</b>: the blocks (Cloud-Optimized GeoTIFFs), a VRT per map (map.vrt with its legend "
            "and style) and the manifest of finished blocks. <b>Running the job again with the same folder "
            "resumes it</b>: finished blocks are skipped and counted in the log. A folder holding another job's "
            "map is refused.<br>"
            "<b>Block size</b> (advanced): pixels a side of one task.<br>"
            "<b>One Cloud-Optimized GeoTIFF</b> (optional): also assemble the class map into one file.<br>"
            "<b>Also write the uncertainty</b>: for a random forest or k-nearest neighbours model from <i>Train "
            "regressor</i>, each pixel's uncertainty in the quantity's unit (uncertainty.vrt: the spread of the "
            "trees or neighbours).<br>"
            "Cancelling stops the blocks within seconds and keeps the finished ones for the next run."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.addParameter(QgsProcessingParameterRasterLayer(self.RASTER, self.tr("Region raster or VRT mosaic"),
                                                            optional=True))
        self.addParameter(QgsProcessingParameterMultipleLayers(self.TILES, self.tr("Tiles (one pixel grid)"),
                                                               QgsProcessing.SourceType.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterFile(self.TILES_FOLDER, self.tr("Folder of tiles"),
                                                     behavior=QgsProcessingParameterFile.Behavior.Folder,
                                                     optional=True))
        self.addParameter(QgsProcessingParameterString(self.STAC, self.tr("STAC Item or ItemCollection (file or URL)"),
                                                       optional=True))
        self.addParameter(QgsProcessingParameterString(self.ASSETS, self.tr("Asset keys (STAC)"), optional=True))
        self.addParameter(model_parameter(self.MODEL, self.tr("Model")))
        block = QgsProcessingParameterEnum(self.BLOCK_SIZE, self.tr("Block size (pixels a side)"),
                                           options=[str(size) for size in BLOCK_SIZES], defaultValue=2)
        block.setFlags(block.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(block)
        self.addParameter(QgsProcessingParameterBoolean(self.PROBABILITY, self.tr("Also write class probabilities"),
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterBoolean(self.CONFIDENCE, self.tr("Also write confidence"),
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, self.tr("Output folder")))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_COG, self.tr("One Cloud-Optimized GeoTIFF of the class map"), optional=True,
            createByDefault=False))
        self.addParameter(QgsProcessingParameterBoolean(
            self.UNCERTAINTY, self.tr("Also write the uncertainty (random forest or k-NN models from Train regressor)"),
            defaultValue=False))
        self.addOutput(QgsProcessingOutputRasterLayer(self.OUTPUT, self.tr("Class map (VRT)")))
        self.addOutput(QgsProcessingOutputRasterLayer(self.OUTPUT_PROBABILITY, self.tr("Class probabilities (VRT)")))
        self.addOutput(QgsProcessingOutputRasterLayer(self.OUTPUT_CONFIDENCE, self.tr("Confidence (VRT)")))
        self.addOutput(QgsProcessingOutputRasterLayer(self.OUTPUT_UNCERTAINTY, self.tr("Uncertainty (VRT)")))
        self.addOutput(QgsProcessingOutputNumber(self.BLOCKS_SKIPPED, self.tr("Blocks already done (skipped)")))

    def region(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | list[str]:
        """The region for the engine: the raster, the tile files, the folder or the STAC file; exactly one of them."""
        tiles = [self.layer_file(layer) for layer in self.parameterAsLayerList(parameters, self.TILES, context)]
        folder = self.parameterAsFile(parameters, self.TILES_FOLDER, context)
        stac = self.parameterAsString(parameters, self.STAC, context).strip()
        given = [bool(parameters.get(self.RASTER)), bool(tiles), bool(folder), bool(stac)]
        if sum(given) != 1:
            raise QgsProcessingException(self.tr(
                "Give the region one way: a Region raster (or VRT mosaic), Tiles, a Folder of tiles, or a STAC Item "
                "or ItemCollection."))
        if tiles:
            return tiles
        if folder:
            return folder
        if stac:
            return stac
        return self.raster_path(parameters, self.RASTER, context)

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Run the ``map_region`` job in the engine and load the maps, styled."""
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        cog = self.parameterAsOutputLayer(parameters, self.OUTPUT_COG, context) or None
        outputs = self.run_engine("map_region", {
            "raster": self.region(parameters, context),
            "model": self.parameterAsFile(parameters, self.MODEL, context),
            "output_folder": folder,
            "output_probability": self.parameterAsBool(parameters, self.PROBABILITY, context),
            "output_confidence": self.parameterAsBool(parameters, self.CONFIDENCE, context),
            "output_uncertainty": self.parameterAsBool(parameters, self.UNCERTAINTY, context),
            "output_cog": cog,
            "block_size": BLOCK_SIZES[self.parameterAsEnum(parameters, self.BLOCK_SIZE, context)],
            "assets": self.parameterAsString(parameters, self.ASSETS, context).strip() or None,
        }, feedback)
        results = {self.OUTPUT: outputs.get("output"), self.OUTPUT_PROBABILITY: outputs.get("output_probability"),
                   self.OUTPUT_CONFIDENCE: outputs.get("output_confidence"),
                   self.OUTPUT_UNCERTAINTY: outputs.get("output_uncertainty"),
                   self.BLOCKS_SKIPPED: outputs.get("blocks_skipped"), self.OUTPUT_FOLDER: folder}
        maps = [results[self.OUTPUT], results[self.OUTPUT_CONFIDENCE], results[self.OUTPUT_UNCERTAINTY],
                results[self.OUTPUT_PROBABILITY]]
        arrangement = ResultLayers(maps[0], maps[1:], per_class=results[self.OUTPUT_PROBABILITY])
        names = {results[self.OUTPUT]: ("Region map", self.OUTPUT),
                 results[self.OUTPUT_PROBABILITY]: ("Region probabilities", self.OUTPUT_PROBABILITY),
                 results[self.OUTPUT_CONFIDENCE]: ("Region confidence", self.OUTPUT_CONFIDENCE),
                 results[self.OUTPUT_UNCERTAINTY]: ("Region uncertainty", self.OUTPUT_UNCERTAINTY)}
        for path in filter(None, maps):
            if context.project() is not None and os.path.exists(path):
                name, output_name = names[path]
                context.addLayerToLoadOnCompletion(path, QgsProcessingContext.LayerDetails(
                    name, context.project(), output_name))
            style_on_load(context, path, arrangement)
        if cog:
            results[self.OUTPUT_COG] = outputs.get("output_cog", cog)
            style_on_load(context, cog, None)
        return results
