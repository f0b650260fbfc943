"""Labelled polygons (or points) to pixel samples that remember which polygon they came from.

Labels are read with geopandas, reprojected to the raster's CRS and burnt block by block onto the raster grid, so
memory stays bounded whatever the raster size. Every sample keeps its polygon's id: validation splits by polygon,
never by pixel.
"""

from __future__ import annotations

import colorsys
import contextlib
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio import features, windows
from rasterio.windows import Window

from ..core.cluster import run_tasks
from ..core.errors import InputError
from ..core.feedback import Feedback
from ..core.field_names import ID_NAMES, name_rank
from .rasters import (
    atomic_output,
    band_label,
    band_nodata,
    band_validity,
    iter_windows,
    open_raster,
    read_block,
    shareable,
)

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

logger = logging.getLogger(__name__)

#: A clear categorical palette (Tableau 20 reordered so that the first ten differ most).
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip


#: Colours that map readers expect for common land-cover names (after ESA WorldCover), matched on words of the name;
#: other classes take the next unused colour of :data:`PALETTE`.
LAND_COVER_COLORS = (
    (("water", "river", "lake", "sea", "ocean", "reservoir"), "#0064c8"),
    (("wetland", "marsh", "swamp", "bog"), "#0096a0"),
    (("mangrove",), "#00cf75"),
    (("forest", "tree", "trees", "woodland", "wood"), "#006400"),
    (("shrub", "shrubland", "scrub", "bush"), "#ffbb22"),
    (("grass", "grassland", "herbaceous", "pasture", "meadow", "savanna"), "#b5d25f"),
    (("crop", "crops", "cropland", "agriculture", "field", "fields", "cultivated"), "#f096ff"),
    (("urban", "built", "building", "buildings", "settlement", "city", "impervious", "road"), "#fa0000"),
    (("barren", "bare", "soil", "sand", "rock", "desert"), "#b4a078"),
    (("snow", "ice", "glacier"), "#f0f0f0"),
    (("cloud", "clouds"), "#dcdcdc"),
)


def default_colors(names: list[str]) -> list[str]:
    """A colour per class name.

    The land-cover convention when a word of the name says what it is, else the palette's next unused colour.
    """
    chosen: list[str | None] = []
    for name in names:
        words = set(re.findall(r"[a-z]+", name.lower()))
        chosen.append(next((color for keys, color in LAND_COVER_COLORS if words & set(keys)), None))
    free = iter([c for c in palette(len(names) + len(PALETTE)) if c not in chosen])
    return [c or next(free) for c in chosen]


def palette(n: int) -> list[str]:
    """``n`` distinct colours: :data:`PALETTE`, then hues spaced by the golden angle at two lightness levels."""
    colors = list(PALETTE[:n])
    seen = set(colors)
    for i in range(20 * n):  # about 1,800 distinct colours come out of this; beyond them, colours repeat
        if len(colors) >= n:
            break
        hue = (i * 0.618033988749895) % 1.0
        red, green, blue = colorsys.hls_to_rgb(hue, 0.45 if i % 2 else 0.65, 0.75)
        color = f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"
        if color not in seen:
            colors.append(color)
            seen.add(color)
    return [colors[i % len(colors)] for i in range(n)] if n else []


@dataclass(frozen=True)
class LabelClass:
    """One class: the code written in the map, the name shown in the legend and its colour (``#rrggbb``)."""

    code: int
    name: str
    color: str


@dataclass
class Samples:
    """Pixel samples: features, classes, polygons and positions.

    ``x`` (n, bands) holds the band values, ``y`` the class index into ``classes``, ``groups`` the polygon id, and
    ``rows`` and ``cols`` the pixel's position on the raster grid. ``empty_bands`` (1-based) are the bands that hold
    no value under any labelled pixel: their column of ``x`` holds nodata, and the samples are the pixels valid on
    every other band.
    """

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    classes: list[LabelClass]
    stats: dict[str, Any] = field(default_factory=dict)
    empty_bands: list[int] = field(default_factory=list)
    #: The value of each sample's polygon, for a regression (``None`` for classes).
    targets: np.ndarray | None = None


def _valid_color(color: str | None) -> str | None:
    """``color`` when it is a ``#rrggbb`` string, else ``None``."""
    return color.lower() if color and re.fullmatch(r"#[0-9a-fA-F]{6}", color) else None


