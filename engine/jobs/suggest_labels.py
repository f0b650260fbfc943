"""The ``suggest_labels`` operation: where to label next, so that each new label helps the model most.

A seeded sample of candidate pixels is drawn from the raster (whole random blocks, as for clustering) and predicted
with the model. Each candidate's uncertainty is the margin between its two most probable classes (or the entropy of
its probabilities), candidates near existing labels are left out, and the suggestions are picked greedily from the
most uncertain ones so that they spread over feature space and over the map: each next pick maximises its
uncertainty times (1 + its standardised feature distance to the picks so far), among candidates at least
``spacing`` pixels from every pick. The points carry the model's top two classes and its confidence, and an empty
class field named like the model's, to fill in QGIS; *Train classifier* takes them with the polygons as ``MORE_LABELS``.

:func:`rank_candidates` is that choice on arrays (probabilities, features, positions, the candidates near the labels),
which ``benchmarks/bench_active_learning.py`` calls in its simulated labelling rounds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..assess.report import write_report
from ..core.errors import InputError
from ..core.feedback import Feedback
from ..embeddings.features import compute_features
from ..embeddings.unlabelled import sample_pixels_at
from ..io.labels import split_layer_uri
from ..io.rasters import atomic_output, check_writable, open_raster
from ..io.region import band_stack
from ..probes.model_file import load_model, read_manifest
from ..probes.registry import MODELS

logger = logging.getLogger(__name__)

#: Columns of the suggested points besides the field to fill in (a field of that name would clash).
RESERVED_CLASS_FIELDS = frozenset({"rank", "top1", "top2", "confidence", "margin", "entropy", "fid"})
RESERVED_VALUE_FIELDS = frozenset({"rank", "predicted", "spread", "fid"})
#: How uncertainty is measured.
RULES = ("margin", "entropy")
#: Candidates drawn from the raster.
CANDIDATES = 50_000
#: The most uncertain candidates, per suggestion asked, among which the spread-out picks are made.
POOL_PER_POINT = 10


@dataclass
class SuggestionResult:
    """The points written and how they were chosen."""

    output: str
    n_points: int
    rule: str
    mean_confidence: float | None
    output_report: str | None = None
    output_html: str | None = None
    #: For a regression model: the mean uncertainty (spread) at the points, in the value's unit.
    mean_spread: float | None = None


def suggest_labels(raster: str | list[str], model: str, output: str, n_points: int = 50,
                   labels: str | None = None, rule: str = "margin", spacing: int = 10, seed: int = 0,
                   feedback: Feedback | None = None, output_report: str | None = None) -> SuggestionResult:
    """Suggest the places where a new label would help the model most, as points with an empty class field.

    Args:
        raster: the raster the model maps (a folder of tiles, a list of files or a STAC file too).
        model: a classification model (``.lpmodel``) from *Train classifier*, or a random forest or k-NN model from
            *Train regressor* (learned pixel by pixel): its places are ranked by the spread of its trees or
            neighbours, and the points carry its prediction and spread instead of classes.
        output: the points to write (GeoPackage).
        n_points: how many places to suggest.
        labels: the labels the model was trained on: no suggestion within ``spacing`` pixels of them.
        rule: ``margin`` (the gap between the two most probable classes) or ``entropy`` (of all probabilities).
        spacing: the least distance between two suggestions, and from the labels, in pixels.
        seed: seed of the candidates.
        feedback: progress and cancel.
        output_report: the rule, its settings and the points as a report (JSON, and HTML beside it).

    Returns:
        The files written, the points and the mean confidence at them.

    Raises:
        InputError: for a model without classes or a spread, one that runs an encoder or a network, or an option or
            output that cannot be used.

    """
    feedback = feedback or Feedback()
    if rule not in RULES:
        raise InputError(f"Unknown rule {rule!r}; choose one of: {', '.join(RULES)}.")
    if n_points < 1 or spacing < 0:
        raise InputError(f"Ask for at least one point, with a spacing of 0 or more pixels (got {n_points} points, "
                         f"spacing {spacing}).")
    if Path(output).suffix.lower() != ".gpkg":
        raise InputError(f"Suggested points {output}: write them as a GeoPackage (.gpkg).")
    check_writable(output)
    if output_report:
        check_writable(output_report)
    manifest = read_manifest(model)
    recipe = manifest.get("features", {})
    is_value = manifest.get("target") == "value"
    field = str(manifest.get("field") or ("value" if is_value else "class"))
    taken_names = RESERVED_VALUE_FIELDS if is_value else RESERVED_CLASS_FIELDS
    if field.casefold() in taken_names:
        raise InputError(f"The model's field {field!r} has the name of a column the points carry ("
                         f"{', '.join(sorted(taken_names))}): rename the field in the labels and train again.")
    if is_value:
        _check_value_model(manifest, model)
    elif not manifest.get("classes"):
        raise InputError(f"Model {model} has no classes: suggestions need a model from Train classifier or Train "
                         "regressor.")
    if recipe.get("recipe") == "encoder" or manifest.get("kind") == "deep" or "network" in manifest:
        raise InputError(f"Model {model} computes its features with a network: suggestions work with probes on "
                         "band values or embedding rasters for now.")
    loaded = load_model(model)
    classes = [c["name"] for c in manifest["classes"]]
    selection = manifest.get("input", {}).get("band_selection")
    with band_stack(raster, selection) as path:
        values, rows, cols = sample_pixels_at(path, recipe, CANDIDATES, seed)
        with open_raster(path) as src:
            transform, crs = src.transform, src.crs
            taken = _near_labels(labels, src, rows, cols, spacing) if labels else np.zeros(len(rows), dtype=bool)
    feedback.progress(0.3, f"Predicting {len(rows):,} candidate pixels")
    features = compute_features(values, recipe)
    if is_value:
        return _suggest_values(loaded, features, rows, cols, taken, (transform, crs), raster, model, labels, output,
                               n_points, spacing, seed, output_report)
    _, proba = loaded.probe.predict(features, proba=True)
    assert proba is not None
    order, top, margin, entropy = _uncertainty(proba)
    feedback.check_cancel()
    picks = rank_candidates(proba, features, rows, cols, n_points, rule, spacing, taken)
    if not picks:
        raise InputError(f"No candidate pixel of {raster} is {spacing} pixels away from the labels: lower the "
                         "spacing, or the labels already cover the raster.")
    _write_points(output, picks, rows, cols, transform, crs, classes, order, top, margin, entropy,
                  manifest.get("field", "class"))
    confidence = float(top[picks, 0].mean())
    logger.info("Suggested %d places (rule: %s, spacing %d px; %d candidates, %d near the labels left out); mean "
                "confidence there %.2f.", len(picks), rule, spacing, len(rows), int(taken.sum()), confidence)
    paths: tuple[str | None, str | None] = (None, None)
    if output_report:
        index = np.asarray(picks)
        xs, ys = (np.atleast_1d(v) for v in transform * (cols[index] + 0.5, rows[index] + 0.5))
        points = [{"rank": i + 1, "top1": classes[order[p, 0]],
                   "top2": classes[order[p, 1]] if order.shape[1] > 1 else "", "confidence": float(top[p, 0]),
                   "margin": float(margin[p]), "entropy": float(entropy[p]), "x": float(x), "y": float(y)}
                  for i, (p, x, y) in enumerate(zip(picks, xs, ys, strict=True))]
        paths = _write_report(output_report, raster, labels, model, {
            "n_points": len(picks), "rule": rule, "spacing": spacing, "candidates": len(rows),
            "near_labels": int(taken.sum()) if labels else None, "pool": POOL_PER_POINT * n_points, "seed": seed,
            "mean_confidence": confidence, "median_confidence": float(np.median(top[:, 0])), "output": output,
            "points": points})
    feedback.progress(1.0, "Done")
    return SuggestionResult(output=output, n_points=len(picks), rule=rule, mean_confidence=confidence,
                            output_report=paths[0], output_html=paths[1])


def _write_report(output_report: str, raster: str | list[str], labels: str | None, model: str,
                  suggestions: dict[str, Any]) -> tuple[str, str]:
    """The report of the suggestions (JSON, and HTML beside it): the inputs and the ``suggestions`` section."""
    return write_report({"title": "Landprobe: where to label next",
                         "raster": raster if isinstance(raster, str) else ", ".join(raster), "labels": labels,
                         "model": model, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                         "suggestions": suggestions}, output_report)


def _check_value_model(manifest: dict[str, Any], model: str) -> None:
    """Refuse a value model that gives no per-pixel uncertainty, or that learned per polygon, in one sentence."""
    probe = MODELS.get(str(manifest.get("method")))
    if getattr(probe, "spread", None) is None:
        label = getattr(probe, "label", manifest.get("method"))
        raise InputError(f"Model {model} ({label}) gives no per-pixel uncertainty to rank places by: train it with "
                         "the random forest or k-nearest neighbours regressor, or use a model from Train classifier.")
    if (manifest.get("support") or {}).get("kind") == "polygon":
        raise InputError(f"Model {model} learned from whole polygons (polygon support): suggestions rank single "
                         "pixels. Train it with support pixel to get suggestions.")


def _suggest_values(loaded: Any, features: np.ndarray, rows: np.ndarray, cols: np.ndarray, taken: np.ndarray,
                    grid: tuple[Any, Any], raster: str | list[str], model: str, labels: str | None, output: str,
                    n_points: int, spacing: int, seed: int, output_report: str | None) -> SuggestionResult:
    """:func:`suggest_labels` for a regression model: the candidates ranked by the spread of its trees or neighbours.

    ``benchmarks/bench_active_learning.py`` measured this rule on a synthetic quantity: it did not beat random points
    (R² 0.913 against 0.917 at 90 labels); the report and the log say so.
    """
    manifest = loaded.manifest
    logger.info("A regression model: the places are ranked by %s, whatever the rule.", loaded.probe.spread)
    predicted, spread = loaded.probe.predict_value_and_spread(features)
    uncertainty = np.asarray(spread, dtype="float64").copy()
    uncertainty[taken] = -np.inf
    picks = _spread_picks(uncertainty, features, rows, cols, n_points, spacing)
    if not picks:
        raise InputError(f"No candidate pixel of {raster} is {spacing} pixels away from the labels: lower the "
                         "spacing, or the labels already cover the raster.")
    value = manifest.get("value", {})
    transform, crs = grid
    index = np.asarray(picks)
    xs, ys = (np.atleast_1d(v) for v in transform * (cols[index] + 0.5, rows[index] + 0.5))
    _write_value_points(output, index, xs, ys, crs, predicted, spread, manifest.get("field") or "value")
    mean_spread, median_spread = float(spread[index].mean()), float(np.median(spread))
    logger.info("Suggested %d places where the model's %s is largest (spacing %d px; %d candidates, %d near the "
                "labels left out): %.4g %s there on average, %.4g for the median candidate. In a simulation this "
                "rule did not beat random points for a quantity: label some random places too.", len(picks),
                loaded.probe.spread, spacing, len(rows), int(taken.sum()), mean_spread, value.get("unit", ""),
                median_spread)
    paths: tuple[str | None, str | None] = (None, None)
    if output_report:
        points = [{"rank": i + 1, "predicted": float(predicted[p]), "spread": float(spread[p]), "x": float(x),
                   "y": float(y)} for i, (p, x, y) in enumerate(zip(picks, xs, ys, strict=True))]
        paths = _write_report(output_report, raster, labels, model, {
            "n_points": len(picks), "rule": "spread", "spread": loaded.probe.spread, "unit": value.get("unit", ""),
            "spacing": spacing, "candidates": len(rows), "near_labels": int(taken.sum()) if labels else None,
            "pool": POOL_PER_POINT * n_points, "seed": seed, "mean_spread": mean_spread,
            "median_spread": median_spread, "output": output, "points": points})
    return SuggestionResult(output=output, n_points=len(picks), rule="spread", mean_confidence=None,
                            output_report=paths[0], output_html=paths[1], mean_spread=mean_spread)


def _write_value_points(output: str, index: np.ndarray, xs: np.ndarray, ys: np.ndarray, crs: Any,
                        predicted: np.ndarray, spread: np.ndarray, field: str) -> None:
    """The suggested points of a regression model: an empty numeric field to fill, the prediction and its spread."""
    # Lazy: the vector stack is needed only here.
    import geopandas as gpd
    from shapely.geometry import Point

    frame = gpd.GeoDataFrame({
        field: np.full(len(index), np.nan),
        "rank": np.arange(1, len(index) + 1),
        "predicted": np.asarray(predicted)[index].round(4),
        "spread": np.asarray(spread)[index].round(4),
    }, geometry=[Point(x, y) for x, y in zip(xs, ys, strict=True)], crs=crs)
    with atomic_output(output) as tmp:
        frame.to_file(tmp, driver="GPKG", layer=Path(output).stem)


def rank_candidates(proba: np.ndarray, features: np.ndarray, rows: np.ndarray, cols: np.ndarray, n: int,
                    rule: str = "margin", spacing: int = 10, taken: np.ndarray | None = None) -> list[int]:
    """The candidates to label next, best first: the rule of :func:`suggest_labels` on arrays.

    Each candidate's uncertainty is ``1 - margin`` (the gap between its two most probable classes) or the entropy
    of its probabilities, divided by the log of the number of classes. Candidates flagged in ``taken`` are never
    picked. Among the ``POOL_PER_POINT * n`` most uncertain candidates the picks are made greedily: each next pick
    maximises its uncertainty times (1 + its standardised feature distance to the picks so far, over the largest
    such distance), among candidates at least ``spacing`` pixels (at least 1) from every earlier pick.

    Args:
        proba: the model's class probabilities at the candidates, shape (m, classes).
        features: the candidates' features, shape (m, f) (standardised over the pool here).
        rows: each candidate's row on the raster's grid, shape (m,).
        cols: each candidate's column, shape (m,).
        n: how many picks at most.
        rule: ``margin`` or ``entropy`` (:data:`RULES`).
        spacing: the least distance between two picks, in pixels.
        taken: candidates that may not be picked (near the labels), a boolean mask of shape (m,); none when ``None``.

    Returns:
        Indices into the candidates, in the order picked; fewer than ``n`` when too few candidates are free and
        ``spacing`` apart, empty when none is.

    Raises:
        InputError: for an unknown ``rule``.

    """
    if rule not in RULES:
        raise InputError(f"Unknown rule {rule!r}; choose one of: {', '.join(RULES)}.")
    _, _, margin, entropy = _uncertainty(proba)
    uncertainty = 1 - margin if rule == "margin" else entropy
    if taken is not None:
        uncertainty[np.asarray(taken, dtype=bool)] = -np.inf
    return _spread_picks(uncertainty, features, rows, cols, n, spacing)


def _uncertainty(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Classes by probability (m, classes), the top two probabilities (m, 2), the margin and the scaled entropy."""
    order = np.argsort(-proba, axis=1)
    top = np.take_along_axis(proba, order[:, :2], axis=1) if proba.shape[1] > 1 else np.c_[proba, np.zeros(len(proba))]
    margin = top[:, 0] - top[:, 1]
    entropy = -(proba * np.log(np.clip(proba, 1e-12, 1))).sum(axis=1) / np.log(max(2, proba.shape[1]))
    return order, top, margin, entropy


