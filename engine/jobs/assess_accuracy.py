"""Accuracy assessment of a class map against independent reference polygons or points.

The map is read window by window: every window adds to the whole map's pixel count per class (the strata weights of
the area-adjusted estimates) and, where reference features fall, the reference is burnt onto the window's grid and
compared pixel by pixel. Memory stays bounded whatever the raster size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio import windows

from ..assess.metrics import accuracy_figures, area_adjusted
from ..assess.report import html_path, write_report
from ..core.errors import InputError
from ..core.feedback import Feedback
from ..io.labels import burn_classes, read_labels
from ..io.rasters import check_writable, iter_windows, open_raster, pixel_area_m2, read_block, valid_mask

logger = logging.getLogger(__name__)

DESCRIPTION = (
    "Every pixel of the class map covered by a reference feature is compared with the feature's class; map nodata "
    "and pixels claimed by reference features of different classes are left out. Figures are per pixel; pixels of "
    "one polygon are not independent samples."
)


@dataclass
class AccuracyResult:
    """Where the report went and the headline figures."""

    output_report: str
    output_html: str
    overall_accuracy: float | None
    kappa: float | None
    macro_f1: float | None
    n: int
    balanced_accuracy: float | None = None


def map_classes(src: Any) -> dict[int, str]:
    """Class names of a class raster from its band-1 tags ``CLASS_<code>=<name>`` (empty when untagged)."""
    names = {}
    for key, value in src.tags(1).items():
        code = key[len("CLASS_"):]
        if key.startswith("CLASS_") and code.lstrip("-").isdigit():
            names[int(code)] = value
    return names


def _colors(src: Any) -> dict[int, str]:
    try:
        colormap = src.colormap(1)
    except ValueError:  # no colour table
        return {}
    return {int(k): "#{:02x}{:02x}{:02x}".format(*v[:3]) for k, v in colormap.items()}


def _match_reference(ref_name: str, names: list[str]) -> int | None:
    """Index of the map class named ``ref_name``, or ``None``.

    The exact name first, else the one name equal to it ignoring case and surrounding spaces (``"Forest "`` finds
    ``"forest"``); ``None`` when there is none or more than one.
    """
    if ref_name in names:
        return names.index(ref_name)
    key = ref_name.strip().casefold()
    loose = [k for k, name in enumerate(names) if name.strip().casefold() == key]
    if len(loose) == 1:
        logger.info("Reference class %r matched to map class %r (same name but for case or spaces).", ref_name,
                    names[loose[0]])
        return loose[0]
    return None


def _codes(data: np.ndarray, valid: np.ndarray, classified: str) -> np.ndarray:
    """Map values as integer class codes (0 where not ``valid``); refuse a raster of decimal numbers."""
    if np.issubdtype(data.dtype, np.floating):
        values = data[valid]
        if not np.array_equal(values, np.round(values)):
            raise InputError(f"Raster {classified} holds decimal numbers; an accuracy assessment needs a class map "
                             "of whole-number codes (as written by Classify).")
        data = np.where(valid, data, 0)
    return data.astype("int64")


def assess_accuracy(classified: str, reference: str, field: str, output_report: str,
                    feedback: Feedback | None = None) -> AccuracyResult:
    """Compare a class map with reference features and write a JSON and an HTML accuracy report.

    Reference classes are matched to map classes by name for a text field and by code for a whole-number field.
    A name matches exactly or, failing that, ignoring case and surrounding spaces. The classes are the union of
    both: a reference class the map does not know counts as errors (producer's accuracy and F1 of 0), a map class
    without reference pixels has no producer's accuracy and no F1 and is flagged ``no_reference``. Macro F1 and
    balanced accuracy are means over the classes present in the reference (``macro_f1_classes``), so the macro
    F1 is the mean of the F1 column of the per-class table over those classes. Area-adjusted estimates (Olofsson
    et al. 2014) use the whole map's pixel count per class as strata weights.

    Args:
        classified: single-band class raster (e.g. written by :func:`engine.predict.classify_raster`).
        reference: polygon or point layer, optionally ``file|layername=name``; reprojected to the map's CRS.
        field: the reference class field, text (class names) or whole numbers (class codes).
        output_report: where the JSON report goes; the HTML page gets the same name with ``.html``.
        feedback: progress and cancel.

    Returns:
        The report paths and the headline figures.

    Raises:
        InputError: when the map is not a single-band class raster, or the reference misses its valid pixels.
        CancelledError: when cancelled; no report is written.

    """
    # Lazy: pandas comes with the label reading, not needed by every job.
    import pandas as pd

    # Lazy: shapely comes with the label reading, not needed by every job.
    from shapely.geometry import box

    feedback = feedback or Feedback()
    check_writable(output_report)
    check_writable(html_path(output_report))
    code_pixels: dict[int, int] = {}
    pairs: dict[tuple[int, int], int] = {}
    conflicts = on_nodata = 0
    with open_raster(classified) as src:
        if src.count != 1:
            raise InputError(f"Raster {classified} has {src.count} bands; choose a single-band class map.")
        names_by_code = map_classes(src)
        colors = _colors(src)
        gdf, ref_classes = read_labels(reference, field, src.crs.to_wkt() if src.crs else None, min_classes=1)
        numeric_field = pd.api.types.is_numeric_dtype(gdf[field])
        inside = gdf.geometry.intersects(box(*src.bounds))
        if not inside.any():
            raise InputError(
                f"No feature of {reference} overlaps raster {classified}. Raster extent "
                f"{tuple(round(b) for b in src.bounds)}, reference extent {tuple(round(b) for b in gdf.total_bounds)} "
                "(in the raster's CRS)."
            )
        if (~inside).any():
            logger.warning("%d reference features lie outside the map and were ignored.", int((~inside).sum()))
        gdf = gdf[inside]
        sindex = gdf.sindex
        blocks = list(iter_windows(src.width, src.height, block=1024))
        for i, win in enumerate(blocks):
            feedback.check_cancel()
            data = read_block(src, win, [1])[0]
            valid = valid_mask(data[None], src.nodata)
            codes = _codes(data, valid, classified)
            values, counts = np.unique(codes[valid], return_counts=True)
            for value, count in zip(values.tolist(), counts.tolist(), strict=True):
                code_pixels[value] = code_pixels.get(value, 0) + count
            hits = sindex.query(box(*windows.bounds(win, src.transform)))
            if len(hits):
                ref, claims = burn_classes(gdf.iloc[hits], data.shape, src.window_transform(win))
                conflicts += int((claims > 1).sum())
                on_nodata += int(((claims == 1) & ~valid).sum())
                keep = (claims == 1) & valid
                if keep.any():
                    both, n = np.unique(np.stack([ref[keep].astype("int64"), codes[keep]]), axis=1,
                                        return_counts=True)
                    for (r, m), count in zip(both.T.tolist(), n.tolist(), strict=True):
                        pairs[(r, m)] = pairs.get((r, m), 0) + count
            feedback.progress(0.95 * (i + 1) / len(blocks), f"Comparing window {i + 1} of {len(blocks)}")
        area_m2 = pixel_area_m2(src)
        width, height = src.width, src.height

    # The union of map and reference classes: map classes by code, then reference classes the map does not know.
    codes_sorted = sorted(set(names_by_code) | set(code_pixels))
    untagged = [c for c in code_pixels if names_by_code and c not in names_by_code]
    if untagged:
        logger.warning("Map codes without a class name in the raster: %s.", ", ".join(map(str, sorted(untagged))))
    names = [names_by_code.get(c, str(c)) for c in codes_sorted]
    twins = sorted({name for name in names if names.count(name) > 1})
    if twins:
        logger.warning("Several map codes share the class name(s) %s: reference features match the first code.",
                       ", ".join(twins))
    index_of_code = {c: k for k, c in enumerate(codes_sorted)}
    ref_index, unknown = [], []
    for rc in ref_classes:
        k = index_of_code.get(rc.code) if numeric_field else _match_reference(rc.name, names[:len(codes_sorted)])
        if k is None:
            unknown.append(rc.name)
            names.append(rc.name)
            k = len(names) - 1
        ref_index.append(k)
    if unknown:
        logger.warning("Reference classes the map does not have (all their pixels count as errors): %s. "
                       "Map classes: %s.", ", ".join(unknown), ", ".join(names[:len(codes_sorted)]))
    cm = np.zeros((len(names), len(names)), dtype="int64")
    for (r, m), count in pairs.items():
        cm[ref_index[r], index_of_code[m]] += count
    if conflicts:
        logger.warning("%d pixels are claimed by reference features of different classes and were left out.",
                       conflicts)
    if on_nodata:
        logger.info("%d reference pixels fall on map nodata and were left out.", on_nodata)
    if cm.sum() == 0:
        raise InputError(f"The reference features of {reference} cover no valid pixel of {classified}: "
                         "nothing to assess.")
    no_reference = [names[k] for k in range(len(codes_sorted)) if cm[k].sum() == 0 and code_pixels.get(
        codes_sorted[k], 0) > 0]
    if no_reference:
        logger.warning("Map classes without reference pixels (their producer's accuracy cannot be assessed): %s.",
                       ", ".join(no_reference))
    map_pixels = np.array([code_pixels.get(c, 0) for c in codes_sorted] + [0] * len(unknown), dtype="int64")

    validation = accuracy_figures(cm, names)
    validation.update({
        "scheme": "independent reference",
        "description": DESCRIPTION,
        "optimistic": False,
        "n_reference_features": len(gdf),
        "conflicting_pixels": conflicts,
        "reference_pixels_on_nodata": on_nodata,
        "reference_classes_not_in_map": unknown,
        "map_classes_without_reference": no_reference,
    })
    area = area_adjusted(cm, map_pixels, area_m2, names)
    report = {
        "title": "Landprobe accuracy assessment",
        "classified": str(classified),
        "reference": str(reference),
        "field": field,
        "validation": validation,
        "area_adjusted": area,
        "map": {"width": width, "height": height, "pixel_area_m2": area_m2,
                "class_pixels": {name: int(n) for name, n in zip(names, map_pixels.tolist(), strict=True)}},
        "classes": [{"code": c, "name": names[k], "color": colors.get(c)} for k, c in enumerate(codes_sorted)],
    }
    feedback.check_cancel()
    json_out, html_out = write_report(report, output_report)
    logger.info("Accuracy against %s: overall accuracy %.3f, balanced accuracy %.3f, kappa %.3f, macro F1 %.3f "
                "(mean over the %d classes present in the reference) over %d pixels. Report: %s.", reference,
                validation["overall_accuracy"], validation["balanced_accuracy"] or 0.0, validation["kappa"] or 0.0,
                validation["macro_f1"] or 0.0, len(validation["macro_f1_classes"]), validation["n"], html_out)
    feedback.progress(1.0, "Done")
    return AccuracyResult(output_report=json_out, output_html=html_out,
                          overall_accuracy=validation["overall_accuracy"], kappa=validation["kappa"],
                          macro_f1=validation["macro_f1"], n=validation["n"],
                          balanced_accuracy=validation["balanced_accuracy"])
