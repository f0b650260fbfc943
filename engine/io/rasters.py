"""Reading rasters window by window and writing outputs atomically.

Outputs are written under a temporary name in the destination folder and renamed when complete, so a failed or
cancelled job never leaves a partial file where the user expects a result.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from ..core.errors import InputError, LandprobeError, OutputError
from ..core.workspace import TMP_MARKER, record_partial

if TYPE_CHECKING:
    from rasterio.windows import Window

logger = logging.getLogger(__name__)

#: A write that fails on a disk with less free space than this is taken for a full disk (GDAL reports it as an I/O
#: error of the TIFF writer, a failed write or a free-space check, in words that change between versions).
FULL_DISK_BYTES = 32 * 2**20
#: GDAL's block cache while a raster is streamed (its default, 5 % of RAM, fills up as a large file is read once).
GDAL_CACHE_MB = 64


def streaming_env() -> Any:
    """A rasterio environment with GDAL's block cache capped at :data:`GDAL_CACHE_MB` (rasterio takes bytes)."""
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20)


@dataclass(frozen=True)
class RasterInfo:
    """What the engine needs to know about an input raster.

    ``dtype`` is the type the engine reads all bands as (:func:`common_dtype`: the bands' own type when they share
    one); ``dtypes``, ``nodatavals``, ``scales`` and ``offsets`` are per band, as rasterio gives them.
    """

    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs_wkt: str | None
    transform: tuple[float, ...]
    nodata: float | None
    band_names: tuple[str, ...]
    dtypes: tuple[str, ...] = ()
    nodatavals: tuple[float | None, ...] = ()
    scales: tuple[float, ...] = ()
    offsets: tuple[float, ...] = ()


def open_raster(path: str | os.PathLike[str]) -> Any:
    """Open a raster with rasterio, turning failures into an :class:`InputError` that names the file.

    ``path`` may also be a VRT's XML text (what :func:`shareable` hands to workers on other machines).
    """
    text = str(path)
    if not text.startswith("<VRTDataset") and not Path(path).exists() and "://" not in text and \
            not text.startswith("/vsi"):
        raise InputError(f"Raster {path} does not exist. Check the path or save the layer to a file first.")
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"Cannot read raster {path}: {exc}. Is it a raster format GDAL can read?") from exc


def raster_info(path: str | os.PathLike[str]) -> RasterInfo:
    """Describe a raster: size, bands, CRS, transform, nodata and band names."""
    with open_raster(path) as src:
        return RasterInfo(
            path=str(path),
            width=src.width,
            height=src.height,
            count=src.count,
            dtype=common_dtype(src.dtypes),
            crs_wkt=src.crs.to_wkt() if src.crs else None,
            transform=tuple(src.transform)[:6],
            nodata=src.nodata,
            band_names=tuple(d or f"band {i + 1}" for i, d in enumerate(src.descriptions)),
            dtypes=tuple(src.dtypes),
            nodatavals=tuple(src.nodatavals),
            scales=tuple(float(v) for v in src.scales),
            offsets=tuple(float(v) for v in src.offsets),
        )


def common_dtype(dtypes: Sequence[str]) -> str:
    """One numpy type that holds the values of bands of every type in ``dtypes`` exactly.

    The bands' own type when they share one; for a mixed stack float32 (bands of up to 16-bit integers and
    float32), else float64 (a band of 32-bit or wider integers, or float64).
    """
    kinds = set(dtypes)
    if len(kinds) <= 1:
        return next(iter(kinds), "float32")
    small = all((np.dtype(d).kind in "iub" and np.dtype(d).itemsize <= 2) or np.dtype(d) == np.float32
                for d in kinds)
    return "float32" if small else "float64"


def read_block(src: Any, window: Window | None = None, bands: Sequence[int] | None = None, **kwargs: Any
               ) -> np.ndarray:
    """Bands ``bands`` (1-based, default all) of the open raster ``src`` as one array, whatever their data types.

    rasterio refuses to read bands of different types at once ("more than one 'dtype' found"), as a stack of files
    delivered one per band has them; those are read one type at a time into :func:`common_dtype`, which holds every
    band's values (and its nodata value) exactly. ``kwargs`` go to ``src.read`` (``out_shape``, ``resampling``,
    ``boundless``, ``masked``...; not ``out``).

    Returns:
        An array (bands, rows, cols), masked with ``masked=True``.

    """
    try:
        return _read_block(src, window, bands, **kwargs)
    except RasterioIOError as exc:
        detail = str(exc.__cause__ or exc).rstrip(".")  # GDAL's own error (e.g. a missing VRT source) is the cause
        raise InputError(f"Cannot read raster {src.name}: {detail}. The file may be truncated or damaged, or a file "
                         "it refers to (a VRT's source) may be missing; check it, or export it again.") from exc


