"""The hyperspectral benchmark operations: ``import_mat`` and ``label_polygons``.

``import_mat`` writes a MATLAB cube or ground truth as a GeoTIFF (:func:`engine.io.hsi.mat_to_geotiff`) and answers
with what was written.

``label_polygons`` turns labels given as a raster (a ground-truth map) into the polygons that training reads.
Benchmark ground truths (Indian Pines, Pavia, Salinas) and many field campaigns come as a class raster with 0 for
unlabelled pixels. :func:`label_raster_to_polygons` writes one polygon per connected patch of a class, with the
class as text (``class``), its code (``code``) and a patch id, so that the polygon split holds out whole patches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio import features

from ..core.errors import InputError
from ..core.feedback import Feedback
from ..io.hsi import mat_to_geotiff
from ..io.rasters import atomic_output, open_raster, raster_info, read_block


@dataclass
class PolygonsResult:
    """The polygon layer written."""

    output: str
    n_polygons: int
    classes: dict[str, int]


def label_raster_to_polygons(raster: str, output: str, class_names: dict[Any, str] | None = None,
                             unlabelled: int = 0, pixels: list[int] | None = None,
                             feedback: Feedback | None = None) -> PolygonsResult:
    """Write the labelled pixels of band 1 of ``raster`` as polygons (a GeoPackage).

    Args:
        raster: a class raster (integer codes).
        output: the GeoPackage to write.
        class_names: the name of each code (default: the code as text).
        unlabelled: the code of unlabelled pixels (also the raster's nodata is unlabelled).
        pixels: keep only these flat pixel indices (``row * width + col``) as labelled, e.g. a training split.
        feedback: progress.

    Raises:
        InputError: when the raster holds no labelled pixel.

    """
    # Lazy: geopandas takes about a second to import; only the jobs that read labels need it.
    import geopandas as gpd

    # Lazy: shapely comes with the label reading, not needed by every job.
    from shapely.geometry import shape

    with open_raster(raster) as src:
        codes = read_block(src, bands=[1])[0]
        transform, crs, nodata = src.transform, src.crs, src.nodata
    labelled = codes != unlabelled
    if nodata is not None:
        labelled &= codes != nodata
    if pixels is not None:
        keep = np.zeros(codes.size, dtype=bool)
        keep[np.asarray(pixels, dtype="int64")] = True
        labelled &= keep.reshape(codes.shape)
    if not labelled.any():
        raise InputError(f"Raster {raster} has no labelled pixel (every pixel is {unlabelled} or nodata).")
    feedback = feedback or Feedback()
    feedback.progress(0.1, "Tracing the labelled patches")
    names = {str(k): v for k, v in (class_names or {}).items()}  # keys may come as text from JSON
    records = [{"geometry": shape(geom), "code": int(value), "class": names.get(str(int(value)), str(int(value)))}
               for geom, value in features.shapes(codes.astype("int32"), mask=labelled, transform=transform,
                                                  connectivity=4)]
    gdf = gpd.GeoDataFrame(records, geometry="geometry", crs=crs)
    gdf["patch"] = np.arange(1, len(gdf) + 1)
    with atomic_output(output) as tmp:
        gdf.to_file(tmp, driver="GPKG", layer=re.sub(r"\W", "_", Path(output).stem) or "labels")
    feedback.progress(1.0, "Done")
    counts = gdf.groupby("class").size()
    return PolygonsResult(str(Path(output)), len(gdf), {str(k): int(v) for k, v in counts.items()})


def import_mat(mat: str, output: str, key: str | None = None, feedback: Feedback | None = None) -> dict[str, Any]:
    """The ``import_mat`` operation: :func:`mat_to_geotiff`, answering with what was written."""
    feedback = feedback or Feedback()
    feedback.progress(0.1, f"Reading {Path(mat).name}")
    info = raster_info(mat_to_geotiff(mat, output, key))
    feedback.progress(1.0, "Done")
    return {"output": str(output), "width": info.width, "height": info.height, "bands": info.count,
            "dtype": info.dtype}
