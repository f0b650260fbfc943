"""Train a probe on the pixels under labelled polygons: sample, validate on held-out polygons, fit on all, save."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..assess.insight import learning_curve, learning_curve_png, projection_png
from ..assess.metrics import accuracy_figures, add_polygon_counts, confusion_matrix
from ..assess.report import candidate_label, html_path, plain_names, validation_label, write_report
from ..assess.selection import AUTO, DEFAULT_OBJECTIVE, UNWEIGHTED_METHODS, Candidate, Choice, check_options, choose
from ..core.cluster import dask_client, scheduler_address
from ..core.errors import InputError
from ..core.feedback import Feedback
from ..core.versions import library_versions
from ..embeddings.encoders import EncoderOptions
from ..embeddings.features import EMBEDDING_RECIPES
from ..embeddings.sources import FEATURE_SOURCES, load_embeddings, load_encoded, load_raw_bands
from ..io.labels import Samples, merge_labels
from ..io.rasters import check_writable
from ..probes.model_file import save_model
from ..samples.classes import drop_empty_classes
from ..samples.validation import SCHEMES, cap_per_class, make_folds

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What training produced: files and the held-out accuracy."""

    output_model: str
    output_report: str | None
    output_html: str | None
    overall_accuracy: float | None
    kappa: float | None
    macro_f1: float | None
    classes: list[str]
    n_samples: int
    n_polygons: int
    method: str = ""  #: the engine's short name, e.g. ``svm (C=1), classes balanced``
    method_reason: str = ""  #: why this method, in plain words
    method_label: str = ""  #: the method in plain words, e.g. ``Support vector machine (RBF kernel, C = 1), ...``


def validate(samples: Samples, method: str, scheme: str = "polygon_groups", test_fraction: float = 0.3,
             n_folds: int = 5, seed: int = 0, objective: str = DEFAULT_OBJECTIVE, class_weight: str = "balanced",
             feedback: Feedback | None = None) -> tuple[dict[str, Any] | None, Choice | None]:
    """Fit on training folds, predict the held-out ones, and pool the predictions into one set of figures.

    With ``method="auto"`` or ``class_weight="auto"``, the candidate is chosen (:mod:`engine.assess.selection`) on each
    fold's training samples only, so the held-out polygons never take part in the choice.

    Returns:
        The figures (``None`` when the scheme is ``none`` or no sample can be held out) and, with a single held-out
        split, the choice made on its training samples (for the final model); else ``None``.

    """
    feedback = feedback or Feedback()
    names = [c.name for c in samples.classes]
    folds = make_folds(scheme, samples.y, samples.groups, samples.rows, samples.cols, test_fraction=test_fraction,
                       n_folds=n_folds, seed=seed, class_names=names)
    if not folds:
        if scheme != "none":
            logger.warning("No class has two or more polygons: validation skipped, no accuracy can be reported.")
        return None, None
    tested = np.zeros(len(samples.y), dtype=bool)
    predicted = np.zeros(len(samples.y), dtype="int64")
    fold_oa, winners, labels = [], [], []
    choice = None
    for i, test in enumerate(folds):
        part = feedback.stage(i / len(folds), (i + 1) / len(folds))
        train = ~test
        choice = choose(samples.x[train], samples.y[train], samples.groups[train], samples.rows[train],
                        samples.cols[train], len(names), method, objective, class_weight, seed, part)
        winners.append(choice.candidate.name)
        labels.append(candidate_label(choice.candidate.as_dict()))
        part.check_cancel()
        probe = choice.candidate.build().fit(samples.x[train], samples.y[train], len(names))
        predicted[test] = probe.predict(samples.x[test], proba=False)[0]
        tested |= test
        fold_oa.append(float((predicted[test] == samples.y[test]).mean()))
    figures = accuracy_figures(confusion_matrix(samples.y[tested], predicted[tested], len(names)), names)
    add_polygon_counts(figures["per_class"], samples.y[tested], predicted[tested], samples.groups[tested])
    figures.update({
        "scheme": scheme,
        "description": SCHEMES[scheme],
        "optimistic": scheme == "random_pixels",
        "n_folds": len(folds),
        "fold_overall_accuracy": fold_oa,
        "fold_winners": winners,
        "fold_methods": labels,
        "test_fraction": test_fraction if len(folds) == 1 else None,
        "seed": seed,
        "n_test_polygons": len(np.unique(samples.groups[tested])),
        "n_polygons": len(np.unique(samples.groups)),
    })
    return figures, choice if len(folds) == 1 else None


