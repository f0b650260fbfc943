"""Regions: a raster, a VRT mosaic, tiles on one pixel grid or a STAC catalogue, seen as one raster GDAL opens.

A region is given as one path (a raster, a VRT, a GDAL virtual file system path such as ``/vsicurl/...``), a folder
of tiles (every ``.tif``, ``.tiff`` and ``.vrt`` in it), a list of tiles, or a STAC Item or ItemCollection (a local
``.json`` file or an ``http(s)`` URL, read with pystac): each item's assets, chosen by key (``B04,B03,B02``, or a
range such as ``A00..A63``; default: the assets whose roles include ``data``), are stacked as its bands in a VRT, and
the items are the tiles. Asset links are read by GDAL: ``http(s)://`` through ``/vsicurl/``, ``s3://`` through
``/vsis3/``, ``gs://`` through ``/vsigs/``, relative links against the STAC file's location.

Tiles are tied together by a mosaic VRT written by :func:`mosaic_vrt` on the first tile's pixel grid (its CRS, pixel
size and alignment); every tile must have the same bands (count, types, nodata, scale and offset). A tile on another
CRS, another pixel size or off that grid is regridded onto it through a GDAL warped VRT (nearest neighbour, its
extent widened to whole pixels of the grid, written next to the mosaic VRT) and named in a warning of the log. A tile
that is missing, unreadable, has other bands, or cannot be regridded (no CRS, no nodata value for the pixels around
it, far outside the area the first tile's CRS suits) is named in the error, never skipped: a silently missing tile
would be a hole in the map that looks like nodata.

Credentials for ``/vsis3/``, ``/vsigs/`` and the like go through GDAL's own configuration (environment variables
such as ``AWS_ACCESS_KEY_ID`` or a GDAL configuration file); nothing here reads, stores or logs them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from xml.sax.saxutils import escape

import rasterio
import rasterio.shutil
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform, transform_bounds

from ..core.errors import InputError
from .rasters import GDAL_TYPES, RasterInfo, gdal_location, open_raster, raster_info, write_stack_vrt

logger = logging.getLogger(__name__)

#: File name endings taken as tiles in a folder.
TILE_SUFFIXES = (".tif", ".tiff", ".vrt")
#: How far (in pixels) a tile's origin may sit off the grid and still count as on it (rounding in the files).
GRID_TOLERANCE = 1e-6


@contextlib.contextmanager
def band_stack(raster: str | Sequence[str], bands: Sequence[int] | None = None) -> Iterator[str]:
    """Yield one raster path for ``raster``: the path itself, or a temporary VRT.

    ``raster`` is a raster, several files whose bands are stacked in order, or a region that a job reads as one
    raster: a folder of tiles or a STAC Item or ItemCollection (its assets with the role ``data``), mosaicked (see
    :func:`region_raster`). ``bands`` (1-based, in the stacked order) keeps only those bands, in that order.

    Raises:
        InputError: when the files differ in size, grid or CRS, a band number does not exist, or a tile cannot be
            used.

    """
    files = [raster] if isinstance(raster, str) else list(raster)
    region = len(files) == 1 and (Path(files[0]).is_dir() or is_stac(files[0]))
    if len(files) == 1 and not bands and not region:
        yield files[0]
        return
    with tempfile.TemporaryDirectory(prefix="landprobe-stack-") as folder:
        if region:
            files = [region_raster(files[0], Path(folder))]
        if len(files) == 1 and not bands:
            yield files[0]
        else:
            yield str(write_stack_vrt(files, Path(folder) / "stack.vrt", bands))


def region_raster(region: str | Sequence[str], folder: Path, assets: str | None = None) -> str:
    """One path GDAL opens for ``region``: the raster itself, or VRTs written in ``folder`` (a mosaic of the tiles).

    Args:
        region: a raster, a folder of tiles, a list of tiles, or a STAC Item or ItemCollection (``.json`` or URL).
        folder: where the VRTs go (the output folder of a region job: workers read them from there).
        assets: for STAC, the asset keys whose bands are stacked, in order (``B04,B03`` or ``A00..A63``).

    Raises:
        InputError: naming the tile, item or asset that cannot be used.

    """
    if isinstance(region, str) and is_stac(region):
        tiles = stac_tiles(region, assets, folder / "stac")
    else:
        if assets:
            raise InputError("Asset keys are for a STAC Item or ItemCollection (a .json file or URL); this region is "
                             "a raster or tiles: leave the asset keys empty.")
        tiles = region_tiles(region)
    if len(tiles) == 1:
        return tiles[0]
    return str(mosaic_vrt(tiles, folder / "region.vrt"))


def is_stac(source: str) -> bool:
    """Whether ``source`` names a STAC Item or ItemCollection: a ``.json`` or ``.geojson`` file or URL."""
    return source.lower().split("?")[0].endswith((".json", ".geojson"))


def expand_assets(spec: str) -> list[str]:
    """Asset keys from ``B04,B03,B02`` or ranges such as ``A00..A63`` (the digits' width is kept).

    Raises:
        InputError: for a range whose ends differ in prefix or run backwards.

    """
    keys: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        match = re.fullmatch(r"(\D*)(\d+)\.\.(\D*)(\d+)", part)
        if not match:
            keys.append(part)
            continue
        prefix, start, prefix_end, end = match.groups()
        if prefix != prefix_end or int(end) < int(start):
            raise InputError(f"Asset range {part!r} is not a range: write it as A00..A63 (same prefix, rising).")
        keys += [f"{prefix}{i:0{len(start)}d}" for i in range(int(start), int(end) + 1)]
    return keys


def gdal_path(href: str, base: str) -> str:
    """The path GDAL reads for a STAC asset link ``href`` found in the STAC file ``base``."""
    if href.startswith("/vsi"):
        return href
    if href.startswith(("http://", "https://")):
        return "/vsicurl/" + href
    for scheme, handler in (("s3://", "/vsis3/"), ("gs://", "/vsigs/"), ("az://", "/vsiaz/")):
        if href.startswith(scheme):
            return handler + href[len(scheme):]
    if href.startswith("file://"):
        return href[len("file://"):]
    if os.path.isabs(href):
        return href
    if base.startswith(("http://", "https://")):
        return "/vsicurl/" + urljoin(base, href)
    return str((Path(base).parent / href).resolve())


def _stac_items(source: str) -> list[Any]:
    """The items of a STAC Item or ItemCollection file or URL.

    Raises:
        InputError: when it cannot be read or is neither.

    """
    # Lazy: only STAC regions need pystac.
    import pystac

    try:
        data = pystac.StacIO.default().read_json(source)
    except Exception as exc:  # pystac raises what urllib or json raise
        raise InputError(f"Cannot read the STAC file {source} ({type(exc).__name__}: {exc}): check the path or "
                         "URL.") from None
    kind = data.get("type") if isinstance(data, dict) else None
    try:
        if kind == "FeatureCollection":
            return list(pystac.ItemCollection.from_dict(data).items)
        if kind == "Feature":
            return [pystac.Item.from_dict(data)]
    except (KeyError, ValueError, TypeError, pystac.STACError) as exc:
        raise InputError(f"STAC file {source} is not a valid STAC Item or ItemCollection ({exc}).") from None
    raise InputError(f"{source} is not a STAC Item or ItemCollection (its type is {kind!r}): give the JSON of an Item "
                     "or of an ItemCollection (a search result).")


def stac_tiles(source: str, assets: str | None, folder: Path) -> list[str]:
    """One VRT per STAC item in ``folder``, stacking the chosen assets as bands; the tiles of the region.

    Raises:
        InputError: naming the item and the asset key that is missing, and the keys it has.

    """
    items = _stac_items(source)
    if not items:
        raise InputError(f"STAC file {source} holds no items: run the search again, or choose another file.")
    folder.mkdir(parents=True, exist_ok=True)
    keys = expand_assets(assets) if assets else None
    if keys is None:  # the first item's data assets, in its order, for every item: the bands must line up
        keys = [k for k, a in items[0].assets.items() if "data" in (a.roles or [])]
        if not keys:
            raise InputError(f"STAC item {items[0].id} of {source} has no asset with the role 'data': name the asset "
                             f"keys to read, among: {', '.join(items[0].assets)}.")
    tiles = []
    chosen = keys
    for n, item in enumerate(items):
        available = item.assets
        missing = [k for k in chosen if k not in available]
        if missing:
            raise InputError(f"STAC item {item.id} of {source} has no asset {missing[0]!r} (it has: "
                             f"{', '.join(available)}): choose asset keys it has.")
        files = [gdal_path(available[k].href, source) for k in chosen]
        name = re.sub(r"[^A-Za-z0-9._-]", "_", str(item.id)) or f"item{n}"
        try:
            tiles.append(str(write_stack_vrt(files, folder / f"{n:05d}_{name}.vrt", names=chosen)))
        except InputError as exc:
            raise InputError(f"STAC item {item.id} of {source}: {exc}") from None
    logger.info("Region: %d STAC items of %s, %d assets each (%s).", len(items), source, len(chosen),
                ", ".join(chosen[:6]) + (" ..." if len(chosen) > 6 else ""))
    return tiles


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


def _same_crs(first: RasterInfo, info: RasterInfo) -> bool:
    """Whether two tiles are on the same CRS: the same WKT, or two WKTs GDAL takes for the same CRS."""
    if info.crs_wkt == first.crs_wkt:
        return True
    if not info.crs_wkt or not first.crs_wkt:
        return False
    return bool(CRS.from_wkt(info.crs_wkt) == CRS.from_wkt(first.crs_wkt))


def _crs_name(wkt: str | None) -> str:
    """A short name of a CRS for a log line: ``EPSG:32633``, else the name in its WKT."""
    if not wkt:
        return "no CRS"
    authority = CRS.from_wkt(wkt).to_authority()
    if authority:
        return ":".join(authority)
    match = re.match(r'\s*\w+\["([^"]*)"', wkt)
    return match.group(1) if match else "a custom CRS"


def _grid_offset(first: RasterInfo, info: RasterInfo) -> tuple[int, int] | None:
    """The pixel offset of ``info`` on ``first``'s grid, or None when it must be regridded onto it first.

    A tile is on the grid when it has the same CRS, the same pixel size, no rotation, and its origin a whole number
    of pixels away from the first tile's.
    """
    if not _same_crs(first, info):
        return None
    if info.transform[0] != first.transform[0] or info.transform[4] != first.transform[4] or \
            info.transform[1] or info.transform[3]:
        return None
    return _on_grid(first, info)


def _nodata_key(info: RasterInfo) -> tuple[Any, ...]:
    """Each band's nodata, comparable: NaN equals NaN here (rasterio gives each band its own NaN object)."""
    return tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in info.nodatavals)