def split_layer_uri(path: str) -> tuple[str, str | None]:
    """Split a QGIS-style ``file.gpkg|layername=roads`` source into the file and the layer name."""
    file_path, _, options = path.partition("|")
    layer = None
    for option in options.split("|"):
        key, _, value = option.partition("=")
        if key.strip() == "layername" and value:
            layer = value.strip()
    return file_path, layer


#: A class field is refused as an identifier when it holds one distinct value per feature on a layer of at least
#: this many features. Below it, a first layer with one polygon for each of up to 5 classes still trains (it cannot
#: be validated, and the log says so); from 6 features on, a layer of one feature per class is far more often an
#: identifier picked by mistake, and a second feature for any class lifts the refusal.
IDENTIFIER_MIN_FEATURES = 6
#: On a layer of at least this many features, a field with more classes than half the features (fewer than two
#: features per class on average, so most classes could not be both trained and validated) is refused.
MANY_FEATURES = 30
#: More classes than this, with fewer than :data:`MIN_FEATURES_PER_CLASS` features each on average, is a
#: measurement or a code rather than classes a classifier can learn; more classes with enough features each pass.
MAX_CLASSES = 100
MIN_FEATURES_PER_CLASS = 5


def likely_class_field(gdf: pd.DataFrame, exclude: Iterable[str] = ()) -> str | None:
    """The field of ``gdf`` most likely to hold the classes, or ``None``.

    A field can be a class field when it holds text or whole numbers, is not named like an identifier
    (:data:`ID_NAMES`) and has 2 to half as many distinct values as features (at least 2). Among those, in order: a
    text field whose name says class (:data:`CLASS_WORDS`, e.g. ``class``, ``label``, ``LC_TYPE``, ``class_name``),
    the best name first; a whole-number field with such a name; the first text field.

    Args:
        gdf: the label layer's features.
        exclude: fields not to propose (e.g. the one the user chose).

    """
    # Lazy: pandas comes with the label reading, not needed by every job.
    import pandas as pd

    skipped = set(exclude) | {"_class", "_group"}
    n = len(gdf)
    named, numbers, texts = [], [], []
    for position, column in enumerate(gdf.columns):
        if column in skipped or not isinstance(column, str) or ID_NAMES.match(column):
            continue
        values = gdf[column]
        is_text = pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values)
        is_whole = pd.api.types.is_integer_dtype(values)
        if not (is_text or is_whole):
            continue
        text = values.dropna().astype(str).str.strip()
        distinct = text[text != ""].nunique()
        if not 2 <= distinct <= max(2, n // 2):
            continue
        rank = name_rank(column)
        if rank is not None:
            (named if is_text else numbers).append((rank, position, column))
        elif is_text:
            texts.append(column)
    if named:
        return min(named)[2]
    if numbers:
        return min(numbers)[2]
    return texts[0] if texts else None


def _not_a_class_reason(n_features: int, n_classes: int, multipart: bool) -> str | None:
    """Why a field of ``n_classes`` distinct values over ``n_features`` features is not a class field, or ``None``.

    The rules of :data:`IDENTIFIER_MIN_FEATURES`, :data:`MANY_FEATURES` and :data:`MAX_CLASSES`. A layer of
    multi-part features with one value each is a layer dissolved by class, not an identifier: it passes.
    """
    if n_classes == n_features >= IDENTIFIER_MIN_FEATURES and not multipart:
        return "it looks like an identifier, not a class"
    if n_features >= MANY_FEATURES and n_classes > n_features / 2 and not multipart:
        return "fewer than two features per class, so it looks like an identifier or a measurement, not a class"
    if n_classes > MAX_CLASSES and n_features < MIN_FEATURES_PER_CLASS * n_classes:
        return (f"more than {MAX_CLASSES} classes with fewer than {MIN_FEATURES_PER_CLASS} features each on "
                "average, so it looks like a measurement or a code, not a class")
    return None


def check_class_field(gdf: gpd.GeoDataFrame, field_name: str, n_classes: int, name: str) -> None:
    """Refuse a class field whose values say it is an identifier or a measurement (:func:`_not_a_class_reason`).

    Never by its name alone: the field ``id`` of a layer whose ids are class codes (1 to 5 over 30 polygons) passes.

    Raises:
        InputError: naming the field, the layer, why, the likely class field when there is one, and what to do.

    """
    # Lazy: shapely comes with the label reading, not needed by every job.
    import shapely

    n = len(gdf)
    multipart = bool(n) and float((shapely.get_num_geometries(gdf.geometry.to_numpy()) > 1).mean()) > 0.5
    why = _not_a_class_reason(n, n_classes, multipart)
    if why is None:
        return
    guess = likely_class_field(gdf, exclude=[field_name])
    choose = (f"Choose the class field ({guess!r} looks like one)" if guess else
              "Choose the field that holds the classes")
    raise InputError(
        f"Field {field_name!r} of {name} has {n_classes} distinct values for {n} features: {why}. {choose}; if this "
        "is the class field, group its values into fewer classes (Field Calculator) and give each class at least "
        "two features, one to train and one to validate."
    )


def read_labels(path: str, field_name: str, crs_wkt: str | None, min_classes: int = 2,
                class_colors: dict[str, str] | None = None) -> tuple[gpd.GeoDataFrame, list[LabelClass]]:
    """Read a label layer, check its class field and reproject it to ``crs_wkt``.

    ``class_colors`` maps class values (as text) to ``#rrggbb`` colours, for example from the layer's categorized
    style; other classes get colours from :data:`PALETTE`.

    Returns:
        The features with a column ``_class`` (index into the classes) and ``_group`` (polygon id), and the
        classes sorted by code.

    Raises:
        InputError: when the layer is empty, the field is missing, empty, holds fewer than two classes, or looks like
            an identifier or a measurement rather than classes (:func:`check_class_field`).

    """
    # Lazy: geopandas takes about a second to import; only the jobs that read labels need it.
    import geopandas as gpd

    # Lazy: pandas comes with the label reading, not needed by every job.
    import pandas as pd

    file_path, layer = split_layer_uri(path)
    try:
        gdf = gpd.read_file(file_path, layer=layer) if layer else gpd.read_file(file_path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise InputError(f"Cannot read label layer {path}: {exc}") from exc
    name = layer or file_path
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.active_geometry_name is None:
        raise InputError(f"Label layer {name} is a table without geometry; give a polygon or point layer (for a CSV "
                         "with coordinates, load it in QGIS as a delimited-text layer with its CRS and save it as a "
                         "GeoPackage).")
    if len(gdf) == 0:
        raise InputError(f"Label layer {name} has no features. Draw or load labelled polygons first.")
    if field_name not in gdf.columns:
        fields = ", ".join(c for c in gdf.columns if c != gdf.geometry.name)
        raise InputError(f"Label layer {name} has no field {field_name!r}. Its fields are: {fields}.")
    gdf = _areas_or_points(gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].copy(), name)
    values = gdf[field_name]
    null = values.isna() | (values.astype(str).str.strip() == "")
    if null.all():
        raise InputError(f"Field {field_name!r} of label layer {name} is empty in every feature.")
    if null.any():
        logger.warning("Skipped %d features of %s whose field %r is empty.", int(null.sum()), name, field_name)
    gdf = gdf[~null].copy()
    values = gdf[field_name]
    if pd.api.types.is_numeric_dtype(values):
        as_int = values.astype("int64")
        if not np.allclose(values.to_numpy(dtype=float), as_int.to_numpy(dtype=float)):
            raise InputError(
                f"Field {field_name!r} of {name} holds decimal numbers; use a text field or whole-number class codes."
            )
        unique = sorted(set(as_int.tolist()))
        classes = [LabelClass(int(c), str(c), color) for c, color in zip(unique, palette(len(unique)), strict=True)]
        index = {c: i for i, c in enumerate(unique)}
        gdf["_class"] = as_int.map(index).astype("int32")
    else:
        text = values.astype(str).str.strip()
        unique = sorted(set(text.tolist()))
        classes = [LabelClass(i + 1, n, color) for i, (n, color) in enumerate(zip(unique, default_colors(unique),
                                                                                   strict=True))]
        index = {n: i for i, n in enumerate(unique)}
        gdf["_class"] = text.map(index).astype("int32")
    check_class_field(gdf, field_name, len(classes), name)
    if len(classes) < min_classes:
        raise InputError(
            f"Field {field_name!r} of {name} has a single class ({classes[0].name}); a classifier needs at least two."
        )
    if class_colors:
        classes = [LabelClass(c.code, c.name, _valid_color(class_colors.get(c.name)) or c.color) for c in classes]
    gdf["_group"] = np.arange(1, len(gdf) + 1, dtype="int32")
    source_crs = gdf.crs.to_string() if gdf.crs else "none"
    if crs_wkt is not None:
        if gdf.crs is None:
            logger.warning("Label layer %s has no CRS; assuming the raster's.", name)
            gdf = gdf.set_crs(crs_wkt)
        elif not gdf.crs.equals(crs_wkt):
            logger.info("Reprojecting labels from %s to the raster's CRS.", gdf.crs.to_string())
            gdf = gdf.to_crs(crs_wkt)
    finite = np.isfinite(gdf.geometry.bounds.to_numpy()).all(axis=1) if len(gdf) else np.ones(0, dtype=bool)
    if finite.any() and not finite.all():
        logger.warning("Skipped %d features of %s whose coordinates do not convert to the raster's CRS.",
                       int((~finite).sum()), name)
        gdf = gdf[finite].copy()
    elif len(gdf) and not finite.any():
        raise InputError(f"Label layer {name} cannot be placed on the raster: its coordinates do not convert from its "
                         f"CRS ({source_crs}) to the raster's. Set the layer's "
                         "real CRS (Layer Properties > Source) and try again.")
    invalid = ~gdf.geometry.is_valid
    if invalid.any():
        logger.warning("Repaired %d invalid geometries in %s.", int(invalid.sum()), name)
        gdf.loc[invalid, gdf.geometry.name] = gdf.geometry[invalid].make_valid()
    return gdf, classes


def _areas_or_points(gdf: gpd.GeoDataFrame, name: str) -> gpd.GeoDataFrame:
    """Keep polygons and points; reduce geometry collections to their polygons (or points); refuse lines by name."""
    # Lazy: shapely comes with the label reading, not needed by every job.
    import shapely

    def kept_parts(geometry: Any) -> Any:
        if geometry.geom_type != "GeometryCollection":
            return geometry
        parts = [g for g in shapely.get_parts(geometry) if g.geom_type in ("Polygon", "MultiPolygon")]
        parts = parts or [g for g in shapely.get_parts(geometry) if g.geom_type in ("Point", "MultiPoint")]
        return shapely.union_all(parts) if parts else None

    had = len(gdf)
    gdf[gdf.geometry.name] = gdf.geometry.apply(kept_parts)
    gdf = gdf[gdf.geometry.notna()]
    if had and not len(gdf):
        raise InputError(f"Label layer {name} holds no polygons or points (only geometry collections of lines); "
                         "draw polygons, or buffer the lines (Vector geometry > Buffer) into polygons first.")
    kinds = gdf.geom_type
    lines = kinds.str.contains("LineString|LinearRing", regex=True)
    if len(gdf) and lines.all():
        raise InputError(f"Label layer {name} holds lines; a classifier learns from polygons or points. Draw polygons, "
                         "or buffer the lines (Vector geometry > Buffer) into polygons first.")
    if lines.any():
        logger.warning("Skipped %d line features of %s: only polygons and points are labels.", int(lines.sum()), name)
    return gdf[~lines].copy()


def burn_classes(features_: gpd.GeoDataFrame, shape: tuple[int, int],
                 transform: Any) -> tuple[np.ndarray, np.ndarray]:
    """Burn labelled features onto a grid, one class at a time.

    Returns:
        The class index of each pixel (-1 where no feature lies) and how many different classes claim it; pixels
        claimed by more than one class are ambiguous and should be dropped.

    """
    index = np.full(shape, -1, dtype="int32")
    claims = np.zeros(shape, dtype="uint8")
    class_of_feature = features_["_class"].to_numpy()
    for c in np.unique(class_of_feature):
        geoms = features_.geometry[class_of_feature == c]
        mask = features.rasterize(((g, 1) for g in geoms), out_shape=shape, transform=transform, fill=0,
                                  dtype="uint8").astype(bool)
        claims += mask
        index[mask] = c
    return index, claims


def pixel_window(window: Any, width: int, height: int) -> Any:
    """The whole-pixel window that covers ``window``, clipped to a ``width`` x ``height`` grid."""
    col0 = max(0, math.floor(window.col_off))
    row0 = max(0, math.floor(window.row_off))
    col1 = min(width, math.ceil(window.col_off + window.width))
    row1 = min(height, math.ceil(window.row_off + window.height))
    return Window(col0, row0, max(0, col1 - col0), max(0, row1 - row0))


def read_values(path: str, field_name: str, crs_wkt: str | None) -> tuple[gpd.GeoDataFrame, list[LabelClass]]:
    """Read a layer whose field holds a quantity (biomass, cover...), reprojected to ``crs_wkt``.

    Returns its features with ``_value``, ``_group`` and ``_class`` (0 for every feature), and the one "class" they
    share.

    Raises:
        InputError: when the layer cannot be read or is empty, the field is missing or not numeric, or holds no
            value.

    """
    # Lazy: geopandas takes about a second to import; only the jobs that read labels need it.
    import geopandas as gpd
    import pandas as pd

    file_path, layer = split_layer_uri(path)
    try:
        gdf = gpd.read_file(file_path, layer=layer) if layer else gpd.read_file(file_path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise InputError(f"Cannot read label layer {path}: {exc}") from exc
    name = layer or file_path
    if len(gdf) == 0:
        raise InputError(f"Label layer {name} has no features. Draw or load polygons with values first.")
    if field_name not in gdf.columns:
        fields = ", ".join(c for c in gdf.columns if c != gdf.geometry.name)
        raise InputError(f"Label layer {name} has no field {field_name!r}. Its fields are: {fields}.")
    gdf = _areas_or_points(gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].copy(), name)
    numbers = pd.to_numeric(gdf[field_name], errors="coerce")
    text = gdf[field_name].notna() & numbers.isna()
    if text.any():
        raise InputError(f"Field {field_name!r} of {name} holds text ({gdf[field_name][text].iloc[0]!r}), not a "
                         "number: choose a numeric field for a regression (a class field trains a classifier).")
    if numbers.isna().all():
        raise InputError(f"Field {field_name!r} of label layer {name} is empty in every feature.")
    if numbers.isna().any():
        logger.warning("Skipped %d features of %s whose field %r is empty.", int(numbers.isna().sum()), name,
                       field_name)
    keep = numbers.notna()
    gdf = gdf[keep].copy()
    gdf["_value"] = numbers[keep].astype("float64")
    gdf["_class"] = np.zeros(len(gdf), dtype="int32")
    gdf["_group"] = np.arange(1, len(gdf) + 1, dtype="int32")
    if crs_wkt and gdf.crs is not None:
        gdf = gdf.to_crs(crs_wkt)
    return gdf, [LabelClass(1, field_name, "#000000")]


def merge_labels(first: str, more: Sequence[str], field_name: str, output: str) -> str:
    """Write the features of ``first`` and ``more`` into one GeoPackage at ``output``, in ``first``'s CRS.

    Only ``field_name`` and the geometry are kept: polygons and the points a user labelled where *Suggest labels*
    asked. Features whose field is empty (suggestions not labelled yet) are left out, with a log line.

    Raises:
        InputError: naming a layer that cannot be read or has no such field.

    """
    # Lazy: the vector stack is needed only here.
    import geopandas as gpd
    import pandas as pd

    frames = []
    for path in (first, *more):
        file_path, layer = split_layer_uri(path)
        try:
            frame = gpd.read_file(file_path, layer=layer) if layer else gpd.read_file(file_path)
        except Exception as exc:  # pyogrio raises several types for unreadable files
            raise InputError(f"Cannot read label layer {path}: {exc}") from exc
        if field_name not in frame.columns:
            raise InputError(f"Label layer {path} has no field {field_name!r}: give the added labels the same field "
                             "as the polygons.")
        empty = frame[field_name].isna() | (frame[field_name].astype(str).str.strip() == "")
        if empty.any() and path != first:
            logger.info("%d features of %s have no %r yet and are left out.", int(empty.sum()), path, field_name)
            frame = frame[~empty]
        if frames and frame.crs is not None and frames[0].crs is not None:
            frame = frame.to_crs(frames[0].crs)
        frame = frame[[field_name, frame.geometry.name]]
        if frames and pd.api.types.is_numeric_dtype(frames[0][field_name]):  # the polygons hold numbers: so must these
            numbers = pd.to_numeric(frame[field_name], errors="coerce")
            bad = frame[field_name].notna() & numbers.isna()
            if bad.any():
                raise InputError(f"Label layer {path}: field {field_name!r} holds {frame[field_name][bad].iloc[0]!r}, "
                                 "not a number like the polygons' values; correct it (a decimal point, not a comma).")
            frame = frame.assign(**{field_name: numbers})
        frames.append(frame if frame.geometry.name == "geometry" else frame.rename_geometry("geometry"))
    merged = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=frames[0].crs)
    if pd.api.types.is_numeric_dtype(frames[0][field_name]):
        merged[field_name] = pd.to_numeric(merged[field_name])
    else:
        merged[field_name] = merged[field_name].astype(str)
    with atomic_output(output) as tmp:
        merged.to_file(tmp, driver="GPKG", layer=Path(output).stem)
    logger.info("Training on %d features: %s.", len(merged), ", ".join(f"{len(f)} from {p}"
                                                                      for f, p in zip(frames, (first, *more),
                                                                                      strict=True)))
    return output