@contextlib.contextmanager
def sampling_client(features: str) -> Iterator[Any | None]:
    """The Dask client that reads the labelled blocks, when a scheduler is given; else ``None`` (read here).

    The scheduler is ``LANDPROBE_DASK_SCHEDULER`` (the plugin's "Dask scheduler" setting). An encoder run on the fly
    encodes the labelled area in this process. Without a scheduler no cluster is started: a local one would cost more
    to start than the labelled blocks take to read.
    """
    if not scheduler_address() or features == "encoder":
        yield None
        return
    with dask_client(None) as (client, cluster):
        logger.info("Reading the pixels under the labels as tasks on %s.", cluster)
        yield client


def train_classifier(raster: str | list[str], labels: str, field: str, output_model: str,
                     method: str = AUTO, output_report: str | None = None,
                     validation: str = "polygon_groups",
                     test_fraction: float = 0.3, n_folds: int = 5, max_samples_per_class: int = 20_000,
                     seed: int = 0, class_colors: dict[str, str] | None = None, indices: bool = False,
                     band_roles: str | None = None, features: str = "raw_bands", encoder: str = "rcf_gaussian",
                     patch_size: int | None = None, stride: int | None = None, weights: str | None = None,
                     weights_file: str | None = None, band_map: str | None = None, architecture: str | None = None,
                     min_coverage: float = 0.5, learning_curve: bool = False, bands: list[int] | None = None,
                     objective: str = DEFAULT_OBJECTIVE, class_weight: str = AUTO,
                     more_labels: list[str] | None = None, feedback: Feedback | None = None) -> TrainResult:
    """Train ``method`` on features under the labels (band values, embeddings, or an encoder's); save a model file.

    Args:
        raster: path of the raster whose bands are the features, or several files whose bands are stacked; with
            ``features="embeddings"``, an embedding raster.
        labels: path of the polygon (or point) layer, optionally ``file|layername=name``.
        field: the class field, text or whole numbers.
        output_model: where to write the ``.lpmodel`` file.
        method: a name from :data:`engine.probes.registry.PROBES`, or ``auto`` (the default): the probe and its settings
            chosen by cross-validation on the training polygons (:mod:`engine.assess.selection`).
        output_report: optional JSON file with the validation figures (an HTML page is written beside it).
        validation: a scheme from :data:`engine.samples.validation.SCHEMES`.
        test_fraction: share of each class's polygons held out by ``polygon_groups`` and ``random_pixels``.
        n_folds: folds of ``group_kfold`` and ``spatial_blocks``.
        max_samples_per_class: at most this many pixels per class, shared evenly among its polygons.
        seed: seed of the splits and the sampling.
        class_colors: ``#rrggbb`` colour of each class value (as text), e.g. from the layer's style.
        indices: add the normalised-difference indices that the band roles allow (see
            :mod:`engine.embeddings.features`).
        band_roles: roles of bands as ``"red=3, nir=4"``, for bands whose descriptions do not say.
        features: a key of :data:`engine.embeddings.sources.FEATURE_SOURCES`.
        encoder: with ``features="encoder"``, a name from :data:`engine.embeddings.encoders.ENCODERS`.
        patch_size: the encoder's patch size in pixels (default: the encoder's).
        stride: pixels between patch centres, the embedding cell size (default: the patch size).
        weights: torchgeo weight name for a torchgeo backbone.
        weights_file: a local weights file (state dict), read with ``weights_only=True``.
        band_map: band mapping for the weights, e.g. ``"B4=3, B8=4"``.
        architecture: timm architecture of a ``checkpoint`` encoder.
        min_coverage: share of an embedding cell one class must cover for the cell to be a sample.
        learning_curve: also report accuracy against the number of labelled samples per class.
        bands: train on these bands only (1-based, in the stacked order; default all); the model records them and
            applies the same choice when it classifies. Not for an embedding raster, which is used whole.
        objective: what the automatic choice maximises, a key of :data:`engine.assess.selection.OBJECTIVES`.
        class_weight: ``balanced``, ``none``, or ``auto`` (chosen by cross-validation with the method).
        more_labels: more label layers with the same class field (the points of *Suggest labels*, filled in):
            merged with ``labels`` into ``<model>.labels.gpkg`` beside the model, features left empty skipped.
        feedback: progress and cancel.

    Returns:
        The files written and the held-out overall accuracy and kappa.

    """
    feedback = feedback or Feedback()
    check_options(method, objective, class_weight)  # fail fast on unknown options, before reading anything
    if validation not in SCHEMES:
        raise InputError(f"Unknown validation {validation!r}; choose one of: {', '.join(SCHEMES)}.")
    if features not in FEATURE_SOURCES:
        raise InputError(f"Unknown features {features!r}; choose one of: {', '.join(FEATURE_SOURCES)}.")
    check_writable(output_model)
    if more_labels:  # the polygons and the points labelled since (Suggest labels), written beside the model
        labels = merge_labels(labels, list(more_labels), field, str(Path(output_model).with_suffix("")) +
                              ".labels.gpkg")
    if output_report:
        check_writable(output_report)
    stage = feedback.stage(0.0, 0.3)
    if features != "raw_bands" and (indices or band_roles):
        logger.warning("Spectral indices apply to band values only: ignored with features %r.", features)
    bands = [int(b) for b in bands] if bands else None
    if features == "embeddings" and bands:
        raise InputError("An embedding raster is used with all its dimensions: leave the bands empty.")
    with sampling_client(features) as client:
        if features == "raw_bands":
            loaded = load_raw_bands(raster, labels, field, indices, band_roles, stage, class_colors, bands, client)
        elif features == "embeddings":
            loaded = load_embeddings(raster, labels, field, min_coverage, stage, class_colors, client)
        else:
            options = EncoderOptions(encoder, patch_size, stride, weights, weights_file, band_map, architecture,
                                     seed=seed)
            loaded = load_encoded(raster, labels, field, options, min_coverage, stage, class_colors, bands)
    samples, recipe, info = drop_empty_classes(loaded.samples), loaded.recipe, loaded.info
    raw_means = loaded.raw_cell_means
    keep = cap_per_class(samples.y, samples.groups, max_samples_per_class, seed)
    if len(keep) < len(samples.y):
        logger.info("Kept %d of %d samples (at most %d per class, shared among its polygons).", len(keep),
                    len(samples.y), max_samples_per_class)
        samples = replace(samples, x=samples.x[keep], y=samples.y[keep], groups=samples.groups[keep],
                          rows=samples.rows[keep], cols=samples.cols[keep])
        raw_means = raw_means[keep] if raw_means is not None else None
    samples.stats["n_samples_used"] = len(samples.y)
    feedback.progress(0.3, "Validating on held-out polygons")
    feedback.check_cancel()
    figures, choice = validate(samples, method, validation, test_fraction, n_folds, seed, objective, class_weight,
                               feedback.stage(0.3, 0.5))
    if figures:
        logger.info("Validation (%s): overall accuracy %.1f %%, kappa %.3f (%d pixels of %d polygons)%s.",
                    validation_label(figures), 100 * figures["overall_accuracy"], figures["kappa"], figures["n"],
                    figures["n_test_polygons"], ", OPTIMISTIC" if figures["optimistic"] else "")
    if choice is None:  # no single held-out split: choose on all labels (nothing is held out from the final model)
        feedback.progress(0.5, "Choosing the method on all labels")
        choice = choose(samples.x, samples.y, samples.groups, samples.rows, samples.cols, len(samples.classes),
                        method, objective, class_weight, seed, feedback.stage(0.5, 0.6))
    candidate = choice.candidate
    insight = _insight(samples, recipe, raw_means, candidate, test_fraction, seed, output_report, learning_curve,
                       feedback.stage(0.6, 0.75))
    feedback.progress(0.75, f"Training the final model ({candidate.name}) on all labels")
    feedback.check_cancel()
    probe = candidate.build().fit(samples.x, samples.y, len(samples.classes))
    feedback.check_cancel()
    selection = {**choice.report, "winner_params": candidate.as_dict()}
    label = candidate_label(candidate.as_dict())
    reason = plain_names(str(selection.get("reason", "")), selection.get("candidates") or [candidate.as_dict()])
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "classes": [asdict(c) for c in samples.classes],
        "field": field,
        "input": {"band_count": info.count, "band_names": list(info.band_names), "dtype": info.dtype,
                  "nodata": info.nodata, "crs_wkt": info.crs_wkt, "raster": raster,
                  "band_selection": loaded.bands if loaded.bands is not None else bands,
                  "nodatavals": list(info.nodatavals), "dtypes": list(info.dtypes)},
        "features": recipe,
        "training": {**samples.stats, "labels": labels},
        "validation": figures,
        "selection": selection,
        "libraries": library_versions(),
    }
    save_model(output_model, manifest, probe, loaded.encoder_arrays)
    if output_report:
        shown = {k: v for k, v in recipe.items() if k not in ("encoder",)}
        report = {"title": "Landprobe training report", "method": candidate.method, "method_option": method,
                  "method_name": candidate.name, "method_label": label, "selection": selection,
                  "class_weight": selection.get("class_weight") or _weighting_note(candidate, class_weight),
                  "dropped_classes": samples.stats.get("dropped_classes", []),
                  "dropped_bands": samples.stats.get("dropped_bands", []),
                  "raster": raster, "labels": labels,
                  "field": field, "features": shown, "validation": figures, "training": manifest["training"],
                  "classes": manifest["classes"], "model": str(output_model), **insight}
        write_report(report, output_report)
    feedback.progress(1.0, "Done")
    return TrainResult(
        output_model=str(output_model), output_report=output_report,
        output_html=str(html_path(output_report)) if output_report else None,
        overall_accuracy=figures["overall_accuracy"] if figures else None,
        kappa=figures["kappa"] if figures else None,
        macro_f1=figures["macro_f1"] if figures else None,
        classes=[c.name for c in samples.classes], n_samples=samples.stats["n_samples"],
        n_polygons=samples.stats["n_polygons"], method=candidate.name, method_reason=reason, method_label=label,
    )


