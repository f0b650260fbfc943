"""Labelled cells of an embedding grid: a cell belongs to a class when that class covers enough of it.

An embedding cell (a patch of 16 x 16 pixels, say) is rarely inside one polygon. Each cell is cut into
``supersample`` x ``supersample`` sub-cells, the polygons are burnt at that resolution, and the cell takes the class
covering most of it, provided that class covers at least ``min_coverage`` of the cell; sub-cells claimed by polygons
of different classes count for none. The cell's polygon id (for validation by polygon groups) is the polygon of that
class covering most of it. Cells are read block by block, so memory stays bounded.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import numpy as np
from rasterio import features, windows
from rasterio.transform import Affine

from ..core.cluster import run_tasks
from ..core.errors import InputError
from ..core.feedback import Feedback
from ..io.labels import Samples, burn_classes, labels_over_raster, polygon_values
from ..io.rasters import band_nodata, iter_windows, open_raster, read_block, shareable, valid_mask

logger = logging.getLogger(__name__)


def _mode_per_row(values: np.ndarray) -> np.ndarray:
    """The most frequent non-negative value of each row (rows hold at least one)."""
    s = np.sort(values, axis=1)
    n, m = s.shape
    position = np.arange(m)
    change = np.ones_like(s, dtype=bool)
    change[:, 1:] = s[:, 1:] != s[:, :-1]
    start = np.maximum.accumulate(np.where(change, position, 0), axis=1)
    run = np.where(s >= 0, position - start + 1, 0)  # length of the run so far; largest at a run's end
    return s[np.arange(n), run.argmax(axis=1)]


def _label_block(sub: Any, win: Any, src: Any, factor: int, n_classes: int,
                 min_coverage: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Class index (-1: none), polygon id and coverage of the cells of one window, plus dropped and conflict counts."""
    h, w = int(win.height), int(win.width)
    fine = src.window_transform(win) * Affine.scale(1 / factor)
    shape = (h * factor, w * factor)
    groups = features.rasterize(zip(sub.geometry, sub["_group"], strict=True), out_shape=shape, transform=fine,
                                fill=0, dtype="int32")
    index, claims = burn_classes(sub, shape, fine)
    conflicts = int((claims > 1).sum())
    index[claims != 1] = -1

    def per_cell(a: np.ndarray) -> np.ndarray:
        return a.reshape(h, factor, w, factor).transpose(0, 2, 1, 3).reshape(h, w, factor * factor)

    cells = per_cell(index)
    counts = np.stack([(cells == c).sum(axis=2) for c in range(n_classes)], axis=2)
    best = counts.argmax(axis=2)
    coverage = counts.max(axis=2) / factor**2
    touched = coverage > 0
    labelled = coverage >= min_coverage
    cls = np.where(labelled, best, -1).astype("int32")
    group = np.zeros((h, w), dtype="int32")
    if labelled.any():
        g = per_cell(groups)[labelled]
        g = np.where(cells[labelled] == best[labelled][:, None], g, -1)
        group[labelled] = _mode_per_row(g)
    return cls, group, coverage, int((touched & ~labelled).sum()), conflicts


def _cell_block(raster: Any, sub: Any, win: Any, supersample: int, n_classes: int, min_coverage: float,
                nodatavals: list[float | None]) -> tuple[tuple[np.ndarray, ...] | None, int, int, int]:
    """The labelled cells of one block of ``raster`` (an open dataset, or a path on a Dask worker).

    Returns:
        Values, classes, polygon ids, rows and columns of the cells kept (``None``: none), and the counts of cells
        under the coverage, of conflicting sub-cells and of labelled cells on nodata.

    """
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(open_raster(raster)) if isinstance(raster, str) else raster
        cls, group, _, dropped, conflicts = _label_block(sub, win, src, supersample, n_classes, min_coverage)
        if not (cls >= 0).any():
            return None, dropped, conflicts, 0
        data = read_block(src, win)
    ok = valid_mask(data, nodatavals)
    keep = (cls >= 0) & ok
    r, c = np.nonzero(keep)
    part = (data[:, keep].T, cls[keep], group[keep], r + int(win.row_off), c + int(win.col_off)) if keep.any() else None
    return part, dropped, conflicts, int(((cls >= 0) & ~ok).sum())