def _near_labels(labels: str, src: Any, rows: np.ndarray, cols: np.ndarray, spacing: int) -> np.ndarray:
    """Which candidates lie within ``spacing`` pixels of a label."""
    # Lazy: the vector stack is needed only here.
    import geopandas as gpd
    import shapely

    file_path, layer = split_layer_uri(labels)
    try:
        frame = gpd.read_file(file_path, layer=layer) if layer else gpd.read_file(file_path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise InputError(f"Cannot read the label layer {labels}: {exc}") from None
    if frame.crs is not None and src.crs is not None:
        frame = frame.to_crs(src.crs)
    size = abs(src.transform.a)
    zone = shapely.union_all(frame.geometry.buffer(spacing * size).to_numpy())
    xs, ys = src.transform * (cols + 0.5, rows + 0.5)
    return shapely.contains_xy(zone, np.asarray(xs), np.asarray(ys))


def _spread_picks(uncertainty: np.ndarray, features: np.ndarray, rows: np.ndarray, cols: np.ndarray, n: int,
                  spacing: int) -> list[int]:
    """Greedy picks among the most uncertain candidates, spread over feature space and the map."""
    pool = np.argsort(-uncertainty)[:POOL_PER_POINT * n]
    pool = pool[np.isfinite(uncertainty[pool])]
    if not len(pool):
        return []
    z = features[pool].astype("float64")
    z = (z - z.mean(axis=0)) / np.where(z.std(axis=0) > 0, z.std(axis=0), 1)
    u = uncertainty[pool]
    nearest = np.full(len(pool), np.inf)  # feature distance to the closest pick so far
    allowed = np.ones(len(pool), dtype=bool)
    picks: list[int] = []
    while len(picks) < n and allowed.any():
        spread = np.where(np.isfinite(nearest), nearest / (np.nanmax(np.where(np.isfinite(nearest), nearest, 0))
                                                           or 1), 1.0)
        score = np.where(allowed, u * (1 + spread), -np.inf)
        best = int(np.argmax(score))
        picks.append(int(pool[best]))
        nearest = np.minimum(nearest, np.linalg.norm(z - z[best], axis=1))
        allowed &= np.hypot(rows[pool] - rows[pool[best]], cols[pool] - cols[pool[best]]) >= max(spacing, 1)
    return picks


def _write_points(output: str, picks: list[int], rows: np.ndarray, cols: np.ndarray, transform: Any, crs: Any,
                  classes: list[str], order: np.ndarray, top: np.ndarray, margin: np.ndarray, entropy: np.ndarray,
                  field: str) -> None:
    # Lazy: the vector stack is needed only here.
    import geopandas as gpd
    from shapely.geometry import Point

    index = np.asarray(picks)
    xs, ys = transform * (cols[index] + 0.5, rows[index] + 0.5)
    frame = gpd.GeoDataFrame({
        field: [None] * len(index),
        "rank": np.arange(1, len(index) + 1),
        "top1": [classes[i] for i in order[index, 0]],
        "top2": [classes[i] for i in order[index, 1]] if order.shape[1] > 1 else [""] * len(index),
        "confidence": top[index, 0].round(4),
        "margin": margin[index].round(4),
        "entropy": entropy[index].round(4),
    }, geometry=[Point(x, y) for x, y in zip(np.atleast_1d(xs), np.atleast_1d(ys), strict=True)], crs=crs)
    frame[field] = frame[field].astype("string")
    with atomic_output(output) as tmp:
        frame.to_file(tmp, driver="GPKG", layer=Path(output).stem)