def _weighting_note(candidate: Candidate, option: str) -> dict[str, str]:
    """The class weighting used when no cross-validation compared weightings, and why, in words."""
    used = candidate.as_dict()["class_weight"]
    if candidate.method in UNWEIGHTED_METHODS:
        why = "k-nearest neighbours vote without class weights."
    elif option == AUTO:
        why = "Not chosen by cross-validation (see why the method was not either): the fallback's weighting."
    else:
        why = "Set by the user."
    return {"used": used, "why": why}


def _insight(samples: Samples, recipe: dict[str, Any], raw_means: Any, method: Candidate, test_fraction: float,
             seed: int, output_report: str | None, want_curve: bool, feedback: Feedback) -> dict[str, Any]:
    """The learning curve (when asked for) and, for embeddings, a 2-D projection, as report sections with PNGs."""
    if not output_report:
        if want_curve:
            logger.warning("The learning curve goes into the report: give a report file to get it.")
        return {}
    sections: dict[str, Any] = {}
    stem = Path(output_report).with_suffix("")
    names = [c.name for c in samples.classes]
    if recipe["recipe"] in EMBEDDING_RECIPES:
        sections["projection"] = projection_png(samples.x, samples.y, names, [c.color for c in samples.classes],
                                                f"{stem}_embedding_space.png", seed=seed)
    if want_curve:
        sets = {_features_label(recipe): samples.x}
        if raw_means is not None and np.isfinite(raw_means).all():
            sets = {"raw bands (cell means)": raw_means, **sets}
        elif recipe["recipe"] in EMBEDDING_RECIPES:
            logger.info("The learning curve shows the embeddings only: the raster they came from is not at hand "
                        "(or has nodata under some labelled cells).")
        curve = learning_curve(sets, samples.y, samples.groups, method.build, names, test_fraction=test_fraction,
                               seeds=(seed, seed + 1, seed + 2), feedback=feedback)
        curve["png"] = str(learning_curve_png(curve, f"{stem}_learning_curve.png"))
        curve["method_label"] = candidate_label(method.as_dict())
        sections["learning_curve"] = curve
        for row in curve["rows"]:
            logger.info("Learning curve: %s, %s per class: overall accuracy %.3f ± %.3f.", row["features"],
                        row["per_class"], row["overall_accuracy"], row["overall_accuracy_std"])
    return sections


def _features_label(recipe: dict[str, Any]) -> str:
    """A short name for a feature recipe, for tables."""
    if recipe["recipe"] == "encoder":
        return f"embeddings ({recipe['encoder']['name']})"
    if recipe["recipe"] == "embeddings":
        ident = recipe["embedding"].get("identity", {})
        return f"embeddings ({ident.get('encoder') or recipe['embedding']['kind']})"
    return "raw bands" + (" + indices" if recipe.get("indices") else "")
