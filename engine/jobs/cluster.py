"""The ``cluster`` operation: what is there before anyone labels. k-means on a seeded sample, mapped like a model.

The clusters are fitted by :func:`engine.probes.kmeans.fit_clusters` on a seeded sample of valid pixels (band values
standardised, or embeddings as they are), saved as a Landprobe model file whose classes are the clusters, and mapped
by *Classify raster*'s own code: the cluster map is styled and written as a Cloud-Optimized GeoTIFF like a class
map, and the model file maps a whole region with *Map region* (blocks on Dask, resume, cancel) with nothing of its
own. The report gives the choice of ``k`` (every score), each cluster's pixels, area and centre, and the sampled
pixels in two dimensions coloured by cluster; the polygons, on request, are a first label layer to rename.
"""

from __future__ import annotations

import csv
import logging
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..assess.insight import projection_png
from ..assess.report import write_report
from ..core.errors import InputError
from ..core.feedback import Feedback
from ..core.versions import library_versions
from ..embeddings.unlabelled import FEATURE_CHOICES, raster_recipe, sample_features
from ..io.labels import LabelClass, palette
from ..io.rasters import (
    atomic_output,
    check_writable,
    open_raster,
    pixel_area_m2,
    raster_info,
)
from ..io.region import band_stack
from ..probes.kmeans import fit_clusters
from ..probes.model_file import save_model
from .classify_raster import classify_raster

logger = logging.getLogger(__name__)

#: The vector formats the polygons are written in, by the file's extension: single files, renamed whole when written
#: (a Shapefile's side files would not be).
VECTOR_DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".fgb": "FlatGeobuf"}


@dataclass
class ClusterResult:
    """What the clustering wrote and found."""

    output: str
    output_model: str | None
    output_confidence: str | None
    output_polygons: str | None
    output_report: str | None
    output_html: str | None
    output_centres: str | None
    k: int
    criterion: str
    scores: dict[str, list[float]]
    cluster_pixels: dict[str, int]


def cluster(raster: str | list[str], output: str, k: int = 0, k_min: int = 2, k_max: int = 10,
            features: str = "auto", sample_size: int = 20_000, seed: int = 0, output_model: str | None = None,
            output_confidence: str | None = None, output_polygons: str | None = None,
            min_polygon_pixels: int = 9, output_report: str | None = None, output_centres: str | None = None,
            feedback: Feedback | None = None) -> ClusterResult:
    """Group the pixels of a raster into clusters by k-means, without labels, and map the clusters.

    Args:
        raster: the raster (bands or an embedding raster), a folder of tiles, a list of files or a STAC file.
        output: the cluster map (a Cloud-Optimized GeoTIFF, styled, one code per cluster: 1 is the largest).
        k: the number of clusters; 0 (the default) chooses it between ``k_min`` and ``k_max`` by the
            Calinski-Harabasz score.
        k_min: the fewest clusters tried when ``k`` is 0.
        k_max: the most clusters tried when ``k`` is 0.
        features: ``auto`` (embeddings for an embedding raster, else band values), ``bands`` or ``embeddings``.
        sample_size: valid pixels drawn (seeded) to fit the clusters on.
        seed: seed of the sample and of k-means.
        output_model: also save the clusters as a model file, to map other rasters or a whole region with it.
        output_confidence: also write each pixel's membership of its cluster (0..1, high in a cluster's core).
        output_polygons: also write the clusters as polygons (GeoPackage) with a ``cluster`` field and an empty
            ``class`` field to fill in: a first label layer. Areas smaller than ``min_polygon_pixels`` are merged
            into their neighbours first.
        min_polygon_pixels: the smallest polygon kept, in pixels.
        output_report: also write the report (JSON, and HTML beside it): the choice of k, each cluster's area and
            centre, and the sampled pixels in two dimensions.
        output_centres: also write the cluster centres as a CSV table (one row per cluster, one column per feature).
        feedback: progress and cancel.

    Returns:
        The files written, the number of clusters and how it was chosen.

    Raises:
        InputError: for a raster, option or output that cannot be used; the message says which and what to do.

    """
    feedback = feedback or Feedback()
    if features not in FEATURE_CHOICES:
        raise InputError(f"Unknown features {features!r}; choose one of: {', '.join(FEATURE_CHOICES)}.")
    if (k and not 2 <= k <= 255) or (not k and not 2 <= k_min <= k_max <= 255):
        raise InputError(f"Clusters: give k between 2 and 255, or 0 with 2 <= k_min <= k_max <= 255 (got k={k}, "
                         f"k_min={k_min}, k_max={k_max}).")
    if output_polygons and Path(output_polygons).suffix.lower() not in VECTOR_DRIVERS:
        raise InputError(f"Cluster polygons {output_polygons}: write them as {', '.join(VECTOR_DRIVERS)} (the "
                         "file's extension says which).")
    for path in filter(None, (output, output_model, output_confidence, output_polygons, output_report,
                              output_centres)):
        check_writable(path)
    with band_stack(raster) as path:
        recipe, names = raster_recipe(path, features)
        x = sample_features(path, recipe, sample_size, seed)
        info = raster_info(path)
    logger.info("Sampled %d valid pixels (%s) to fit the clusters on.", len(x),
                "embeddings" if recipe["recipe"] == "embeddings" else f"{len(names)} bands, standardised")
    feedback.progress(0.05, "Fitting the clusters")
    choice = fit_clusters(x, k, k_min, k_max, standardise=recipe["recipe"] != "embeddings", seed=seed,
                          check_cancel=feedback.check_cancel)
    logger.info("%d clusters: %s.", choice.k, choice.criterion)
    colors = palette(choice.k)
    classes = [LabelClass(i + 1, f"cluster {i + 1}", colors[i]) for i in range(choice.k)]
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "kind": "clusters",
        "classes": [asdict(c) for c in classes],
        "field": "cluster",
        "input": {"band_count": info.count, "band_names": list(info.band_names), "dtype": info.dtype,
                  "nodata": info.nodata, "crs_wkt": info.crs_wkt, "raster": raster, "band_selection": None,
                  "nodatavals": list(info.nodatavals), "dtypes": list(info.dtypes)},
        "features": recipe | {"names": names},
        "clustering": {"k": choice.k, "criterion": choice.criterion, "scores": choice.scores,
                       "sample_size": len(x), "seed": seed},
        "libraries": library_versions(),
    }
    feedback.check_cancel()
    with tempfile.TemporaryDirectory(prefix="landprobe-cluster-") as tmp:
        model = output_model or str(Path(tmp) / "clusters.lpmodel")
        save_model(model, manifest, choice.model)
        feedback.progress(0.15, "Mapping the clusters")
        mapped = classify_raster(raster, model, output, output_confidence=output_confidence,
                                 feedback=feedback.stage(0.15, 0.85))
        polygons = None
        if output_polygons:
            feedback.progress(0.85, "Turning the clusters into polygons")
            polygons = _polygons(output, output_polygons, classes, min_polygon_pixels, feedback)
        centres = _centres(choice.model, names)
        if output_centres:
            _write_centres(output_centres, centres, names)
        report_paths: tuple[str | None, str | None] = (None, None)
        if output_report:
            report_paths = _report(output_report, manifest, mapped.class_pixels, output, centres, names, x,
                                   choice.model, classes, seed)
    feedback.progress(1.0, "Done")
    return ClusterResult(output=mapped.output, output_model=output_model, output_confidence=output_confidence,
                         output_polygons=polygons, output_report=report_paths[0], output_html=report_paths[1],
                         output_centres=output_centres,
                         k=choice.k, criterion=choice.criterion, scores=choice.scores,
                         cluster_pixels=mapped.class_pixels)


