"""Polygon support: a value that belongs to a whole polygon learned from the polygon's pixels taken together.

A plot's biomass or a cell's cover fraction is a property of an area, not of each pixel in it: the pixels of one
plot differ (a gap, a crown, a shadow) while they share one value. Pixel by pixel, a model learns each pixel's band
values against the plot's value; with polygon support it learns the plot's distribution of values instead: per
feature the mean, the standard deviation and the 10th, 50th and 90th percentiles (:data:`STATS`) of the plot's valid
pixels, one sample per polygon. Texture and mixture (the spread inside the plot) then count, which a single pixel
cannot show.

The map applies such a model over the same support: square cells of :func:`cell_size` pixels (the side of a typical
polygon: the square root of the median pixels per polygon) on a grid from the raster's origin, each cell's
statistics computed from its valid pixels (:func:`aggregate_cells`) and its value given to every valid pixel in it.
"""

from __future__ import annotations

import warnings

import numpy as np

#: The statistics of a polygon's (or a map cell's) pixels, per feature, in this order.
STATS = ("mean", "std", "p10", "p50", "p90")
#: Median pixels per polygon below which polygon support is not tried (points, one-pixel polygons).
MIN_POLYGON_PIXELS = 4
#: Share of a map cell's pixels that must be valid for the cell to get a value.
MIN_CELL_VALID = 0.5


def aggregate(x: np.ndarray) -> np.ndarray:
    """Statistics of each set of pixels: ``x`` is (sets, pixels, features) with NaN where a pixel is missing.

    Returns:
        (sets, 5 x features), float32: the means, then the standard deviations, then the 10th, 50th and 90th
        percentiles of every feature (:data:`STATS`). A set without any pixel gives NaN.

    Sets without a missing pixel (most map cells) take NumPy's plain reductions: ``nanpercentile`` loops in Python
    over every set and feature, about 40 times slower on a 512 px window.

    """
    out = np.full((x.shape[0], len(STATS) * x.shape[2]), np.nan, dtype="float32")
    full = ~np.isnan(x).any(axis=(1, 2))
    if full.any():
        whole = x[full]
        out[full] = np.concatenate([whole.mean(axis=1), whole.std(axis=1),
                                    *np.percentile(whole, [10, 50, 90], axis=1)], axis=1)
    if (~full).any():
        with warnings.catch_warnings():  # an empty set's NaN is expected: the caller leaves it out
            warnings.simplefilter("ignore", RuntimeWarning)
            part = x[~full]
            out[~full] = np.concatenate([np.nanmean(part, axis=1), np.nanstd(part, axis=1),
                                         *np.nanpercentile(part, [10, 50, 90], axis=1)], axis=1)
    return out


def aggregate_groups(x: np.ndarray, groups: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                       np.ndarray]:
    """One sample per polygon: the statistics of its pixels' features, its value and its id.

    Args:
        x: features of the pixels (n, f).
        groups: each pixel's polygon id (n,).
        values: each pixel's value (its polygon's) (n,).

    Returns:
        The aggregated features (polygons, 5 f), the polygons' values and their ids, in the order of the ids.

    """
    ids, first, inverse, counts = np.unique(groups, return_index=True, return_inverse=True, return_counts=True)
    padded = np.full((len(ids), int(counts.max()), x.shape[1]), np.nan, dtype="float32")
    order = np.argsort(inverse, kind="stable")
    slot = np.arange(len(groups)) - np.repeat(np.cumsum(counts) - counts, counts)  # rank inside its polygon
    padded[inverse[order], slot] = x[order]
    return aggregate(padded), np.asarray(values, dtype="float64")[first], ids


def cell_size(sizes: np.ndarray) -> int:
    """The side, in pixels, of the map's cells: the square root of the median polygon size, at least 2.

    ``sizes`` are the polygons' pixel counts, taken before any subsample.
    """
    return max(2, round(float(np.sqrt(np.median(sizes)))))


def aggregate_cells(features: np.ndarray, cell: int, inside: tuple[int, int] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The statistics of every ``cell`` x ``cell`` block of a window of per-pixel features.

    Args:
        features: (f, height, width) with NaN where a pixel is not valid; height and width multiples of ``cell``.
        cell: the cells' side in pixels.
        inside: the (height, width) of the part that lies on the raster (the rest pads the last cells to whole
            ones); default all. A cell cut by the raster's edge needs half of its pixels *on the raster* valid.

    Returns:
        The cells' aggregated features (rows, cols, 5 f) and whether each cell holds enough valid pixels
        (:data:`MIN_CELL_VALID`).

    """
    f, height, width = features.shape
    rows, cols = height // cell, width // cell
    blocks = features.reshape(f, rows, cell, cols, cell).transpose(1, 3, 2, 4, 0).reshape(rows * cols, cell * cell, f)
    on_raster = np.zeros((height, width), dtype=bool)
    inside_rows, inside_cols = inside or (height, width)
    on_raster[:inside_rows, :inside_cols] = True
    area = on_raster.reshape(rows, cell, cols, cell).sum(axis=(1, 3)).reshape(-1)
    valid = (~np.isnan(blocks).any(axis=2)).sum(axis=1) >= np.maximum(1, MIN_CELL_VALID * area)
    valid &= area > 0
    out = np.full((rows * cols, len(STATS) * f), np.nan, dtype="float32")
    if valid.any():
        out[valid] = aggregate(blocks[valid])
    return out.reshape(rows, cols, -1), valid.reshape(rows, cols)