def polygon_values(gdf: gpd.GeoDataFrame, groups: np.ndarray) -> np.ndarray:
    """The value (``_value``, :func:`read_values`) of each sample's polygon, from its polygon id (``_group``)."""
    lookup = np.zeros(int(gdf["_group"].max()) + 1, dtype="float64")
    lookup[gdf["_group"].to_numpy()] = gdf["_value"].to_numpy()
    return lookup[groups]


def labels_over_raster(src: Any, labels: str, field_name: str, class_colors: dict[str, str] | None = None,
                       values: bool = False) -> tuple[gpd.GeoDataFrame, list[LabelClass], Any]:
    """The labels in the open raster's CRS that overlap it, their classes, and the pixel window they cover.

    With ``values``, the field holds a quantity (:func:`read_values`): one "class" holds every feature.

    Raises:
        InputError: when no label overlaps the raster (the message gives both extents).

    """
    # Lazy: shapely comes with the label reading, not needed by every job.
    from shapely.geometry import box

    crs = src.crs.to_wkt() if src.crs else None
    gdf, classes = read_values(labels, field_name, crs) if values else read_labels(labels, field_name, crs,
                                                                                    class_colors=class_colors)
    inside = gdf.geometry.intersects(box(*src.bounds))
    if not inside.any():
        raise InputError(
            f"No label of {labels} overlaps raster {src.name}. Raster extent {tuple(round(b) for b in src.bounds)}, "
            f"labels extent {tuple(round(b) for b in gdf.total_bounds)} (in the raster's CRS)."
        )
    if (~inside).any():
        logger.warning("%d label features lie outside the raster and were ignored.", int((~inside).sum()))
    gdf = gdf[inside]
    window = pixel_window(windows.from_bounds(*gdf.total_bounds, transform=src.transform), src.width, src.height)
    return gdf, classes, window