def _read_block(src: Any, window: Window | None, bands: Sequence[int] | None, **kwargs: Any) -> np.ndarray:
    """:func:`read_block` without the error translation."""
    indexes = [int(b) for b in bands] if bands is not None else list(src.indexes)
    types = [src.dtypes[b - 1] for b in indexes]
    if len(set(types)) <= 1:
        return src.read(indexes, window=window, **kwargs)
    out_shape = kwargs.pop("out_shape", None)
    out: np.ndarray | None = None
    for kind in dict.fromkeys(types):
        where = [i for i, t in enumerate(types) if t == kind]
        shape = {"out_shape": (len(where), *out_shape[-2:])} if out_shape is not None else {}
        part = src.read([indexes[i] for i in where], window=window, **shape, **kwargs)
        if out is None:
            out = np.empty((len(indexes), *part.shape[1:]), dtype=common_dtype(types))
            if isinstance(part, np.ma.MaskedArray):
                out = np.ma.MaskedArray(out, mask=np.zeros(out.shape, dtype=bool))
        out[where] = part
    assert out is not None
    return out


def band_nodata(src: Any, bands: Sequence[int] | None = None) -> list[float | None]:
    """The nodata value of each band of ``bands`` (1-based, default all), as its own data type stores it.

    So a float32 band's nodata compares exactly once the band is read into float64 with bands of other types.
    """
    indexes = [int(b) for b in bands] if bands is not None else list(src.indexes)
    values: list[float | None] = []
    for b in indexes:
        value = src.nodatavals[b - 1]
        kind = np.dtype(src.dtypes[b - 1])
        if value is not None and kind.kind == "f" and np.isfinite(value):
            value = float(np.array(value).astype(kind))
        values.append(value)
    return values


def band_scaling(src: Any, bands: Sequence[int] | None = None) -> tuple[list[float], list[float]] | None:
    """Each band's scale and offset tags (physical value = stored value x scale + offset).

    ``None`` when all bands are stored as physical values already (scales 1, offsets 0).
    """
    indexes = [int(b) for b in bands] if bands is not None else list(src.indexes)
    scales = [float(src.scales[b - 1]) for b in indexes]
    offsets = [float(src.offsets[b - 1]) for b in indexes]
    if all(v == 1 for v in scales) and all(v == 0 for v in offsets):
        return None
    return scales, offsets


def band_label(number: int, name: str | None) -> str:
    """How a band is named in messages: its number, and its description when it has one."""
    return f"band {number}" + (f" ({name})" if name and name != f"band {number}" else "")


def pixel_area_m2(src: Any) -> float | None:
    """Area of one pixel of ``src`` (a map) in square metres; ``None`` for a geographic CRS, where pixel areas vary."""
    t = src.transform
    area = abs(t.a * t.e - t.b * t.d)
    if src.crs is None:
        logger.warning("The map has no CRS; assuming its units are metres for the areas.")
        return area
    if src.crs.is_geographic:
        logger.warning("The map is in a geographic CRS: areas are not estimated, only proportions. "
                       "Reproject the map to a projected (equal-area) CRS for areas in hectares.")
        return None
    try:
        factor = src.crs.linear_units_factor[1]
    except Exception:  # CRS without linear units known to PROJ
        factor = 1.0
    return area * factor**2


def iter_windows(width: int, height: int, block: int = 512) -> Iterator[Window]:
    """Square windows of ``block`` pixels covering a ``width`` x ``height`` grid, row by row."""
    for row in range(0, height, block):
        for col in range(0, width, block):
            yield Window(col, row, min(block, width - col), min(block, height - row))