def _single_nodata(info: RasterInfo) -> bool:
    """Whether every band of ``info`` has the same nodata value (NaN counting as one value)."""
    key = _nodata_key(info)
    return None not in key and len(set(key)) == 1


def _check_bands(first: RasterInfo, info: RasterInfo) -> None:
    """Refuse a tile whose bands (count, types, nodata, scale and offset) differ from the first tile's.

    Raises:
        InputError: naming the tile and what to do.

    """
    if (info.count, info.dtypes, _nodata_key(info)) != (first.count, first.dtypes, _nodata_key(first)):
        raise InputError(f"Tile {info.path} has other bands than tile {first.path} ({info.count} bands of "
                         f"{', '.join(sorted(set(info.dtypes)))} against {first.count} of "
                         f"{', '.join(sorted(set(first.dtypes)))}, or other nodata): give every tile the same "
                         "bands, data type and nodata value (gdal_translate -b, -ot, -a_nodata) or leave it out.")
    if (info.scales, info.offsets) != (first.scales, first.offsets):
        raise InputError(f"Tile {info.path} has other scale or offset tags than tile {first.path}: its values "
                         "would be read with the wrong scaling. Give every tile the same tags (gdal_edit "
                         "-scale -offset) or rescale it.")


#: The largest turn (degrees) of a tile's grid, drawn on the first tile's CRS, that is still regridded: a tile
#: turned further lies far outside the area the first tile's CRS suits (UTM zones apart), where its pixels would
#: be stretched and sheared into a rectangle many times its size.
MAX_TURN_DEGREES = 45.0


