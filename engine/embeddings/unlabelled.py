"""Features of a raster without class labels: for clustering, similarity search and change.

:func:`raster_recipe` says how the raster's values become features (an embedding raster's dimensions, or band values
with their scale and offset tags); :func:`sample_features` draws a seeded sample of valid pixels from the whole
raster (read decimated, so memory stays bounded); :func:`features_under` reads the pixels under a layer of example
points or polygons. The recipes are those of :mod:`engine.embeddings.features`, so that a model built on them is
applied by *Classify raster* and *Map region* like any other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rasterio import features, windows
from rasterio.errors import WindowError

from ..core.errors import InputError
from ..io.rasters import band_nodata, open_raster, raster_info, read_block, valid_mask
from .features import compute_features, feature_names, make_recipe
from .inputs import describe_embeddings

#: Feature sources: ``auto`` takes embeddings for a raster written by *Extract embeddings*, an AlphaEarth or TESSERA
#: file, and band values for anything else.
FEATURE_CHOICES = ("auto", "bands", "embeddings")
#: Values read for a sample (pixels x bands), at most: the raster is read decimated to stay under it.
SAMPLE_READ_VALUES = 50_000_000


def raster_recipe(path: str, features_: str = "auto") -> tuple[dict[str, Any], list[str]]:
    """The feature recipe of the raster at ``path`` and the feature names.

    Raises:
        InputError: for an unknown choice, or ``embeddings`` asked of a raster that holds none.

    """
    if features_ not in FEATURE_CHOICES:
        raise InputError(f"Unknown features {features_!r}; choose one of: {', '.join(FEATURE_CHOICES)}.")
    source = None
    if features_ != "bands":
        try:
            source = describe_embeddings(path)
        except InputError:
            if features_ == "embeddings":
                raise
        if features_ == "auto" and source is not None and source.kind not in ("landprobe", "alphaearth", "tessera"):
            source = None  # floating-point bands without an embedding's description: band values
    if source is not None:
        return ({"recipe": "embeddings", "embedding": source.as_dict()},
                [f"dimension {i}" for i in range(source.dim)])
    info = raster_info(path)
    recipe = make_recipe(list(info.band_names))
    if any(v != 1 for v in info.scales) or any(v != 0 for v in info.offsets):
        recipe |= {"scales": list(info.scales), "offsets": list(info.offsets)}
    return recipe, feature_names(recipe, list(info.band_names))


def _nodata(src: Any, recipe: dict[str, Any]) -> list[float | None]:
    """Each band's nodata, or the embedding's own (AlphaEarth's -128) when the recipe has one."""
    override = recipe.get("embedding", {}).get("nodata")
    return [override] * src.count if override is not None else band_nodata(src)


def sample_features(path: str, recipe: dict[str, Any], size: int, seed: int) -> np.ndarray:
    """``size`` valid pixels drawn at random (seeded) from the raster, as features (float64).

    The pixels come from whole internal blocks of the raster (tiles or strips) drawn at random until about
    :data:`SAMPLE_READ_VALUES` valid values are found, each block decoded once: a sample of a large raster costs a
    fraction of a full read. A raster smaller than that is read whole.

    Raises:
        InputError: when the raster holds no valid pixel.

    """
    values, _, _ = sample_pixels_at(path, recipe, size, seed)
    return compute_features(values, recipe).astype("float64")


def sample_pixels_at(path: str, recipe: dict[str, Any], size: int, seed: int) -> tuple[np.ndarray, np.ndarray,
                                                                                       np.ndarray]:
    """:func:`sample_features`' pixels as stored (n, bands), with their rows and columns on the raster's grid.

    Raises:
        InputError: when the raster holds no valid pixel.

    """
    with open_raster(path) as src:
        nodata = _nodata(src, recipe)
        budget = max(1, SAMPLE_READ_VALUES // src.count)  # pixels
        if src.width * src.height <= budget:
            windows_ = [windows.Window(0, 0, src.width, src.height)]
        else:
            blocks = [w for _, w in src.block_windows(1)]
            windows_ = [blocks[i] for i in np.random.default_rng(seed).permutation(len(blocks))]
        parts, rows, cols, found = [], [], [], 0
        for window in windows_:  # until enough valid pixels (a sparse mosaic's blocks may be mostly nodata)
            if found >= budget:
                break
            block = read_block(src, window)
            valid = valid_mask(block, nodata)
            r, c = np.nonzero(valid)
            parts.append(block[:, valid])
            rows.append(r + int(window.row_off))
            cols.append(c + int(window.col_off))
            found += len(r)
        values = np.concatenate(parts, axis=1).T
    if not len(values):
        raise InputError(f"Raster {path} holds no valid pixel (every pixel is nodata in some band): check its "
                         "nodata value.")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(values), size=min(size, len(values)), replace=False))
    return values[chosen], np.concatenate(rows)[chosen], np.concatenate(cols)[chosen]


def features_under(path: str, layer: str, recipe: dict[str, Any], what: str = "examples") -> np.ndarray:
    """The features of the valid pixels under the points or polygons of ``layer``.

    A pixel is under a polygon when its centre is inside, under a point when it holds the point.

    Raises:
        InputError: when the layer cannot be read, does not overlap the raster, or covers no valid pixel.

    """
    # Lazy: the vector stack is needed only here.
    import geopandas as gpd
    from shapely.geometry import box

    try:
        frame = gpd.read_file(layer)
    except Exception as exc:  # pyogrio's and GDAL's errors for a file that is not a vector layer
        raise InputError(f"Cannot read the {what} layer {layer} ({exc}): give a vector file (GeoPackage, "
                         "Shapefile, GeoJSON) of points or polygons.") from None
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    frame = frame.explode(index_parts=False)  # a multi-part feature across the scene: each part its own window
    with open_raster(path) as src:
        if frame.crs is not None and src.crs is not None:
            frame = frame.to_crs(src.crs)
        frame = frame[frame.geometry.intersects(box(*src.bounds))]
        if frame.empty:
            raise InputError(f"No feature of the {what} layer {layer} lies on raster {path}: draw them on the "
                             "raster, or check both layers' CRS.")
        full = windows.Window(0, 0, src.width, src.height)
        parts = []
        for geometry in frame.geometry:  # each feature's own window: scattered examples read a few blocks
            window = windows.from_bounds(*geometry.bounds, transform=src.transform).round_offsets()
            try:
                window = windows.Window(window.col_off, window.row_off, int(np.ceil(window.width)) + 1,
                                        int(np.ceil(window.height)) + 1).intersection(full)
            except WindowError:  # touches the raster's edge only
                continue
            burnt = features.rasterize([(geometry, 1)], out_shape=(int(window.height), int(window.width)),
                                       transform=src.window_transform(window), fill=0, dtype="uint8")
            if burnt.any():
                data = read_block(src, window)
                parts.append(data[:, valid_mask(data, _nodata(src, recipe)) & (burnt == 1)])
        data = np.concatenate(parts, axis=1) if parts else np.empty((src.count, 0))
    if not data.shape[1]:
        raise InputError(f"The {what} of {layer} cover no valid pixel of {path} (outside it, on nodata, or "
                         "polygons smaller than a pixel): draw them where the image has data.")
    return compute_features(data.T, recipe).astype("float64")