def valid_pixels(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The values of the ``valid`` pixels of a block ``data`` (bands, rows, columns), as (pixels, bands).

    The same values as ``data[:, valid].T``, with ``np.compress`` along the flattened pixels: five times faster than
    boolean indexing on a 64-band block of 512 x 512 px (12 against 66 ms), which every map window pays.
    """
    return np.compress(valid.ravel(), data.reshape(data.shape[0], -1), axis=1).T


def valid_mask(data: np.ndarray, nodata: float | Sequence[float | None] | None) -> np.ndarray:
    """Pixels of a ``(bands, rows, cols)`` block where every band holds a value (not nodata, not NaN).

    ``nodata`` is one value for all bands or one per band (rasterio's ``nodatavals``).
    """
    valid = np.ones(data.shape[1:], dtype=bool)
    if np.issubdtype(data.dtype, np.floating):
        valid &= np.isfinite(data).all(axis=0)
    per_band = list(nodata) if isinstance(nodata, (list, tuple)) else [nodata] * len(data)
    if len(set(per_band)) == 1:  # one value: compare all bands at once
        value = per_band[0]
        if value is not None and not np.isnan(value):
            valid &= (data != data.dtype.type(value)).all(axis=0)
        return valid
    return valid & band_validity(data, per_band).all(axis=0)


def band_validity(data: np.ndarray, nodata: Sequence[float | None]) -> np.ndarray:
    """Whether each band of ``data`` (bands, ...) holds a value at each pixel: not its own nodata, not NaN."""
    ok = np.isfinite(data) if np.issubdtype(data.dtype, np.floating) else np.ones(data.shape, dtype=bool)
    for band, value in enumerate(nodata):
        if value is not None and not np.isnan(value):
            ok[band] &= data[band] != data.dtype.type(value)
    return ok


GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
              "int32": "Int32", "float32": "Float32", "float64": "Float64"}


def shareable(path: str) -> str:
    """``path`` as a worker on another machine can open it: a VRT's own XML text, else the absolute path.

    The engine writes a VRT's sources as absolute paths, so a mosaic in this machine's temporary folder travels with
    the task (a regridded tile's warped VRT, in that folder too, does not: those tiles need a shared folder).
    """
    if path.lower().endswith(".vrt") and Path(path).is_file():
        return Path(path).read_text(encoding="utf-8")
    return gdal_location(path)


def gdal_location(path: str) -> str:
    """A raster's path as a VRT stores it: absolute for a file, as given for a GDAL virtual path or a URL."""
    return path if path.startswith("/vsi") or "://" in path else str(Path(path).resolve())


def write_stack_vrt(files: Sequence[str], path: Path, bands: Sequence[int] | None = None,
                    names: Sequence[str] | None = None) -> Path:
    """Write a VRT at ``path`` stacking the bands of ``files`` (one grid) in order; ``bands`` keeps only those.

    Each band keeps its own data type, nodata, scale and offset. ``names`` (one per file) name single-band files'
    bands (default: the file's name).

    Raises:
        InputError: when the files differ in size, grid or CRS, or a band number does not exist.

    """
    infos = [raster_info(p) for p in files]
    first = infos[0]
    for info in infos[1:]:
        if (info.width, info.height, info.transform, info.crs_wkt) != (first.width, first.height, first.transform,
                                                                       first.crs_wkt):
            raise InputError(
                f"Rasters {first.path} and {info.path} cannot be stacked as bands: their size, pixel grid or CRS "
                "differ. Resample them onto one grid first (Raster > Align Rasters)."
            )
    labels = list(names) if names else [Path(info.path).stem for info in infos]
    sources = [(info, b, label) for info, label in zip(infos, labels, strict=True) for b in range(1, info.count + 1)]
    if bands:
        wrong = [b for b in bands if not 1 <= int(b) <= len(sources)]
        if wrong:
            raise InputError(f"Band {wrong[0]} does not exist: {', '.join(files)} "
                             f"{'has' if len(files) == 1 else 'have'} {len(sources)} bands.")
        sources = [sources[int(b) - 1] for b in bands]
    entries = []
    for info, b, label in sources:  # each band keeps its own type, nodata, scale and offset
        value = info.nodatavals[b - 1]
        nodata = "" if value is None else f"<NoDataValue>{value!r}</NoDataValue>"
        scaling = ""
        if info.offsets[b - 1] != 0 or info.scales[b - 1] != 1:
            scaling = f"<Offset>{info.offsets[b - 1]!r}</Offset><Scale>{info.scales[b - 1]!r}</Scale>"
        name = info.band_names[b - 1] if info.count > 1 else label
        location = gdal_location(info.path)
        entries.append(
            f'<VRTRasterBand dataType="{GDAL_TYPES.get(info.dtypes[b - 1], "Float64")}" band="{len(entries) + 1}">'
            f"{nodata}<Description>{escape(name)}</Description>{scaling}<SimpleSource>"
            f'<SourceFilename relativeToVRT="0">{escape(location)}</SourceFilename>'
            f"<SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>"
        )
    a, b_, c, d, e, f = first.transform
    srs = f"<SRS>{escape(first.crs_wkt)}</SRS>" if first.crs_wkt else ""
    xml = (f'<VRTDataset rasterXSize="{first.width}" rasterYSize="{first.height}">{srs}'
           f"<GeoTransform>{c!r}, {a!r}, {b_!r}, {f!r}, {d!r}, {e!r}</GeoTransform>{''.join(entries)}</VRTDataset>")
    path.write_text(xml, encoding="utf-8")
    logger.info("Reading %d bands from %d file(s)%s.", len(entries), len(infos),
                f" (bands {', '.join(map(str, bands))})" if bands else "")
    return path


def temporary_path(path: str | os.PathLike[str], record: bool = True) -> Path:
    """A hidden temporary file name next to ``path``, recognisable by :data:`TMP_MARKER`.

    ``record`` notes it in the job's workspace, so that the next job removes it if this engine is killed; a job
    that sweeps its own folder (Map region's blocks) passes False rather than one line per block.
    """
    target = Path(path)
    token = f"{TMP_MARKER}{uuid.uuid4().hex[:8]}"
    if record:
        record_partial(target.parent, token)  # a killed engine's partial files are removed by the next job
    return target.with_name(f".{target.name}{token}{target.suffix}")


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Check that ``path`` can be written (its folder exists or can be made, and is writable)."""
    target = Path(path).expanduser().resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create the folder {target.parent} for output {target.name}: {exc}.") from exc
    if not os.access(target.parent, os.W_OK):
        raise OutputError(f"Cannot write {target}: the folder {target.parent} is not writable. Choose another one.")
    if target.is_dir():
        raise OutputError(f"Output {target} is a folder; give a file name.")
    return target


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], record: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write to; rename it to ``path`` on success, delete it on any failure.

    ``record``: see :func:`temporary_path`.

    Raises:
        OutputError: when the destination cannot be written.

    """
    target = check_writable(path)
    tmp = temporary_path(target, record)
    try:
        with full_disk_as_output_error(target):
            yield tmp
        for side_tmp, side_target in _side_cars(tmp, target):
            if side_tmp.exists():
                os.replace(side_tmp, side_target)
        os.replace(tmp, target)
    except BaseException:
        for leftover in [tmp, *(side for side, _ in _side_cars(tmp, target))]:
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise


@contextlib.contextmanager
def full_disk_as_output_error(*targets: Path) -> Iterator[None]:
    """Turn a failure while writing ``targets`` on a (nearly) full disk into an :class:`OutputError` naming it.

    The free space is measured when the failure arrives, before the partial files are removed; enter this inside the
    context that removes them.
    """
    try:
        yield
    except Exception as exc:
        if isinstance(exc, LandprobeError):
            raise
        for target in targets:
            try:
                free = shutil.disk_usage(target.parent).free
            except OSError:
                continue
            if free < FULL_DISK_BYTES:
                names = ", ".join(t.name for t in targets)
                raise OutputError(f"Cannot write {names}: the disk holding {target.parent} is full ({free:,} bytes "
                                  f"free; {type(exc).__name__}: {exc}). Free some space, or choose a folder on "
                                  "another disk.") from exc
        raise


def _side_cars(tmp: Path, target: Path) -> list[tuple[Path, Path]]:
    """Side-car files that follow a raster: GDAL's ``.aux.xml`` and ``.ovr``, and QGIS's default style ``.qml``."""
    pairs = [(Path(str(tmp) + ext), Path(str(target) + ext)) for ext in (".aux.xml", ".ovr")]
    return [*pairs, (tmp.with_suffix(".qml"), target.with_suffix(".qml"))]


def read_normalised(src: Any, bands: list[int], row0: int, col0: int, height: int, width: int, mean: np.ndarray,
                    std: np.ndarray, scaling: tuple[list[float], list[float]] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Bands ``bands`` of the window at (``row0``, ``col0``), which may reach outside the raster, normalised.

    ``scaling`` (scale and offset of each band of the raster, as :func:`band_scaling` gives them) turns the stored
    values into physical ones first, for a ``mean`` and ``std`` in physical units.

    Returns:
        The values (bands, height, width) as float32, 0 on nodata and outside the raster, and the valid mask.

    """
    data = np.zeros((len(bands), height, width), dtype="float32")
    valid = np.zeros((height, width), dtype=bool)
    r0, r1 = max(0, row0), min(src.height, row0 + height)
    c0, c1 = max(0, col0), min(src.width, col0 + width)
    if r1 <= r0 or c1 <= c0:
        return data, valid
    raw = read_block(src, Window(c0, r0, c1 - c0, r1 - r0), bands)
    ok = valid_mask(raw, band_nodata(src, bands))
    inner = data[:, r0 - row0:r1 - row0, c0 - col0:c1 - col0]
    shift, scale = np.asarray(mean, dtype="float64"), np.asarray(std, dtype="float64")
    if scaling is not None:  # ((x s + o) - mean) / std == (x - (mean - o) / s) / (std / s)
        gain = np.array([scaling[0][b - 1] for b in bands], dtype="float64")
        gain = np.where(gain != 0, gain, 1)
        shift = (shift - np.array([scaling[1][b - 1] for b in bands])) / gain
        scale = scale / gain
    np.subtract(raw, shift[:, None, None].astype("float32"), out=inner, casting="unsafe")
    inner /= scale[:, None, None].astype("float32")
    inner[:, ~ok] = 0
    valid[r0 - row0:r1 - row0, c0 - col0:c1 - col0] = ok
    return data, valid