def _regrid(first: RasterInfo, info: RasterInfo) -> tuple[RasterInfo, tuple[int, int]]:
    """Where tile ``info`` lands once regridded onto ``first``'s grid: its warped description and pixel offset.

    The warped tile covers the tile's extent on the first tile's CRS, widened to whole pixels of the first tile's
    grid; the pixels around the tile read as its nodata value. Nothing is written (:func:`_write_warped` does).

    Raises:
        InputError: naming the tile when it has no CRS (or the first tile has none), no single nodata value, lies
            where the first tile's CRS cannot hold it, or the first tile's grid is rotated.

    """
    a, b, c, d, e, f = first.transform
    if not info.crs_wkt or not first.crs_wkt:
        which = info.path if not info.crs_wkt else first.path
        raise InputError(f"Tile {info.path} is not on the pixel grid of tile {first.path} and tile {which} has no "
                         "CRS to regrid it with: set the CRS of every tile (gdal_edit -a_srs), or resample the tile "
                         "onto the region's grid (gdalwarp -tap), or leave it out.")
    if b or d:
        raise InputError(f"Tile {info.path} is not on the pixel grid of tile {first.path}, whose grid is rotated and "
                         "takes no regridded tiles: warp the tiles north-up onto one grid (gdalwarp -tap) or leave it "
                         "out.")
    if not _single_nodata(info):
        raise InputError(f"Tile {info.path} is not on the pixel grid of tile {first.path} (another CRS, pixel size "
                         "or origin) and has no single nodata value, so the pixels around it once regridded would "
                         "be read as data: set one nodata value on every tile (gdal_edit -a_nodata), or resample it "
                         "onto the region's grid (gdalwarp -tap), or leave it out.")
    src_crs, dst_crs = CRS.from_wkt(info.crs_wkt), CRS.from_wkt(first.crs_wkt)
    grid = Affine(*info.transform)
    corners = [grid * (x, y) for x, y in ((0, 0), (info.width, 0), (0, info.height), (info.width, info.height))]
    xs, ys = [p[0] for p in corners], [p[1] for p in corners]
    centre, top = grid * (info.width / 2, info.height / 2), grid * (info.width / 2, 0)
    try:
        left, bottom, right, upper = transform_bounds(src_crs, dst_crs, min(xs), min(ys), max(xs), max(ys),
                                                      densify_pts=21)
        (x0, x1), (y0, y1) = transform(src_crs, dst_crs, [centre[0], top[0]], [centre[1], top[1]])
    except Exception as exc:  # rasterio's errors, or GDAL's CPLE_* ones, which are not RasterioErrors
        raise InputError(f"Tile {info.path} is on another CRS than tile {first.path} and cannot be reprojected onto "
                         f"it ({exc}): reproject the tiles onto one CRS (gdalwarp -tap) or leave it out.") from None
    if not all(math.isfinite(v) for v in (left, bottom, right, upper, x0, x1, y0, y1)):
        raise InputError(f"Tile {info.path} is on another CRS than tile {first.path} and lies outside the area that "
                         f"CRS can hold ({_crs_name(first.crs_wkt)}: PROJ gives no coordinates for it): reproject "
                         "the tiles onto one CRS suited to the whole region (gdalwarp -tap) or leave it out.")
    # the tile's "up" drawn on the first tile's pixel grid: straight up (0, -1) where both CRSs agree on north
    turn = math.degrees(math.atan2((x1 - x0) / a, -(y1 - y0) / e))
    if abs(turn) > MAX_TURN_DEGREES:
        raise InputError(f"Tile {info.path} is on another CRS than tile {first.path} and lies far outside the area "
                         f"that CRS suits ({_crs_name(first.crs_wkt)}: the tile would be turned by {abs(turn):.0f} "
                         "degrees): reproject the tiles onto one CRS suited to the whole region (gdalwarp -tap) or "
                         "leave it out.")
    cols = sorted(((left - c) / a, (right - c) / a))
    rows = sorted(((bottom - f) / e, (upper - f) / e))
    col0, col1 = math.floor(cols[0] + GRID_TOLERANCE), math.ceil(cols[1] - GRID_TOLERANCE)
    row0, row1 = math.floor(rows[0] + GRID_TOLERANCE), math.ceil(rows[1] - GRID_TOLERANCE)
    target = Affine(a, 0.0, c + col0 * a, 0.0, e, f + row0 * e)
    warped = replace(info, width=max(col1 - col0, 1), height=max(row1 - row0, 1), transform=tuple(target)[:6],
                     crs_wkt=first.crs_wkt)
    return warped, (col0, row0)