def _centres(model: Any, names: list[str]) -> list[dict[str, Any]]:
    """Each cluster's centre in the features' own units."""
    centres = model.centres_ * model.scale_ + model.mean_
    return [{"cluster": i + 1, **{n: round(float(v), 6) for n, v in zip(names, row, strict=True)}}
            for i, row in enumerate(centres)]


def _write_centres(path: str, centres: list[dict[str, Any]], names: list[str]) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=["cluster", *names])
        writer.writeheader()
        writer.writerows(centres)


def _polygons(cluster_map: str, output: str, classes: list[LabelClass], min_pixels: int,
              feedback: Feedback) -> str:
    """The cluster map as polygons (small areas merged into their neighbours first), with an empty class field."""
    # Lazy: the vector stack is needed only for this output.
    import geopandas as gpd
    from rasterio.features import shapes, sieve
    from shapely.geometry import shape

    with open_raster(cluster_map) as src:
        if src.width * src.height > 100_000_000:
            raise InputError(f"The cluster map {cluster_map} has {src.width * src.height:,} pixels, too many to "
                             "turn into polygons at once: cluster a smaller area for the label layer.")
        data = src.read(1)
        nodata, transform, crs, area = src.nodata, src.transform, src.crs, pixel_area_m2(src)
    valid = data != nodata
    if min_pixels > 1:
        data = sieve(data, size=min_pixels, mask=valid)
    feedback.check_cancel()
    records = [(shape(geom), int(value)) for geom, value in shapes(data, mask=valid, transform=transform)]
    names = {c.code: c.name for c in classes}
    frame = gpd.GeoDataFrame({"cluster": [v for _, v in records], "cluster_name": [names[v] for _, v in records],
                              "class": [""] * len(records)}, geometry=[g for g, _ in records], crs=crs)
    frame["area_m2"] = frame.geometry.area if area is not None else np.nan
    with atomic_output(output) as tmp:
        frame.to_file(tmp, driver=VECTOR_DRIVERS[Path(output).suffix.lower()], layer=Path(output).stem)
    logger.info("Wrote %d polygons to %s: fill in their 'class' field to make a label layer.", len(frame), output)
    return output


def _report(path: str, manifest: dict[str, Any], pixels: dict[str, int], cluster_map: str,
            centres: list[dict[str, Any]], names: list[str], x: np.ndarray, model: Any,
            classes: list[LabelClass], seed: int) -> tuple[str, str]:
    """The report: the choice of k, each cluster's pixels, area and centre, and the sample in two dimensions."""
    with open_raster(cluster_map) as src:
        area = pixel_area_m2(src)
    total = max(1, sum(pixels.values()))
    rows = [{"cluster": c.name, "code": c.code, "color": c.color, "pixels": pixels.get(c.name, 0),
             "share": pixels.get(c.name, 0) / total,
             "area_ha": pixels.get(c.name, 0) * area / 1e4 if area is not None else None} for c in classes]
    labels = model.predict(x, proba=False)[0]
    png = str(Path(path).with_suffix("")) + "_clusters.png"
    projection = projection_png(x, labels, [c.name for c in classes], [c.color for c in classes], png, seed=seed)
    raster = manifest["input"]["raster"]
    report = {"title": "Landprobe clusters", "raster": raster if isinstance(raster, str) else ", ".join(raster),
              "classified": cluster_map, "created": manifest["created"],
              "clusters": {**manifest["clustering"], "features": manifest["features"]["recipe"],
                           "clusters": rows, "centres": centres, "feature_names": names},
              "projection": projection}
    return write_report(report, path)
