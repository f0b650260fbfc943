"""The ``change`` operation: what changed between two dates, how much, where, and from what to what.

The second raster is regridded onto the first one's grid by GDAL when the grids differ, the two are stacked band
after band in a VRT, and a :class:`~engine.probes.change.ChangeMagnitude` value model, held in a model file, is
mapped over the stack by *Classify raster*'s code (and maps a region of stacked tiles with *Map region*). Otsu's
threshold on a seeded sample of the magnitudes splits changed from unchanged pixels, unless a threshold is given;
the report states it, with the changed area. Given a Landprobe model, both dates are classified with it and the
from-to transition raster and the transition matrix of areas come too.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from ..assess.report import write_report
from ..core.errors import InputError
from ..core.feedback import Feedback
from ..core.numbers import otsu_threshold
from ..core.versions import library_versions
from ..embeddings.inputs import describe_embeddings
from ..embeddings.unlabelled import FEATURE_CHOICES, raster_recipe, sample_features
from ..io.legend import write_category_names, write_paletted_style
from ..io.rasters import (
    atomic_output,
    check_writable,
    iter_windows,
    open_raster,
    pixel_area_m2,
    raster_info,
    temporary_path,
    write_stack_vrt,
)
from ..io.region import band_stack, regrid_onto
from ..probes.change import MEASURES, ChangeMagnitude
from ..probes.model_file import read_manifest, save_model
from .classify_raster import classify_raster, hex_to_rgba, to_cog

logger = logging.getLogger(__name__)

#: Pixels drawn for the band spreads and for the automatic threshold.
SAMPLE = 50_000
#: The colour of a transition that is no change (a class to itself) in the transition map.
UNCHANGED_COLOR = "#d9d9d9"


@dataclass
class ChangeResult:
    """What the change analysis wrote and found."""

    output: str
    output_transitions: str | None
    output_report: str | None
    output_html: str | None
    output_model: str | None
    measure: str
    threshold: float
    threshold_method: str
    changed_pixels: int
    changed_area_m2: float | None
    changed_share: float


def change(before: str | list[str], after: str | list[str], output: str, threshold: float | None = None,
           features: str = "auto", model: str | None = None, output_transitions: str | None = None,
           output_report: str | None = None, output_model: str | None = None, seed: int = 0,
           feedback: Feedback | None = None) -> ChangeResult:
    """Map how much each pixel changed between two rasters of the same kind, and what changed into what.

    Args:
        before: the first date: a raster of bands or an embedding raster (a folder of tiles, a list of files or a
            STAC file too).
        after: the second date, of the same kind (same bands, or embeddings of the same encoder); regridded onto
            the first one's grid by GDAL (nearest neighbour) when the grids differ.
        output: the change magnitude (float32 Cloud-Optimized GeoTIFF on a ramp, NaN where either date is nodata):
            cosine distance for embeddings, change-vector magnitude on standardised bands for band values.
        threshold: the magnitude at or above which a pixel counts as changed; empty: Otsu's threshold on a sample
            of the magnitudes.
        features: ``auto`` (embeddings for embedding rasters, else band values), ``bands`` or ``embeddings``.
        model: a Landprobe model that classifies both dates, for the from-to transitions.
        output_transitions: with ``model``, the transition raster: one code per (from, to) pair of classes, named
            "forest -> water" in its legend (no change in grey).
        output_report: the report (JSON, and HTML beside it): threshold and changed area, and with ``model`` the
            transition matrix of areas.
        output_model: also save the change measure (with its band spreads) as a model file: *Map region* maps a
            region with it, given the two dates stacked band after band (``gdalbuildvrt -separate`` of the first
            date's bands, then the second's).
        seed: seed of the sample the spreads and the threshold are taken from.
        feedback: progress and cancel.

    Returns:
        The files written, the threshold and the changed area.

    Raises:
        InputError: for rasters of different kinds or bands, or an option or output that cannot be used.

    """
    feedback = feedback or Feedback()
    if features not in FEATURE_CHOICES:
        raise InputError(f"Unknown features {features!r}; choose one of: {', '.join(FEATURE_CHOICES)}.")
    if output_transitions and not model:
        raise InputError("The transition raster needs a model to classify both dates: give a model, or leave the "
                         "transition raster out.")
    if model and not read_manifest(model).get("classes"):
        raise InputError(f"Model {model} maps a value (a similarity or a change), not classes: the from-to "
                         "transitions need a model from Train classifier or Cluster raster.")
    for path in filter(None, (output, output_transitions, output_report, output_model)):
        check_writable(path)
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(band_stack(before))
        second = stack.enter_context(band_stack(after))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="landprobe-change-")))
        recipe, names = _same_kind(first, second, features)
        second = regrid_onto(second, first, folder / "after_on_grid.vrt")
        pair = str(write_stack_vrt([first, second], folder / "pair.vrt", names=["before", "after"]))
        embeddings = recipe["recipe"] == "embeddings"
        measure = "cosine" if embeddings else "change_vector"
        how = recipe.get("embedding", {}).get("dequantize") if embeddings else None
        info = raster_info(pair)
        pair_recipe: dict[str, Any] = {"recipe": "raw_bands", "bands": list(range(1, info.count + 1))}
        if recipe.get("embedding", {}).get("nodata") is not None:  # AlphaEarth's -128, which its files may not declare
            pair_recipe["embedding"] = {"nodata": recipe["embedding"]["nodata"]}
        if any(v != 1 for v in info.scales) or any(v != 0 for v in info.offsets):
            pair_recipe |= {"scales": list(info.scales), "offsets": list(info.offsets)}
        sample = sample_features(pair, pair_recipe, SAMPLE, seed)
        magnitude = ChangeMagnitude(len(names), measure, how)
        left_out = magnitude.fit_spread(sample)
        if len(left_out) == len(names):
            raise InputError(f"Every band of {_name(before)} or {_name(after)} is constant on one of the dates: "
                             "nothing can show change. Check that both rasters hold image data.")
        if left_out:
            logger.warning("Left out of the change, constant on one of the dates (an empty band, or a mask filled on "
                           "one date only): %s.", ", ".join(names[i] for i in left_out))
        values = magnitude.predict_value(sample)
        top = float(np.percentile(values, 99)) if len(values) else 1.0
        manifest = _manifest(info, pair_recipe, names, measure, before, after, top)
        model_path = output_model or str(folder / "change.lpmodel")
        save_model(model_path, manifest, magnitude)
        feedback.progress(0.05, "Mapping the change")
        mapped = classify_raster(pair, model_path, output, feedback=feedback.stage(0.05, 0.6 if model else 0.9))
        method = ("given" if threshold is not None else
                  "Otsu's threshold on the logarithm of a seeded sample of the magnitudes")
        cut = float(threshold) if threshold is not None else _automatic_threshold(values)
        changed, total = _count_at_least(mapped.output, cut, feedback)
        with open_raster(mapped.output) as src:
            area = pixel_area_m2(src)
        logger.info("Change: %s; threshold %.4g (%s): %d of %d pixels changed%s.", MEASURES[measure], cut, method,
                    changed, total, f" ({changed * area / 1e4:,.1f} ha)" if area is not None else "")
        transitions = None
        if model:
            transitions = _transitions(first, second, model, output_transitions, folder, area,
                                       feedback.stage(0.6, 0.95))
    report = {"measure": MEASURES[measure], "threshold": cut, "threshold_method": method,
              "changed_pixels": changed, "valid_pixels": total, "changed_share": changed / max(total, 1),
              "changed_area_ha": changed * area / 1e4 if area is not None else None,
              "magnitude_p99": top, "transitions": transitions}
    paths: tuple[str | None, str | None] = (None, None)
    if output_report:
        paths = write_report({"title": "Landprobe change", "raster": f"{_name(before)} -> {_name(after)}",
                              "model": model, "created": manifest["created"],
                              "change": report | {"map": mapped.output, "transitions_map": output_transitions}},
                             output_report)
    feedback.progress(1.0, "Done")
    return ChangeResult(output=mapped.output, output_transitions=output_transitions if transitions else None,
                        output_report=paths[0], output_html=paths[1], output_model=output_model,
                        measure=MEASURES[measure], threshold=cut,
                        threshold_method=method, changed_pixels=changed,
                        changed_area_m2=changed * area if area is not None else None,
                        changed_share=changed / max(total, 1))


def _automatic_threshold(values: np.ndarray) -> float:
    """Otsu's threshold on the logarithm of the magnitudes.

    Changes between land covers span a wide range of magnitudes (soil to built-up is small, forest to water large):
    on the magnitudes themselves Otsu's method splits small changes from large ones and calls the small ones no
    change (a seeded scene: 5,400 of 6,200 changed pixels found); on their logarithm it splits no change from
    change (6,171; tests/engine/test_change.py).
    """
    return float(np.exp(otsu_threshold(np.log(np.maximum(values, 1e-6)))))


def _name(raster: str | list[str]) -> str:
    return raster if isinstance(raster, str) else ", ".join(raster)


def _same_kind(first: str, second: str, features: str) -> tuple[dict[str, Any], list[str]]:
    """The recipe of the first date, after checking that the second holds the same kind of values.

    Raises:
        InputError: for another band count, other embeddings, or embeddings against bands.

    """
    recipe, names = raster_recipe(first, features)
    other, other_names = raster_recipe(second, features)
    if recipe["recipe"] != other["recipe"]:
        raise InputError(f"Raster {first} holds {recipe['recipe'].replace('_', ' ')} but {second} holds "
                         f"{other['recipe'].replace('_', ' ')}: compare two rasters of the same kind.")
    if len(names) != len(other_names):
        raise InputError(f"Raster {first} has {len(names)} bands but {second} has {len(other_names)}: compare two "
                         "rasters with the same bands in the same order.")
    if recipe["recipe"] == "embeddings":
        a, b = describe_embeddings(first), describe_embeddings(second)
        if (a.kind, a.identity) != (b.kind, b.identity):
            raise InputError(f"Raster {first} holds {a.label()} but {second} holds {b.label()}: embeddings of "
                             "different encoders (or settings) are not comparable. Extract both dates with the same "
                             "encoder and settings.")
    return recipe, names


def _manifest(info: Any, recipe: dict[str, Any], names: list[str], measure: str, before: Any, after: Any,
              top: float) -> dict[str, Any]:
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "kind": "change",
        "target": "value",
        "value": {"name": f"change ({MEASURES[measure]})", "unit": "", "range": [0.0, round(max(top, 1e-6), 6)]},
        "classes": [],
        "field": "change",
        "input": {"band_count": info.count, "band_names": list(info.band_names), "dtype": info.dtype,
                  "nodata": info.nodata, "crs_wkt": info.crs_wkt, "raster": [before, after], "band_selection": None,
                  "nodatavals": list(info.nodatavals), "dtypes": list(info.dtypes)},
        "features": recipe | {"names": [f"{d} {n}" for d in ("before", "after") for n in names]},
        "libraries": library_versions(),
    }


def _count_at_least(path: str, cut: float, feedback: Feedback) -> tuple[int, int]:
    """Pixels of the map at ``path`` at or above ``cut``, and pixels with a value."""
    changed = total = 0
    with open_raster(path) as src:
        for _, window in src.block_windows(1):
            feedback.check_cancel()
            values = src.read(1, window=window)
            changed += int((values >= cut).sum())
            total += int((~np.isnan(values)).sum())
    return changed, total


def _transitions(first: str, second: str, model: str, output: str | None, folder: Path, area: float | None,
                 feedback: Feedback) -> dict[str, Any]:
    """Classify both dates with ``model``; the transition matrix (pixels and hectares) and, asked for, the map."""
    classes = read_manifest(model)["classes"]
    maps = []
    for i, raster in enumerate((first, second)):
        target = str(folder / f"classes_{i}.tif")
        classify_raster(raster, model, target, feedback=feedback.stage(0.4 * i, 0.4 * (i + 1)))
        maps.append(target)
    codes = np.array([int(c["code"]) for c in classes])
    lookup = {int(code): i for i, code in enumerate(codes)}
    n = len(classes)
    matrix = np.zeros((n, n), dtype="int64")
    dtype, nodata = ("uint8", 0) if n * n < 255 else ("uint16", 0)
    stack = contextlib.ExitStack()
    with stack, open_raster(maps[0]) as a, open_raster(maps[1]) as b:
        dst = None
        if output:
            final = stack.enter_context(atomic_output(output))
            work = temporary_path(final)
            stack.callback(work.unlink, missing_ok=True)
            profile = {"driver": "GTiff", "width": a.width, "height": a.height, "count": 1, "dtype": dtype,
                       "nodata": nodata, "crs": a.crs, "transform": a.transform, "tiled": True, "blockxsize": 256,
                       "blockysize": 256}
            dst = stack.enter_context(rasterio.open(work, "w", **profile))
            legend = _transition_classes(classes)
            if dtype == "uint8":
                dst.write_colormap(1, {c["code"]: hex_to_rgba(c["color"]) for c in legend})
        windows = list(iter_windows(a.width, a.height, 1024))
        index = np.full(int(max(codes.max(), a.nodata or 0, 0)) + 2, -1, dtype="int64")
        for code, i in lookup.items():
            if code >= 0:
                index[code] = i
        for k, window in enumerate(windows):
            feedback.check_cancel()
            x, y = a.read(1, window=window).astype("int64"), b.read(1, window=window).astype("int64")
            ix = np.where((x >= 0) & (x < len(index)), index[np.clip(x, 0, len(index) - 1)], -1)
            iy = np.where((y >= 0) & (y < len(index)), index[np.clip(y, 0, len(index) - 1)], -1)
            ok = (ix >= 0) & (iy >= 0)
            matrix += np.bincount(ix[ok] * n + iy[ok], minlength=n * n).reshape(n, n)
            if dst is not None:
                out = np.zeros(x.shape, dtype=dtype)
                out[ok] = (ix[ok] * n + iy[ok] + 1).astype(dtype)
                dst.write(out, 1, window=window)
            feedback.progress((k + 1) / len(windows), "Counting the transitions")
        if dst is not None:
            dst.close()
            to_cog(work, final, "NEAREST")
            write_category_names(Path(str(final) + ".aux.xml"), legend, nodata)
            write_paletted_style(final.with_suffix(".qml"), legend)
    names = [c["name"] for c in classes]
    hectares = (matrix * area / 1e4).round(4).tolist() if area is not None else None
    logger.info("Transitions: %d of %d classified pixels changed class.", int(matrix.sum() - np.trace(matrix)),
                int(matrix.sum()))
    return {"classes": names, "pixels": matrix.tolist(), "hectares": hectares,
            "changed_class_pixels": int(matrix.sum() - np.trace(matrix)), "classified_pixels": int(matrix.sum())}


def _transition_classes(classes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The legend of the transition map: code ``from * n + to + 1``, named "from -> to", grey when unchanged."""
    n = len(classes)
    return [{"code": i * n + j + 1, "name": f"{a['name']} -> {b['name']}",
             "color": UNCHANGED_COLOR if i == j else b["color"]}
            for i, a in enumerate(classes) for j, b in enumerate(classes)]