def _write_warped(first: RasterInfo, tile: RasterInfo, warped: RasterInfo, path: Path) -> RasterInfo:
    """Write the GDAL warped VRT (nearest neighbour) of ``tile`` on the grid ``warped`` at ``path``; log it.

    Returns:
        ``warped`` with its path.

    Raises:
        InputError: naming the tile when GDAL cannot build the warped VRT.

    """
    nodata = tile.nodatavals[0]
    try:
        with rasterio.open(gdal_location(tile.path)) as src, WarpedVRT(
                src, crs=CRS.from_wkt(str(first.crs_wkt)), transform=Affine(*warped.transform), width=warped.width,
                height=warped.height, resampling=Resampling.nearest, src_nodata=nodata, nodata=nodata) as vrt:
            rasterio.shutil.copy(vrt, str(path), driver="VRT")
    except Exception as exc:  # rasterio's errors, or GDAL's CPLE_* ones, which are not RasterioErrors
        raise InputError(f"Tile {tile.path} could not be regridded onto the grid of tile {first.path} ({exc}): "
                         "resample it onto the region's grid (gdalwarp -tap) or leave it out.") from None
    logger.warning("Tile %s is on %s with pixels of %s x %s, not on the grid of the first tile %s (%s, pixels of %s "
                   "x %s): it is resampled by nearest neighbour onto the first tile's grid (warped VRT %s, %d x %d "
                   "px).", tile.path, _crs_name(tile.crs_wkt), f"{abs(tile.transform[0]):g}",
                   f"{abs(tile.transform[4]):g}", first.path, _crs_name(first.crs_wkt), f"{abs(first.transform[0]):g}",
                   f"{abs(first.transform[4]):g}", path, warped.width, warped.height)
    return replace(warped, path=str(path))


