"""The ``train_regressor`` operation: a quantity per pixel (biomass, cover, yield) learned from polygons with values.

The pixels under the polygons are read with the value of their polygon, as *Train classifier* reads classes. The
validation holds out whole polygons: the pixels are split into folds by polygon (scikit-learn's ``GroupKFold``), and
with the automatic method each fold's method is chosen on that fold's training polygons only (an inner grouped
cross-validation), so the held-out polygons never take part in the choice. The final model is chosen the same way on
every polygon and fitted on all of them. The report gives R², RMSE, MAE and bias per fold and overall, and the
observed-against-predicted plot. The model is a value model: *Classify raster* maps it as a float32 COG on a ramp
and *Map region* maps a region with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..assess.plots import observed_predicted_png
from ..assess.report import html_path, write_report
from ..core.errors import InputError
from ..core.feedback import Feedback
from ..core.versions import library_versions
from ..embeddings.encoders import EncoderOptions
from ..embeddings.sources import FEATURE_SOURCES, load_embeddings, load_encoded, load_raw_bands
from ..embeddings.support import MIN_POLYGON_PIXELS, STATS, aggregate_groups, cell_size
from ..io.labels import merge_labels
from ..io.rasters import check_writable
from ..probes.model_file import save_model
from ..probes.regressors import REGRESSORS, Regressor
from ..samples.validation import cap_per_class

logger = logging.getLogger(__name__)

#: ``auto`` or a regression probe's name.
AUTO = "auto"
#: Folds of the inner choice (on each outer fold's training polygons).
INNER_FOLDS = 3
#: What a regression learns from: band values, an embedding raster's cells, or an encoder's run on the fly.
REGRESSION_FEATURES = dict(FEATURE_SOURCES)
#: How a value that belongs to a polygon is learned (see :func:`train_regressor`).
SUPPORTS = (AUTO, "pixel", "polygon")


@dataclass
class RegressionResult:
    """What the regression training wrote and how well it validated."""

    output_model: str
    output_report: str | None
    output_html: str | None
    method: str
    r2: float | None
    rmse: float | None
    mae: float | None
    bias: float | None
    n_samples: int
    n_polygons: int
    #: ``pixel`` or ``polygon``: how the model learned (and the map is made).
    support: str = "pixel"


def train_regressor(raster: str | list[str], labels: str, field: str, output_model: str, method: str = AUTO,
                    unit: str = "", output_report: str | None = None, bands: list[int] | None = None,
                    n_folds: int = 5, max_samples: int = 20_000, seed: int = 0,
                    feedback: Feedback | None = None, features: str = "raw_bands",
                    min_coverage: float = 0.5, support: str = AUTO, encoder: str = "rcf_gaussian",
                    patch_size: int | None = None, stride: int | None = None, weights: str | None = None,
                    weights_file: str | None = None, band_map: str | None = None,
                    architecture: str | None = None, more_labels: list[str] | None = None) -> RegressionResult:
    """Train a regression probe on the band values under polygons that carry a number, validated on held-out polygons.

    Args:
        raster: the raster (a folder of tiles, a list of files or a STAC file too).
        labels: polygons (or points) with a numeric field.
        field: the numeric field: the quantity to map.
        output_model: the model file to write (``.lpmodel``).
        method: ``auto`` (chosen by grouped cross-validation on the training polygons), ``ridge``,
            ``random_forest_regressor``, ``xgboost_regressor`` or ``knn_regressor``.
        unit: the quantity's unit, for the report and the map's legend (e.g. ``t/ha``, ``%``).
        output_report: the report (JSON, and HTML beside it).
        bands: the bands to use (1-based; default all).
        n_folds: folds of the validation by polygons (at most one per polygon).
        max_samples: at most this many pixels, shared evenly among the polygons.
        seed: seed of the subsample and of the forest.
        feedback: progress and cancel.
        features: ``raw_bands`` (the raster's band values, pixel by pixel), ``embeddings`` (the raster is an
            embedding raster: Landprobe, Google Satellite Embedding / AlphaEarth, TESSERA; each cell covered enough by
            the polygons learns the value of the polygon covering most of it) or ``encoder`` (the embeddings are
            computed from the raster's bands by ``encoder``, stored in the model and run again when mapping).
        min_coverage: with ``embeddings``, the least share of a cell the polygons must cover (0 to 1).
        support: ``pixel`` (each pixel learns its polygon's value from its own features), ``polygon`` (each polygon
            is one sample: the statistics of its pixels' features, :mod:`engine.embeddings.support`; the map is made
            in cells the size of a typical polygon) or ``auto`` (both validated on the same held-out polygons, at
            the polygon level; the better R² wins). Points and polygons of fewer than 4 pixels (median) are
            learned pixel by pixel.
        encoder: with ``features="encoder"``, a name from :data:`engine.embeddings.encoders.ENCODERS`.
        patch_size: the encoder's patch size in pixels (default: the encoder's).
        stride: pixels between patch centres, the embedding cell size (default: the patch size).
        weights: torchgeo weight name for a torchgeo backbone.
        weights_file: a local weights file (state dict), read with ``weights_only=True``.
        band_map: which raster band feeds each band the weights expect (``"1,2,3"``).
        architecture: the network of a weights file (a torchgeo backbone name).
        more_labels: more layers with the same value field (the points of *Suggest labels*, measured): merged with
            ``labels`` into ``<model>.labels.gpkg`` beside the model, features left empty skipped.

    Returns:
        The files written, the method and the validation figures.

    Raises:
        InputError: for a layer, field, option or output that cannot be used; the message says which.

    """
    feedback = feedback or Feedback()
    if method != AUTO and method not in REGRESSORS:
        raise InputError(f"Unknown method {method!r}; choose one of: {AUTO}, {', '.join(REGRESSORS)}.")
    if features not in REGRESSION_FEATURES:
        raise InputError(f"Unknown features {features!r}; choose one of: {', '.join(REGRESSION_FEATURES)}.")
    if support not in SUPPORTS:
        raise InputError(f"Unknown support {support!r}; choose one of: {', '.join(SUPPORTS)}.")
    if features == "encoder" and support == "polygon":
        raise InputError("Polygon support works on band values and embedding rasters: with an encoder run on the fly "
                         "use support auto or pixel, or extract the embeddings first and train on them.")
    if features == "embeddings" and bands:
        raise InputError("An embedding raster is used with all its dimensions: leave the bands empty.")
    check_writable(output_model)
    if output_report:
        check_writable(output_report)
    if more_labels:  # the polygons and the points measured since (Suggest labels), written beside the model
        labels = merge_labels(labels, list(more_labels), field, str(Path(output_model).with_suffix("")) +
                              ".labels.gpkg")
    if features == "embeddings":
        loaded = load_embeddings(raster, labels, field, min_coverage, feedback.stage(0.0, 0.3), None, values=True)
    elif features == "encoder":
        options = EncoderOptions(encoder, patch_size, stride, weights, weights_file, band_map, architecture, seed=seed)
        loaded = load_encoded(raster, labels, field, options, min_coverage, feedback.stage(0.0, 0.3), None,
                              [int(b) for b in bands] if bands else None, values=True)
    else:
        loaded = load_raw_bands(raster, labels, field, False, None, feedback.stage(0.0, 0.3), None,
                                [int(b) for b in bands] if bands else None, values=True)
    samples = loaded.samples
    _, full_counts = np.unique(samples.groups, return_counts=True)  # the polygons' sizes before the subsample
    keep = cap_per_class(samples.y, samples.groups, max_samples, seed)
    samples = replace(samples, x=samples.x[keep], y=samples.y[keep], groups=samples.groups[keep],
                      rows=samples.rows[keep], cols=samples.cols[keep], targets=samples.targets[keep])
    x, target, groups = samples.x.astype("float64"), np.asarray(samples.targets, dtype="float64"), samples.groups
    n_polygons = len(np.unique(groups))
    if n_polygons < 3:
        raise InputError(f"The values of {labels} fall on {n_polygons} polygon(s) of the raster: a regression needs "
                         "at least 3 polygons (5 or more to validate it usefully). Add polygons with values.")
    feedback.progress(0.3, "Validating on held-out polygons")
    figures, chosen_per_fold = _validate(x, target, groups, method, n_folds, seed, feedback.stage(0.3, 0.6))
    if features == "encoder":  # its cells are mapped one by one (Classify raster, Map region): pixel support
        support_report: dict[str, Any] = {"chosen": "pixel", "reason": "Pixel by pixel: polygon support works on "
                                          "band values and embedding rasters, not on an encoder run on the fly."}
    else:
        support_report = _support_choice(x, target, groups, full_counts, figures, method, support, n_folds, seed,
                                         labels, feedback.stage(0.6, 0.8))
    n_pixels = len(target)
    if support_report["chosen"] == "polygon":
        x, target, groups = aggregate_groups(x, groups, target)  # one sample per polygon, as validated
        figures, chosen_per_fold = support_report.pop("polygon_validation")
    else:
        support_report.pop("polygon_validation", None)
    points = {k: figures.pop(k) for k in ("observed", "predicted", "fold_of")}  # for the plot, not the manifest
    feedback.progress(0.8, "Training the final model on every polygon")
    final = method if method != AUTO else _choose(x, target, groups, seed)[0]
    model = _build(final, seed).fit_values(x, target)
    low, high = np.percentile(target, [2, 98])
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "kind": "regression",
        "target": "value",
        "value": {"name": field, "unit": unit, "range": [float(low), float(high) if high > low else float(low) + 1]},
        "classes": [],
        "field": field,
        "input": {"band_count": loaded.info.count, "band_names": list(loaded.info.band_names),
                  "dtype": loaded.info.dtype, "nodata": loaded.info.nodata, "crs_wkt": loaded.info.crs_wkt,
                  "raster": raster, "band_selection": loaded.bands,
                  "nodatavals": list(loaded.info.nodatavals), "dtypes": list(loaded.info.dtypes)},
        "features": loaded.recipe,
        "training": {**samples.stats, "labels": labels, "n_samples_used": len(target)},
        "regression": {"method": final, "requested": method, "validation": figures,
                       "chosen_per_fold": chosen_per_fold, "support": support_report},
        "libraries": library_versions(),
    }
    if support_report["chosen"] == "polygon":  # the map aggregates cells the size of a typical polygon
        manifest["support"] = {"kind": "polygon", "cell_px": support_report["cell_px"], "stats": list(STATS)}
    save_model(output_model, manifest, model, loaded.encoder_arrays)
    logger.info("Validation on held-out polygons (%d folds): R² %.3f, RMSE %.4g, MAE %.4g, bias %+.4g %s.",
                len(figures["folds"]), figures["r2"], figures["rmse"], figures["mae"], figures["bias"], unit)
    paths: tuple[str | None, str | None] = (None, None)
    if output_report:
        png = str(html_path(output_report).with_suffix("")) + "_observed_predicted.png"
        observed_predicted_png(points["observed"], points["predicted"], points["fold_of"], png, unit)
        paths = write_report({"title": "Landprobe regression", "raster": raster if isinstance(raster, str) else
                              ", ".join(raster), "labels": labels, "field": field, "model": output_model,
                              "created": manifest["created"],
                              "regression": {**manifest["regression"], "unit": unit, "png": png,
                                             "n_samples": n_pixels, "n_polygons": n_polygons}}, output_report)
    feedback.progress(1.0, "Done")
    return RegressionResult(output_model=output_model, output_report=paths[0], output_html=paths[1], method=final,
                            r2=figures["r2"], rmse=figures["rmse"], mae=figures["mae"], bias=figures["bias"],
                            n_samples=n_pixels, n_polygons=n_polygons, support=support_report["chosen"])


def _support_choice(x: np.ndarray, target: np.ndarray, groups: np.ndarray, sizes: np.ndarray,
                    pixel_figures: dict[str, Any],
                    method: str, support: str, n_folds: int, seed: int, labels: str,
                    feedback: Feedback) -> dict[str, Any]:
    """Pixel by pixel or polygon support: both scored on the same held-out polygons, at the polygon level.

    The pixel model's held-out predictions are averaged over each polygon (what its map gives a polygon); the
    polygon model is validated on the statistics of each polygon's pixels, with folds of the same polygons. The
    polygons' ``sizes`` (their pixel counts before any subsample) give the median and the map's cell. The choice is
    made on these held-out figures, so the winner's are slightly optimistic (the better of two): the report says so.

    Returns:
        ``chosen``, the reason in words, ``cell_px`` (the map's cells, polygon support), the polygon-level figures
        of each support, and (polygon support tried) ``polygon_validation``: its figures and the methods chosen.

    Raises:
        InputError: polygon support asked for on points or polygons too small to aggregate.

    """
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    points = int((sizes == 1).sum())
    if points and support != "pixel" and points < len(sizes):  # plots and points together: one support for all
        if support == "polygon":
            raise InputError(f"{points} of the labels of {labels} are points (one pixel each) among polygons: "
                             "polygon support learns from whole polygons. Use support pixel, or polygons only.")
        return {"chosen": "pixel", "reason": f"Pixel by pixel: {points} of the labels are points (one pixel "
                                             "each), which polygon support cannot learn from."}
    median = float(np.median(sizes))
    if median < MIN_POLYGON_PIXELS:
        if support == "polygon":
            raise InputError(f"The polygons of {labels} hold {median:g} pixel(s) each (median): too few to learn "
                             f"from their pixels together (at least {MIN_POLYGON_PIXELS}). Use support pixel.")
        return {"chosen": "pixel", "reason": f"Pixel by pixel: the polygons (or points) hold {median:g} pixel(s) "
                                             "each (median), too few to aggregate."}
    if support == "pixel":
        return {"chosen": "pixel", "reason": "Pixel by pixel, as asked."}
    mean_predicted = np.bincount(inverse, weights=pixel_figures["predicted"]) / counts
    observed = np.bincount(inverse, weights=target) / counts
    pixel_level = _scores(observed, mean_predicted)
    xa, ya, ga = aggregate_groups(x, groups, target)
    polygon_figures, polygon_chosen = _validate(xa, ya, ga, method, n_folds, seed, feedback)
    polygon_level = {k: polygon_figures[k] for k in ("r2", "rmse", "mae", "bias", "n")}
    cell = cell_size(sizes)
    if support == "polygon":
        chosen, why = "polygon", "Polygon support, as asked."
    else:
        chosen = "polygon" if polygon_level["r2"] > pixel_level["r2"] else "pixel"
        why = (f"{'Polygon support' if chosen == 'polygon' else 'Pixel by pixel'}: on the same held-out polygons, "
               f"the polygon model's R² is {polygon_level['r2']:.3f} and the pixel model's, averaged over each "
               f"polygon, {pixel_level['r2']:.3f} (chosen on these figures: the winner's are slightly optimistic).")
    logger.info("%s%s", why, f" The map is made in cells of {cell} x {cell} px (the side of a typical polygon)."
                if chosen == "polygon" else "")
    return {"chosen": chosen, "reason": why, "cell_px": cell, "median_polygon_px": median,
            "stats": list(STATS), "pixel_at_polygon_level": pixel_level, "polygon": polygon_level,
            "polygon_validation": (polygon_figures, polygon_chosen)}


def _build(name: str, seed: int) -> Regressor:
    return REGRESSORS[name](seed=seed) if name == "random_forest_regressor" else REGRESSORS[name]()


def _folds(groups: np.ndarray, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped folds: every polygon's pixels in one fold."""
    # Lazy: scikit-learn takes half a second to import.
    from sklearn.model_selection import GroupKFold

    k = min(n_folds, len(np.unique(groups)))
    return list(GroupKFold(n_splits=k).split(np.zeros(len(groups)), groups=groups))


def _scores(observed: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """R², RMSE, MAE and bias (mean of predicted - observed)."""
    error = predicted - observed
    total = float(((observed - observed.mean()) ** 2).sum())
    return {"r2": 1 - float((error ** 2).sum()) / total if total > 0 else float("nan"),
            "rmse": float(np.sqrt((error ** 2).mean())), "mae": float(np.abs(error).mean()),
            "bias": float(error.mean()), "n": len(observed)}


def _choose(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int) -> tuple[str, dict[str, float]]:
    """The probe with the best mean R² over grouped folds of these samples (ties: the order of REGRESSORS)."""
    folds = _folds(groups, INNER_FOLDS)
    scores = {}
    for name in REGRESSORS:
        values = []
        for train, test in folds:
            model = _build(name, seed)
            model.fit_threads = None
            predicted = model.fit_values(x[train], y[train]).predict_value(x[test]).astype("float64")
            values.append(_scores(y[test], predicted)["r2"])
        scores[name] = float(np.nanmean(values))
    best = max(scores, key=lambda n: (scores[n], -list(REGRESSORS).index(n)))
    return best, scores


def _validate(x: np.ndarray, y: np.ndarray, groups: np.ndarray, method: str, n_folds: int, seed: int,
              feedback: Feedback) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Outer folds by polygon; in each, the method chosen on its training polygons; the pooled held-out figures."""
    folds = _folds(groups, n_folds)
    predicted = np.zeros(len(y))
    fold_of = np.zeros(len(y), dtype="int64")
    per_fold, chosen = [], []
    for k, (train, test) in enumerate(folds):
        feedback.check_cancel()
        if method == AUTO:
            name, inner = _choose(x[train], y[train], groups[train], seed)
            chosen.append({"fold": k + 1, "method": name, "inner_r2": inner})
        else:
            name = method
        model = _build(name, seed).fit_values(x[train], y[train])
        predicted[test] = model.predict_value(x[test])
        fold_of[test] = k
        per_fold.append({"fold": k + 1, "method": name, "n_polygons": len(np.unique(groups[test])),
                         **_scores(y[test], predicted[test])})
        feedback.progress((k + 1) / len(folds), f"Fold {k + 1} of {len(folds)}")
    overall = _scores(y, predicted)
    return {**overall, "folds": per_fold, "n_folds": len(folds), "scheme": "grouped by polygon",
            "observed": y, "predicted": predicted, "fold_of": fold_of}, chosen