def sample_cells(raster: str, labels: str, field_name: str, min_coverage: float = 0.5, supersample: int = 8,
                 nodata: float | None = None, feedback: Feedback | None = None,
                 class_colors: dict[str, str] | None = None, client: Any | None = None,
                 values: bool = False) -> Samples:
    """Embedding values of the cells the labels cover enough (see the module notes).

    Args:
        raster: the embedding raster.
        labels: polygons (or points: a point covers no area, so use polygons) with the class field.
        field_name: the class field.
        min_coverage: least share of a cell the majority class must cover (0 to 1).
        supersample: sub-cells per cell side used to measure coverage.
        nodata: a nodata value overriding the raster's (AlphaEarth's -128).
        feedback: progress and cancel.
        class_colors: ``#rrggbb`` per class value, as for :func:`engine.io.labels.read_labels`.
        client: a Dask client: the blocks under labels are read as tasks on its cluster (the workers must reach
            ``raster`` at the same path); the samples are the same, in the same order.
        values: the field holds a quantity (:func:`engine.io.labels.read_values`): a cell covered enough by the
            polygons takes the value of the polygon covering most of it (in ``targets``).

    Raises:
        InputError: when no cell is covered enough, the labels miss the raster, or the coverage is out of range.

    """
    # Lazy: shapely comes with the label reading, not needed by every job.
    from shapely.geometry import box

    if not 0 < min_coverage <= 1:
        raise InputError(f"The minimum coverage must be above 0 and at most 1 (got {min_coverage}).")
    feedback = feedback or Feedback()
    with open_raster(raster) as src:
        gdf, classes, area = labels_over_raster(src, labels, field_name, class_colors, values)
        nodatavals = [nodata] * src.count if nodata is not None else band_nodata(src)
        blocks = list(iter_windows(int(area.width), int(area.height), block=256))
        tasks = []
        dataset = shareable(raster) if client is not None else src  # a worker elsewhere opens its own copy
        for block in blocks:  # the blocks that labels touch, each with its labels
            win = windows.Window(area.col_off + block.col_off, area.row_off + block.row_off, block.width,
                                 block.height)
            hits = gdf.sindex.query(box(*windows.bounds(win, src.transform)))
            if len(hits):
                tasks.append((dataset, gdf.iloc[hits], win, supersample,
                              len(classes), min_coverage, nodatavals))
        results = run_tasks(_cell_block, tasks, client, feedback, "Reading embedding cells under the labels")
    dropped, conflicts, invalid = (sum(r[i] for r in results) for i in (1, 2, 3))
    parts = [r[0] for r in results if r[0] is not None]
    if not parts:
        raise InputError(
            f"No cell of {raster} is covered to {min_coverage:.0%} by one class of {labels}: the polygons are small "
            "for the embedding grid. Lower the minimum coverage, or extract embeddings with a smaller stride."
        )
    x, y, g, rows, cols = (np.concatenate(p) for p in zip(*parts, strict=True))
    if dropped:
        logger.info("Left out %d cells that the labels cover by less than %.0f %%.", dropped, 100 * min_coverage)
    if invalid:
        logger.warning("Left out %d labelled cells that are nodata in %s.", invalid, raster)
    if conflicts:
        logger.warning("%d sub-cells claimed by labels of different classes counted for none.", conflicts)
    stats = {"n_samples": len(y), "n_polygons": len(np.unique(g)), "conflicting_pixels": conflicts,
             "sampling": f"cells covered to at least {min_coverage:.0%} by one class", "cells_under_coverage": dropped,
             "samples_per_class": {c.name: int((y == i).sum()) for i, c in enumerate(classes)}}
    logger.info("Sampled %d cells from %d polygons: %s.", stats["n_samples"], stats["n_polygons"],
                ", ".join(f"{k} {v}" for k, v in stats["samples_per_class"].items()))
    targets = polygon_values(gdf, g) if values else None  # each cell's polygon: the one covering most of it
    return Samples(x=x, y=y, groups=g, rows=rows.astype("int32"), cols=cols.astype("int32"), classes=classes,
                   stats=stats, targets=targets)