def mosaic_vrt(tiles: Sequence[str], output: str | os.PathLike[str]) -> Path:
    """Write a VRT that mosaics ``tiles`` at ``output`` on the first tile's pixel grid; return its path.

    A tile on another CRS, pixel size or grid is regridded onto the first tile's grid through a GDAL warped VRT
    (nearest neighbour) written next to ``output`` (``<output stem>.warped_<n>_<tile>.vrt``), with a warning that
    names it. Where tiles overlap, the later one in the list wins (GDAL's rule for VRT sources; the pixels a warped
    tile adds around its own are nodata and let the others show).

    Raises:
        InputError: naming the tile that is missing or unreadable, has other bands (count, types, nodata, scale or
            offset) than the first, or cannot be regridded (no CRS, no nodata value, far outside the first tile's
            CRS).

    """
    infos = []
    for tile in tiles:
        try:
            infos.append(raster_info(tile))
        except InputError as exc:
            raise InputError(f"Tile {tile} of the region cannot be read: {exc} Fix or remove the tile, then run "
                             "again.") from None
    first = infos[0]
    path = Path(output)
    offsets = []
    regridded: dict[int, RasterInfo] = {}
    for n, info in enumerate(infos):  # every tile checked before anything is written
        _check_bands(first, info)
        offset = _grid_offset(first, info)
        if offset is None:
            regridded[n], offset = _regrid(first, info)
        offsets.append(offset)
    if regridded:
        path.parent.mkdir(parents=True, exist_ok=True)
    for n, warped in regridded.items():
        name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(infos[n].path).stem) or "tile"
        infos[n] = _write_warped(first, infos[n], warped, path.parent / f"{path.stem}.warped_{n:05d}_{name}.vrt")
    left, top = min(o[0] for o in offsets), min(o[1] for o in offsets)
    right = max(o[0] + i.width for o, i in zip(offsets, infos, strict=True))
    bottom = max(o[1] + i.height for o, i in zip(offsets, infos, strict=True))
    covered = sum(i.width * i.height for i in infos)
    if None in first.nodatavals and covered < (right - left) * (bottom - top):
        raise InputError(f"The tiles leave holes in the region's rectangle and tile {first.path} has no nodata "
                         "value, so the holes would read as 0 and be classified: set a nodata value on every tile "
                         "(gdal_edit -a_nodata), or give tiles that fill the rectangle.")
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
            f'<ComplexSource><SourceFilename relativeToVRT="0">{escape(gdal_location(info.path))}</SourceFilename>'
            f"<SourceBand>{band}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{info.width}" ySize="{info.height}"/>'
            f'<DstRect xOff="{col - left}" yOff="{row - top}" xSize="{info.width}" ySize="{info.height}"/>'
            f"{'' if value is None else f'<NODATA>{value!r}</NODATA>'}</ComplexSource>"
            for info, (col, row) in zip(infos, offsets, strict=True))
        bands.append(f'<VRTRasterBand dataType="{GDAL_TYPES.get(first.dtypes[band - 1], "Float64")}" '
                     f'band="{band}">{nodata}<Description>{escape(first.band_names[band - 1])}</Description>'
                     f"{scaling}{sources}</VRTRasterBand>")
    srs = f"<SRS>{escape(first.crs_wkt)}</SRS>" if first.crs_wkt else ""
    with open_raster(first.path) as src:  # the first tile's dataset tags (an embedding raster's description)
        tags = src.tags()
    metadata = "".join(f'<MDI key="{escape(k, {chr(34): "&quot;"})}">{escape(v)}</MDI>' for k, v in tags.items())
    xml = (f'<VRTDataset rasterXSize="{right - left}" rasterYSize="{bottom - top}">{srs}'
           f"<GeoTransform>{origin_x!r}, {a!r}, {b!r}, {origin_y!r}, {d!r}, {e!r}</GeoTransform>"
           f"{f'<Metadata>{metadata}</Metadata>' if metadata else ''}{''.join(bands)}</VRTDataset>")
    path.write_text(xml, encoding="utf-8")
    logger.info("Region: %d tiles mosaicked into %s (%d x %d px).", len(infos), path, right - left, bottom - top)
    return path


