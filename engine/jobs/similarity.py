"""The ``similarity`` operation: find more like these. A 0..1 map of how much each pixel looks like the examples.

The examples (points or polygons, and optionally counter-examples) are read from the raster, turned into a
:class:`~engine.probes.similarity.SimilarityModel` held in a Landprobe model file (``target: value``), and mapped by
*Classify raster*'s own code as a float map on a ramp; the same model file maps a whole region with *Map region*.
On request, the pixels at or above a threshold become polygons with their areas.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.feedback import Feedback
from ..core.numbers import mean_and_scale
from ..core.versions import library_versions
from ..embeddings.unlabelled import FEATURE_CHOICES, features_under, raster_recipe, sample_features
from ..io.rasters import atomic_output, check_writable, open_raster, pixel_area_m2, raster_info
from ..io.region import band_stack
from ..probes.model_file import save_model
from ..probes.similarity import MODES, SimilarityModel
from .classify_raster import classify_raster

logger = logging.getLogger(__name__)

#: Pixels drawn to standardise band values (the raster's own means and spreads).
STATISTICS_SAMPLE = 20_000
#: The vector formats the matches are written in, by the file's extension (single files, renamed whole when written).
VECTOR_DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".fgb": "FlatGeobuf"}


@dataclass
class SimilarityResult:
    """What the similarity search wrote and found."""

    output: str
    output_model: str | None
    output_polygons: str | None
    n_examples: int
    n_counter_examples: int
    matched_pixels: int
    matched_area_m2: float | None
    threshold: float


def similarity(raster: str | list[str], examples: str, output: str, counter_examples: str | None = None,
               mode: str = "mean", features: str = "auto", threshold: float = 0.8,
               output_polygons: str | None = None, output_model: str | None = None, seed: int = 0,
               feedback: Feedback | None = None) -> SimilarityResult:
    """Map how much each pixel looks like the example points or polygons, from 0 (unlike) to 1 (alike).

    Args:
        raster: an embedding raster or a raster of bands (a folder of tiles, a list of files or a STAC file too).
        examples: points or polygons on the raster: the pixels under them are the examples.
        output: the similarity map (float32 Cloud-Optimized GeoTIFF on a 0..1 ramp, NaN where the raster is nodata).
        counter_examples: points or polygons of what the examples are not: pixels closer to these score lower.
        mode: ``mean`` (cosine to the examples' mean direction) or ``best`` (to the best-matching example).
        features: ``auto`` (embeddings for an embedding raster, else band values standardised), ``bands`` or
            ``embeddings``.
        threshold: the similarity (0..1) at or above which a pixel is a match (for the polygons and the area).
        output_polygons: also write the matches as polygons (GeoPackage) with their area in square metres.
        output_model: also save the search as a model file, to map other rasters or a region with it.
        seed: seed of the pixels drawn for the band statistics and of the examples kept in ``best`` mode.
        feedback: progress and cancel.

    Returns:
        The files written, the examples used and the matched area.

    Raises:
        InputError: for a raster, layer, option or output that cannot be used; the message says which.

    """
    feedback = feedback or Feedback()
    if mode not in MODES:
        raise InputError(f"Unknown mode {mode!r}; choose one of: {', '.join(MODES)}.")
    if features not in FEATURE_CHOICES:
        raise InputError(f"Unknown features {features!r}; choose one of: {', '.join(FEATURE_CHOICES)}.")
    if not 0 <= threshold <= 1:
        raise InputError(f"The threshold is a similarity between 0 and 1 (got {threshold}).")
    if output_polygons and Path(output_polygons).suffix.lower() not in VECTOR_DRIVERS:
        raise InputError(f"Matches {output_polygons}: write them as {', '.join(VECTOR_DRIVERS)} (the file's "
                         "extension says which).")
    for path in filter(None, (output, output_polygons, output_model)):
        check_writable(path)
    with band_stack(raster) as path:
        recipe, names = raster_recipe(path, features)
        positives = features_under(path, examples, recipe, "examples")
        negatives = features_under(path, counter_examples, recipe, "counter-examples") if counter_examples else None
        embeddings = recipe["recipe"] == "embeddings"
        if embeddings:
            mean, scale = np.zeros(len(names)), np.ones(len(names))
        else:  # band values: standardised by the raster's own statistics, so that every band counts alike
            mean, scale = mean_and_scale(sample_features(path, recipe, STATISTICS_SAMPLE, seed))
        info = raster_info(path)
    logger.info("Examples: %d pixels%s; %s.", len(positives),
                f", counter-examples: {len(negatives)} pixels" if negatives is not None else "",
                "cosine similarity of the embeddings" if embeddings else
                f"cosine similarity of the {len(names)} bands, standardised by the raster's own statistics")
    model = SimilarityModel(mode, seed).fit_examples(positives, negatives, mean, scale)
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "kind": "similarity",
        "target": "value",
        "value": {"name": "similarity to the examples", "unit": "", "range": [0.0, 1.0]},
        "classes": [],
        "field": "similarity",
        "input": {"band_count": info.count, "band_names": list(info.band_names), "dtype": info.dtype,
                  "nodata": info.nodata, "crs_wkt": info.crs_wkt, "raster": raster, "band_selection": None,
                  "nodatavals": list(info.nodatavals), "dtypes": list(info.dtypes)},
        "features": recipe | {"names": names},
        "similarity": {"mode": mode, "examples": examples, "counter_examples": counter_examples,
                       "n_examples": len(positives), "n_counter_examples": 0 if negatives is None else len(negatives)},
        "libraries": library_versions(),
    }
    feedback.check_cancel()
    with tempfile.TemporaryDirectory(prefix="landprobe-similarity-") as tmp:
        model_path = output_model or str(Path(tmp) / "similarity.lpmodel")
        save_model(model_path, manifest, model)
        mapped = classify_raster(raster, model_path, output, feedback=feedback.stage(0.05, 0.9))
    matched, area, polygons = _matches(mapped.output, threshold, output_polygons, feedback)
    logger.info("%d pixels%s at or above a similarity of %.2f.", matched,
                f" ({area / 1e4:,.1f} ha)" if area is not None else "", threshold)
    feedback.progress(1.0, "Done")
    return SimilarityResult(output=mapped.output, output_model=output_model, output_polygons=polygons,
                            n_examples=len(positives), n_counter_examples=0 if negatives is None else len(negatives),
                            matched_pixels=matched, matched_area_m2=area, threshold=threshold)


def _matches(similarity_map: str, threshold: float, output: str | None,
             feedback: Feedback) -> tuple[int, float | None, str | None]:
    """The pixels at or above ``threshold``, their area, and (when ``output``) those pixels as polygons."""
    # Lazy: the vector stack is needed only for the polygons.
    from rasterio.features import shapes

    matched = 0
    with open_raster(similarity_map) as src:
        area = pixel_area_m2(src)
        for _, window in src.block_windows(1):
            feedback.check_cancel()
            values = src.read(1, window=window)
            matched += int((values >= threshold).sum())
        if not output:
            return matched, matched * area if area is not None else None, None
        if src.width * src.height > 100_000_000:
            raise InputError(f"The similarity map {similarity_map} has {src.width * src.height:,} pixels, too many "
                             "to turn the matches into polygons at once: search a smaller area.")
        feedback.progress(0.92, "Turning the matches into polygons")
        values = src.read(1)
        transform, crs = src.transform, src.crs
    import geopandas as gpd
    from shapely.geometry import shape

    mask = values >= threshold
    geometries = [shape(g) for g, _ in shapes(mask.astype("uint8"), mask=mask, transform=transform)]
    frame = gpd.GeoDataFrame({"similarity_at_least": [threshold] * len(geometries)}, geometry=geometries, crs=crs)
    frame["area_m2"] = frame.geometry.area if area is not None else np.nan
    with atomic_output(output) as tmp:
        frame.to_file(tmp, driver=VECTOR_DRIVERS[Path(output).suffix.lower()], layer=Path(output).stem)
    logger.info("Wrote %d match polygons to %s.", len(frame), output)
    return matched, matched * area if area is not None else None, output
