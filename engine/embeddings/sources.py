"""Where a probe's training samples come from: raw bands, an embedding raster, or an encoder run on the fly.

Each loader returns a :class:`FeatureSet`: the labelled samples with their features already computed, the feature
recipe stored in the model (so prediction computes the same), a description of the input raster, the weights of an
on-the-fly encoder, and, when the raster's bands are at hand, the band values averaged over each embedding cell (the
"raw bands" side of a learning curve on the same cells).
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..core.errors import InputError
from ..core.feedback import Feedback
from ..io.labels import Samples, labels_over_raster, sample_pixels
from ..io.rasters import (
    RasterInfo,
    band_label,
    open_raster,
    raster_info,
    read_block,
    streaming_env,
)
from ..io.region import band_stack
from ..samples.cells import sample_cells
from .encode import cell_grid, empty_bands, encode_raster, prepare_encoder, read_embedding_metadata
from .encoders import EncoderOptions, encoder_state
from .features import compute_features, feature_names, make_recipe, parse_band_roles
from .inputs import describe_embeddings

logger = logging.getLogger(__name__)

FEATURE_SOURCES = {
    "raw_bands": "the raster's band values (plus spectral indices when asked for)",
    "embeddings": "an embedding raster (Landprobe, Google Satellite Embedding / AlphaEarth, TESSERA, any float)",
    "encoder": "embeddings computed from the raster's bands by an encoder run on the fly",
}


@dataclass
class FeatureSet:
    """Samples with computed features, and what the model must remember to compute them again.

    ``bands`` is the band selection the features come from (1-based, in the numbering of the stacked input; ``None``
    for all bands): the user's selection less the bands that hold no value under the labels. ``info`` describes
    exactly those bands.
    """

    samples: Samples
    recipe: dict[str, Any]
    info: RasterInfo
    encoder_arrays: dict[str, np.ndarray] = field(default_factory=dict)
    raw_cell_means: np.ndarray | None = None
    bands: list[int] | None = None


def load_raw_bands(raster: str | list[str], labels: str, field_name: str, indices: bool, band_roles: str | None,
                   feedback: Feedback, class_colors: dict[str, str] | None,
                   bands: list[int] | None = None, client: Any | None = None, values: bool = False) -> FeatureSet:
    """Pixels under the labels, with the values of ``bands`` (default all) and optional spectral indices.

    Bands that hold no value under any labelled pixel are left out (see :func:`engine.io.labels.sample_pixels`): the
    result's ``bands``, ``info`` and recipe describe the bands kept. Band roles are numbered as ``bands`` selects
    them. Bands with scale and offset tags are used as physical values (recorded in the recipe). With a Dask
    ``client``, the blocks under the labels are read on its cluster. With ``values``, the field holds a quantity
    (each sample's value in ``samples.targets``).
    """
    with band_stack(raster, bands) as path:
        info = raster_info(path)
        recipe = make_recipe(list(info.band_names), indices, band_roles)  # fails early on unusable roles
        samples = sample_pixels(path, labels, field_name, feedback, class_colors, client, values)
    selection = [int(b) for b in bands] if bands else None
    if samples.empty_bands:
        stacked = selection or list(range(1, info.count + 1))
        kept = [i for i in range(1, info.count + 1) if i not in set(samples.empty_bands)]
        samples.stats["dropped_bands"] = [
            {"band": stacked[i - 1], "name": info.band_names[i - 1],
             "reason": "no value (nodata or NaN) under any labelled pixel"} for i in samples.empty_bands]
        samples.x = samples.x[:, [i - 1 for i in kept]]
        selection = [stacked[i - 1] for i in kept]
        roles = _renumber_roles(band_roles, info, kept)
        with band_stack(raster, selection) as path:
            info = raster_info(path)
        previous = set(recipe.get("indices", {}))
        recipe = make_recipe(list(info.band_names), indices, roles)
        lost = sorted(previous - set(recipe.get("indices", {})))
        if lost:
            logger.warning("Left out the indices %s: a band they need holds no value under the labels.",
                           ", ".join(lost))
        logger.info("Training on bands %s of the input.", ", ".join(map(str, selection)))
    scaling = _scaling(info)
    if scaling:
        recipe |= scaling
        logger.info("Bands with scale and offset tags are used as physical values (value x scale + offset).")
    samples.x = compute_features(samples.x, recipe)
    if recipe.get("indices"):
        logger.info("Features: %d bands and the indices %s.", len(recipe["bands"]),
                    ", ".join(f"{k} (bands {a} and {b})" for k, (a, b) in recipe["indices"].items()))
    recipe = recipe | {"names": feature_names(recipe, list(info.band_names))}
    return FeatureSet(samples, recipe, info, bands=selection)


def _scaling(info: RasterInfo) -> dict[str, list[float]]:
    """``{"scales": [...], "offsets": [...]}`` for the bands of ``info``, or nothing when all are 1 and 0."""
    if all(v == 1 for v in info.scales) and all(v == 0 for v in info.offsets):
        return {}
    return {"scales": list(info.scales), "offsets": list(info.offsets)}


def _renumber_roles(band_roles: str | None, info: RasterInfo, kept: list[int]) -> str | None:
    """``band_roles`` (numbered over the bands of ``info``) renumbered over the bands ``kept``.

    Roles of bands left out are dropped, with a warning.
    """
    if not band_roles:
        return band_roles
    roles = parse_band_roles(band_roles, info.count)
    position = {band: i for i, band in enumerate(kept, start=1)}
    gone = {role: band for role, band in roles.items() if band not in position}
    if gone:
        logger.warning("Band roles %s name bands left out (no value under the labels).",
                       ", ".join(f"{role}={band}" for role, band in gone.items()))
    return ", ".join(f"{role}={position[band]}" for role, band in roles.items() if band in position)


def _raw_cell_means(raster: str, samples: Samples, stride: int, origin: tuple[int, int]) -> np.ndarray | None:
    """Band values of ``raster`` averaged over each sample's cell (cells of ``stride`` px from ``origin``)."""
    if not Path(raster).exists():
        return None
    with open_raster(raster) as src:
        r0, c0 = int(samples.rows.min()), int(samples.cols.min())
        n_rows, n_cols = int(samples.rows.max()) - r0 + 1, int(samples.cols.max()) - c0 + 1
        window = Window((origin[1] + c0) * stride, (origin[0] + r0) * stride, n_cols * stride, n_rows * stride)
        data = read_block(src, window, out_shape=(src.count, n_rows, n_cols), resampling=Resampling.average,
                          boundless=True, masked=True).astype("float32").filled(np.nan)
    return data[:, samples.rows - r0, samples.cols - c0].T.astype("float32")


def load_embeddings(raster: str | list[str], labels: str, field_name: str, min_coverage: float,
                    feedback: Feedback, class_colors: dict[str, str] | None, client: Any | None = None,
                    values: bool = False) -> FeatureSet:
    """Cells of an embedding raster covered enough by one class; raw band means when the source raster is known.

    With a Dask ``client``, the blocks under the labels are read on its cluster. With ``values``, the field holds a
    quantity and each cell takes its polygon's value (``samples.targets``).
    """
    if not isinstance(raster, str):
        if len(raster) != 1:
            raise InputError("Embeddings come as one raster: give a single embedding raster, not several files.")
        raster = raster[0]
    source = describe_embeddings(raster)
    info = raster_info(raster)
    samples = sample_cells(raster, labels, field_name, min_coverage, nodata=source.nodata, feedback=feedback,
                           class_colors=class_colors, client=client, values=values)
    samples.x = compute_features(samples.x, {"recipe": "embeddings", "embedding": source.as_dict()})
    logger.info("Features: %s.", source.label())
    recipe = {"recipe": "embeddings", "bands": list(range(1, source.dim + 1)), "embedding": source.as_dict(),
              "names": list(info.band_names)}
    means = None
    meta = read_embedding_metadata(raster) if source.kind == "landprobe" else None
    raw = (meta or {}).get("raster")  # the raster the embeddings came from, when it is one file still at hand
    if isinstance(raw, str) and Path(raw).exists():
        base = raster_info(raw)
        stride = int(meta["stride"])
        if math.isclose(info.transform[0], base.transform[0] * stride):
            origin = (round((info.transform[5] - base.transform[5]) / info.transform[4]),
                      round((info.transform[2] - base.transform[2]) / info.transform[0]))
            means = _raw_cell_means(raw, samples, stride, origin)
    return FeatureSet(samples, recipe, info, raw_cell_means=means)


def load_encoded(raster: str | list[str], labels: str, field_name: str, options: EncoderOptions,
                 min_coverage: float, feedback: Feedback, class_colors: dict[str, str] | None,
                 bands: list[int] | None = None, values: bool = False) -> FeatureSet:
    """Run the encoder over the labelled part of the raster (``bands``, default all), then sample its cells.

    Bands that hold no value anywhere in the raster (a decimated read) are left out; the result's ``bands`` is then
    the selection used, in the stacked numbering.
    """
    selection = [int(b) for b in bands] if bands else None
    dropped: list[dict[str, Any]] = []
    with streaming_env(), band_stack(raster, selection) as path, open_raster(path) as src:
        empty, count = empty_bands(src), src.count
        names = [d or f"band {i}" for i, d in enumerate(src.descriptions, start=1)]
    if empty and len(empty) < count:
        stacked = selection or list(range(1, count + 1))
        logger.warning("Left out %d band(s) of %s that hold no value (nodata or NaN): %s.", len(empty), raster,
                       ", ".join(band_label(stacked[b - 1], names[b - 1]) for b in empty))
        selection = [stacked[i - 1] for i in range(1, count + 1) if i not in set(empty)]
        dropped = [{"band": stacked[b - 1], "name": names[b - 1], "reason": "no value (nodata or NaN) in the raster"}
                   for b in empty]
    with streaming_env(), band_stack(raster, selection) as path, open_raster(path) as src:
        info = raster_info(path)
        built, spec_name, patch, step, device = prepare_encoder(src, options)
        area = labels_over_raster(src, labels, field_name, values=values)[2]  # the pixels the labels cover
        rows, cols = cell_grid(src, step)
        window = (int(area.row_off) // step, min(rows, math.ceil((area.row_off + area.height) / step)),
                  int(area.col_off) // step, min(cols, math.ceil((area.col_off + area.width) / step)))
        if window[0] >= window[1] or window[2] >= window[3]:
            raise InputError(f"The labels of {labels} cover no pixel of raster {raster}.")
        with tempfile.TemporaryDirectory(prefix="landprobe-embed-") as folder:
            tmp = str(Path(folder) / "labelled_cells.tif")
            encode_raster(src, built, spec_name, Path(tmp), patch, step, 64, device, feedback.stage(0.0, 0.8),
                          raster, list(info.band_names), cell_window=window)
            loaded = load_embeddings(tmp, labels, field_name, min_coverage, feedback.stage(0.8, 1.0), class_colors,
                                     values=values)
    samples = loaded.samples
    samples.rows, samples.cols = samples.rows + window[0], samples.cols + window[2]
    if dropped:
        samples.stats["dropped_bands"] = dropped
    params, arrays = encoder_state(built)
    recipe = {"recipe": "encoder", "bands": list(range(1, built.dim + 1)), "embedding": loaded.recipe["embedding"],
              "encoder": {"name": spec_name, "patch_size": patch, "stride": step, **params},
              "input_bands": list(info.band_names), "names": [f"{spec_name} {i:03d}" for i in range(built.dim)]}
    return FeatureSet(samples, recipe, info, arrays, loaded.raw_cell_means, bands=selection)