#: Share of the labelled pixels lost to nodata above which the log says so.
NODATA_SHARE_NOTED = 0.2


def sample_pixels(raster: str, labels: str, field_name: str, feedback: Feedback | None = None,
                  class_colors: dict[str, str] | None = None, client: Any | None = None,
                  values: bool = False) -> Samples:
    """Read the raster's band values under the labels, skipping nodata, block by block.

    A band that holds no value (nodata or NaN) under any labelled pixel, such as a hyperspectral water-absorption
    band, does not make every pixel nodata: it is listed in ``empty_bands`` (and logged), and a pixel is kept when
    every other band holds a value. Its column of ``x`` holds nodata, for the caller to leave out.

    With a Dask ``client``, the blocks under labels are read as tasks on its cluster (the workers must reach
    ``raster`` at the same path); the samples are the same, in the same order. With ``values``, the field holds a
    quantity (:func:`read_values`) and ``targets`` holds each sample's polygon value.

    Raises:
        InputError: when the labels do not overlap the raster, cover only nodata pixels, or every band is empty.

    """
    # Lazy: shapely comes with the label reading, not needed by every job.
    from shapely.geometry import box

    feedback = feedback or Feedback()
    with open_raster(raster) as src:
        gdf, classes, label_window = labels_over_raster(src, labels, field_name, class_colors, values)
        nodata = band_nodata(src)
        names = [d or f"band {i}" for i, d in enumerate(src.descriptions, start=1)]
        blocks = list(iter_windows(int(label_window.width), int(label_window.height), block=1024))
        tasks = []
        dataset = shareable(raster) if client is not None else src  # a worker elsewhere opens its own copy
        for block in blocks:  # the blocks that labels touch, each with its labels
            win = windows.Window(label_window.col_off + block.col_off, label_window.row_off + block.row_off,
                                 block.width, block.height)
            hits = gdf.sindex.query(box(*windows.bounds(win, src.transform)))
            if len(hits):
                tasks.append((dataset, gdf.iloc[hits], win, nodata))
        parts = run_tasks(_sample_block, tasks, client, feedback, "Reading pixels under the labels")
        n_bands = src.count
    conflicts = sum(p[-1] for p in parts)
    xs, ys, groups, rows, cols, oks = ([p[i] for p in parts] for i in range(6))
    if conflicts:
        logger.warning("Dropped %d pixels claimed by labels of different classes (overlapping features).", conflicts)
    n_labelled = sum(len(g) for g in groups)
    if not n_labelled:
        raise InputError(
            f"The labels of {labels} claim no pixel of {raster}: no pixel centre lies in a feature of a single class "
            "(features smaller than a pixel, or overlapping features of different classes). Draw larger polygons."
        )
    ok = np.unpackbits(np.concatenate(oks, axis=1), axis=0, count=n_bands).astype(bool)  # (bands, pixels)
    empty = np.flatnonzero(~ok.any(axis=1))
    keep = np.delete(ok, empty, axis=0).all(axis=0) & (len(empty) < n_bands)
    if not keep.any():
        what = "every band is nodata" if len(empty) == n_bands else "each of them is nodata in some band"
        raise InputError(
            f"The labels of {labels} cover only nodata pixels of {raster} ({what} under the {n_labelled} labelled "
            "pixels): check the raster's nodata value, or draw labels where the image has data."
        )
    if len(empty):
        logger.warning("Left out %d band(s) of %s that hold no value under the labels (nodata or NaN): %s.",
                       len(empty), raster, ", ".join(band_label(b + 1, names[b]) for b in empty))
    x, y, g = np.concatenate(xs)[keep], np.concatenate(ys)[keep], np.concatenate(groups)[keep]
    lost = n_labelled - len(y)
    if lost > NODATA_SHARE_NOTED * n_labelled:
        logger.info("%d of the %d labelled pixels (%.0f %%) are nodata in some band of %s and were left out.", lost,
                    n_labelled, 100 * lost / n_labelled, raster)
    stats = {"n_samples": len(y), "n_polygons": len(np.unique(g)), "conflicting_pixels": conflicts,
             "labelled_pixels_on_nodata": lost,
             "samples_per_class": {c.name: int((y == i).sum()) for i, c in enumerate(classes)}}
    logger.info("Sampled %d pixels from %d polygons: %s.", stats["n_samples"], stats["n_polygons"],
                ", ".join(f"{k} {v}" for k, v in stats["samples_per_class"].items()))
    targets = polygon_values(gdf, g) if values else None
    return Samples(x=x, y=y, groups=g, rows=np.concatenate(rows)[keep], cols=np.concatenate(cols)[keep],
                   classes=classes, stats=stats, empty_bands=[int(b) + 1 for b in empty], targets=targets)


