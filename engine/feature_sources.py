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
from typing import TYPE_CHECKING, Any

from .encoders import EncoderOptions
from .errors import InputError
from .features import compute_features, feature_names, make_recipe
from .feedback import Feedback
from .labels import Samples, sample_pixels
from .rasters import RasterInfo, band_stack, open_raster, raster_info, streaming_env

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

FEATURE_SOURCES = {
    "raw_bands": "the raster's band values (plus spectral indices when asked for)",
    "embeddings": "an embedding raster (Landprobe, Google Satellite Embedding / AlphaEarth, TESSERA, any float)",
    "encoder": "embeddings computed from the raster's bands by an encoder run on the fly",
}


@dataclass
class FeatureSet:
    """Samples with computed features, and what the model must remember to compute them again."""

    samples: Samples
    recipe: dict[str, Any]
    info: RasterInfo
    encoder_arrays: dict[str, np.ndarray] = field(default_factory=dict)
    raw_cell_means: np.ndarray | None = None


def load_raw_bands(raster: str | list[str], labels: str, field_name: str, indices: bool, band_roles: str | None,
                   feedback: Feedback, class_colors: dict[str, str] | None,
                   bands: list[int] | None = None) -> FeatureSet:
    """Pixels under the labels, with the values of ``bands`` (default all) and optional spectral indices."""
    with band_stack(raster, bands) as path:
        info = raster_info(path)
        recipe = make_recipe(list(info.band_names), indices, band_roles)
        samples = sample_pixels(path, labels, field_name, feedback, class_colors)
    samples.x = compute_features(samples.x, recipe)
    if recipe.get("indices"):
        logger.info("Features: %d bands and the indices %s.", len(recipe["bands"]),
                    ", ".join(f"{k} (bands {a} and {b})" for k, (a, b) in recipe["indices"].items()))
    recipe = recipe | {"names": feature_names(recipe, list(info.band_names))}
    return FeatureSet(samples, recipe, info)


def _raw_cell_means(raster: str, samples: Samples, stride: int, origin: tuple[int, int]) -> np.ndarray | None:
    """Band values of ``raster`` averaged over each sample's cell (cells of ``stride`` px from ``origin``)."""
    import numpy as np
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    if not Path(raster).exists():
        return None
    with open_raster(raster) as src:
        r0, c0 = int(samples.rows.min()), int(samples.cols.min())
        n_rows, n_cols = int(samples.rows.max()) - r0 + 1, int(samples.cols.max()) - c0 + 1
        window = Window((origin[1] + c0) * stride, (origin[0] + r0) * stride, n_cols * stride, n_rows * stride)
        data = src.read(window=window, out_shape=(src.count, n_rows, n_cols), resampling=Resampling.average,
                        boundless=True, masked=True).astype("float32").filled(np.nan)
    return data[:, samples.rows - r0, samples.cols - c0].T.astype("float32")


def load_embeddings(raster: str | list[str], labels: str, field_name: str, min_coverage: float,
                    feedback: Feedback, class_colors: dict[str, str] | None) -> FeatureSet:
    """Cells of an embedding raster covered enough by one class; raw band means when the source raster is known."""
    from .cells import sample_cells
    from .embedding_inputs import describe_embeddings
    from .embeddings import read_embedding_metadata

    if not isinstance(raster, str):
        if len(raster) != 1:
            raise InputError("Embeddings come as one raster: give a single embedding raster, not several files.")
        raster = raster[0]
    source = describe_embeddings(raster)
    info = raster_info(raster)
    samples = sample_cells(raster, labels, field_name, min_coverage, nodata=source.nodata, feedback=feedback,
                           class_colors=class_colors)
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
                 bands: list[int] | None = None) -> FeatureSet:
    """Run the encoder over the labelled part of the raster (``bands``, default all), then sample its cells."""
    from .embeddings import cell_grid, encode_raster, prepare_encoder
    from .encoders import encoder_state
    from .labels import labels_over_raster

    with streaming_env(), band_stack(raster, bands) as path, open_raster(path) as src:
        info = raster_info(path)
        built, spec_name, patch, step, device = prepare_encoder(src, options)
        area = labels_over_raster(src, labels, field_name)[2]  # the pixels the labels cover
        rows, cols = cell_grid(src, step)
        window = (int(area.row_off) // step, min(rows, math.ceil((area.row_off + area.height) / step)),
                  int(area.col_off) // step, min(cols, math.ceil((area.col_off + area.width) / step)))
        if window[0] >= window[1] or window[2] >= window[3]:
            raise InputError(f"The labels of {labels} cover no pixel of raster {raster}.")
        with tempfile.TemporaryDirectory(prefix="landprobe-embed-") as folder:
            tmp = str(Path(folder) / "labelled_cells.tif")
            encode_raster(src, built, spec_name, Path(tmp), patch, step, 64, device, feedback.stage(0.0, 0.8),
                          raster, list(info.band_names), cell_window=window)
            loaded = load_embeddings(tmp, labels, field_name, min_coverage, feedback.stage(0.8, 1.0), class_colors)
    samples = loaded.samples
    samples.rows, samples.cols = samples.rows + window[0], samples.cols + window[2]
    params, arrays = encoder_state(built)
    recipe = {"recipe": "encoder", "bands": list(range(1, built.dim + 1)), "embedding": loaded.recipe["embedding"],
              "encoder": {"name": spec_name, "patch_size": patch, "stride": step, **params},
              "input_bands": list(info.band_names), "names": [f"{spec_name} {i:03d}" for i in range(built.dim)]}
    return FeatureSet(samples, recipe, info, arrays, loaded.raw_cell_means)
