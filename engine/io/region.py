"""Regions: a raster, a VRT mosaic, or tiles on one pixel grid, seen as one raster that GDAL opens.

A region is given as one path (a raster, a VRT, a GDAL virtual file system path such as ``/vsicurl/...``), a folder
of tiles (every ``.tif``, ``.tiff`` and ``.vrt`` in it), or a list of tiles. Tiles are tied together by a mosaic VRT
written by :func:`mosaic_vrt`: they must share the CRS, the pixel size, the bands (count, types, nodata) and a pixel
grid (origins a whole number of pixels apart). A tile that is missing, unreadable, on another CRS or off the grid is
named in the error, never skipped: a silently missing tile would be a hole in the map that looks like nodata.

Credentials for ``/vsis3/``, ``/vsigs/`` and the like go through GDAL's own configuration (environment variables
such as ``AWS_ACCESS_KEY_ID`` or a GDAL configuration file); nothing here reads, stores or logs them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from ..core.errors import InputError
from .rasters import GDAL_TYPES, RasterInfo, raster_info

logger = logging.getLogger(__name__)

#: File name endings taken as tiles in a folder.
TILE_SUFFIXES = (".tif", ".tiff", ".vrt")
#: How far (in pixels) a tile's origin may sit off the grid and still count as on it (rounding in the files).
GRID_TOLERANCE = 1e-6


def region_tiles(region: str | Sequence[str]) -> list[str]:
    """The tiles of ``region``: the path itself, a folder's rasters (sorted by name), or the list as given.

    Raises:
        InputError: for a folder without rasters or an empty list.

    """
    if isinstance(region, (str, os.PathLike)):
        path = Path(region)
        if path.is_dir():
            tiles = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in TILE_SUFFIXES and p.is_file())
            if not tiles:
                raise InputError(f"Folder {region} holds no raster tiles ({', '.join(TILE_SUFFIXES)}): choose the "
                                 "folder of the tiles, or a VRT mosaic.")
            return tiles
        return [str(region)]
    tiles = [str(t) for t in region]
    if not tiles:
        raise InputError("The region has no tiles: give a raster, a VRT mosaic, a folder of tiles or a list of them.")
    return tiles


def _on_grid(first: RasterInfo, info: RasterInfo) -> tuple[int, int] | None:
    """The pixel offset of ``info``'s origin on ``first``'s grid, or None when it is off the grid."""
    a, _, c, _, e, f = first.transform
    col, row = (info.transform[2] - c) / a, (info.transform[5] - f) / e
    if abs(col - round(col)) > GRID_TOLERANCE or abs(row - round(row)) > GRID_TOLERANCE:
        return None
    return round(col), round(row)


def mosaic_vrt(tiles: Sequence[str], output: str | os.PathLike[str]) -> Path:
    """Write a VRT that mosaics ``tiles`` (one pixel grid) at ``output``; return its path.

    Where tiles overlap, the later one in the list wins (GDAL's rule for VRT sources).

    Raises:
        InputError: naming the tile that is missing, unreadable, on another CRS or pixel size, off the grid, or
            with other bands than the first.

    """
    infos = []
    for tile in tiles:
        try:
            infos.append(raster_info(tile))
        except InputError as exc:
            raise InputError(f"Tile {tile} of the region cannot be read: {exc} Fix or remove the tile, then run "
                             "again.") from None
    first = infos[0]
    offsets = []
    for info in infos:
        if info.crs_wkt != first.crs_wkt:
            raise InputError(f"Tile {info.path} is on another CRS than tile {first.path}: reproject it onto the "
                             "region's grid (gdalwarp) or leave it out.")
        if info.transform[0] != first.transform[0] or info.transform[4] != first.transform[4] or \
                info.transform[1] or info.transform[3]:
            raise InputError(f"Tile {info.path} has another pixel size (or rotation) than tile {first.path}: "
                             "resample it onto the region's grid (gdalwarp -tap) or leave it out.")
        if (info.count, info.dtypes, info.nodatavals) != (first.count, first.dtypes, first.nodatavals):
            raise InputError(f"Tile {info.path} has other bands than tile {first.path} ({info.count} bands of "
                             f"{', '.join(sorted(set(info.dtypes)))} against {first.count} of "
                             f"{', '.join(sorted(set(first.dtypes)))}, or other nodata): every tile needs the same "
                             "bands.")
        offset = _on_grid(first, info)
        if offset is None:
            raise InputError(f"Tile {info.path} is not on the pixel grid of tile {first.path} (its origin is not a "
                             "whole number of pixels away): resample it with gdalwarp -tap, or leave it out.")
        offsets.append(offset)
    left, top = min(o[0] for o in offsets), min(o[1] for o in offsets)
    right = max(o[0] + i.width for o, i in zip(offsets, infos, strict=True))
    bottom = max(o[1] + i.height for o, i in zip(offsets, infos, strict=True))
    a, b, c, d, e, f = first.transform
    origin_x, origin_y = c + left * a, f + top * e
    bands = []
    for band in range(1, first.count + 1):
        value = first.nodatavals[band - 1]
        nodata = "" if value is None else f"<NoDataValue>{value!r}</NoDataValue>"
        scaling = ""
        if first.offsets[band - 1] != 0 or first.scales[band - 1] != 1:
            scaling = f"<Offset>{first.offsets[band - 1]!r}</Offset><Scale>{first.scales[band - 1]!r}</Scale>"
        sources = "".join(
            f'<ComplexSource><SourceFilename relativeToVRT="0">{escape(_absolute(info.path))}</SourceFilename>'
            f"<SourceBand>{band}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{info.width}" ySize="{info.height}"/>'
            f'<DstRect xOff="{col - left}" yOff="{row - top}" xSize="{info.width}" ySize="{info.height}"/>'
            f"{'' if value is None else f'<NODATA>{value!r}</NODATA>'}</ComplexSource>"
            for info, (col, row) in zip(infos, offsets, strict=True))
        bands.append(f'<VRTRasterBand dataType="{GDAL_TYPES.get(first.dtypes[band - 1], "Float64")}" '
                     f'band="{band}">{nodata}<Description>{escape(first.band_names[band - 1])}</Description>'
                     f"{scaling}{sources}</VRTRasterBand>")
    srs = f"<SRS>{escape(first.crs_wkt)}</SRS>" if first.crs_wkt else ""
    xml = (f'<VRTDataset rasterXSize="{right - left}" rasterYSize="{bottom - top}">{srs}'
           f"<GeoTransform>{origin_x!r}, {a!r}, {b!r}, {origin_y!r}, {d!r}, {e!r}</GeoTransform>"
           f"{''.join(bands)}</VRTDataset>")
    path = Path(output)
    path.write_text(xml, encoding="utf-8")
    logger.info("Region: %d tiles mosaicked into %s (%d x %d px).", len(infos), path, right - left, bottom - top)
    return path


def _absolute(path: str) -> str:
    """A tile's path as the VRT stores it: absolute for a file, as given for a GDAL virtual path."""
    return path if path.startswith("/vsi") or "://" in path else str(Path(path).resolve())