def _sample_block(raster: Any, sub: gpd.GeoDataFrame, win: Window, nodata: list[float | None]
                  ) -> tuple[Any, ...]:
    """The labelled pixels of one block of ``raster`` (an open dataset, or a path on a Dask worker).

    Returns:
        Values (pixels, bands), class indices, polygon ids, rows, columns, per-band validity packed 8 bands a byte,
        and the count of pixels claimed by labels of different classes.

    """
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(open_raster(raster)) if isinstance(raster, str) else raster
        transform = src.window_transform(win)
        shape = (int(win.height), int(win.width))
        burnt = features.rasterize(zip(sub.geometry, sub["_group"], strict=True), out_shape=shape,
                                   transform=transform, fill=0, dtype="int32")
        index, claims = burn_classes(sub, burnt.shape, transform)
        labelled = claims == 1
        if labelled.any():
            data = read_block(src, win)[:, labelled]  # (bands, labelled pixels)
        else:  # nothing to read; the conflicts still count
            data = np.empty((src.count, 0), dtype="float32")
    r, c = np.nonzero(labelled)
    # per band and pixel: does it hold a value? Packed 8 bands a byte, to stay small with 200 bands.
    return (data.T.astype("float32"), index[labelled], burnt[labelled], (r + int(win.row_off)).astype("int32"),
            (c + int(win.col_off)).astype("int32"), np.packbits(band_validity(data, nodata), axis=0),
            int((claims > 1).sum()))
