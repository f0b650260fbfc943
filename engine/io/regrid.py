"""Maps made on an embedding grid, put onto another raster's pixel grid by nearest neighbour.

A class map (or probability raster) computed once per embedding cell is resampled onto the input raster's grid (or
any other grid) window by window through a GDAL warped view, with nearest neighbour only: class codes and
embeddings are never interpolated. Colour table, band descriptions and tags follow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from ..core.feedback import Feedback
from .rasters import common_dtype, iter_windows, open_raster, read_block


def regrid_nearest(source: Path, reference: str, work: Path, feedback: Feedback | None = None,
                   count_classes: list[int] | None = None) -> np.ndarray | None:
    """Write ``source`` resampled onto ``reference``'s grid (CRS, transform, size) as the tiled GeoTIFF ``work``.

    Args:
        source: a raster on the embedding grid.
        reference: the raster whose grid the output takes.
        work: the GeoTIFF to write.
        feedback: progress and cancel, once per window.
        count_classes: class codes to count in band 1 of the output (for a class map).

    Returns:
        The pixel count of each code in ``count_classes`` on the new grid, or ``None``.

    """
    feedback = feedback or Feedback()
    counts = np.zeros(len(count_classes), dtype="int64") if count_classes is not None else None
    lookup = {code: i for i, code in enumerate(count_classes or [])}
    with open_raster(reference) as ref, open_raster(source) as src:
        grid = {"crs": ref.crs or src.crs, "transform": ref.transform, "width": ref.width, "height": ref.height}
        profile = {"driver": "GTiff", "count": src.count, "dtype": common_dtype(src.dtypes), "nodata": src.nodata,
                   "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
                   "BIGTIFF": "IF_SAFER", **grid}
        colormap = _colormap(src)
        with WarpedVRT(src, resampling=Resampling.nearest, nodata=src.nodata, **grid) as vrt, \
                rasterio.open(work, "w", **profile) as dst:
            if colormap:
                dst.write_colormap(1, colormap)
            windows = list(iter_windows(ref.width, ref.height, 1024))
            for i, win in enumerate(windows):
                feedback.check_cancel()
                data = read_block(vrt, win)
                dst.write(data, window=win)
                if counts is not None:
                    values, n = np.unique(data[0], return_counts=True)
                    for value, k in zip(values.tolist(), n.tolist(), strict=True):
                        if value in lookup:
                            counts[lookup[value]] += k
                feedback.progress((i + 1) / len(windows), "Resampling the map onto the input grid")
            for band in range(1, src.count + 1):
                dst.set_band_description(band, src.descriptions[band - 1] or "")
                dst.update_tags(band, **src.tags(band))
    return counts


def _colormap(src: Any) -> dict[int, tuple[int, ...]] | None:
    """Band 1's colour table, or ``None`` when it has none."""
    try:
        return src.colormap(1)
    except ValueError:
        return None