def regrid_onto(raster: str, reference: str, path: str | os.PathLike[str]) -> str:
    """Write a GDAL warped VRT of ``raster`` on ``reference``'s grid (CRS, transform, size) at ``path``.

    Nearest neighbour, as for tiles; the pixels outside ``raster`` read as its nodata. Returns ``path``, or
    ``raster`` itself when it is on that grid already.

    Raises:
        InputError: naming the raster when it has no CRS, no single nodata value, or GDAL cannot warp it.

    """
    info, ref = raster_info(raster), raster_info(reference)
    if (info.width, info.height, info.transform) == (ref.width, ref.height, ref.transform) and _same_crs(ref, info):
        return raster
    if not info.crs_wkt or not ref.crs_wkt:
        raise InputError(f"Raster {raster} is not on the grid of {reference} and one of them has no CRS to regrid "
                         "it with: set the CRS (gdal_edit -a_srs) or resample it onto the other's grid.")
    if not _single_nodata(info):
        raise InputError(f"Raster {raster} is not on the grid of {reference} and has no single nodata value, so the "
                         "pixels around it once regridded would be read as data: set one (gdal_edit -a_nodata) or "
                         "resample it onto the other's grid.")
    nodata = info.nodatavals[0]
    try:
        with rasterio.open(gdal_location(raster)) as src, WarpedVRT(
                src, crs=CRS.from_wkt(ref.crs_wkt), transform=Affine(*ref.transform), width=ref.width,
                height=ref.height, resampling=Resampling.nearest, src_nodata=nodata, nodata=nodata) as vrt:
            rasterio.shutil.copy(vrt, str(path), driver="VRT")
    except Exception as exc:  # rasterio's errors, or GDAL's CPLE_* ones, which are not RasterioErrors
        raise InputError(f"Raster {raster} could not be regridded onto the grid of {reference} ({exc}): resample "
                         "it onto that grid first (gdalwarp).") from None
    logger.info("Raster %s is resampled by nearest neighbour onto the grid of %s (warped VRT).", raster, reference)
    return str(path)
