"""Train a probe on the pixels under labelled polygons: sample, validate on held-out polygons, fit on all, save."""

from __future__ import annotations

import logging
import platform
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from . import __version__
from .errors import InputError
from .features import compute_features, feature_names, make_recipe
from .feedback import Feedback
from .labels import Samples, sample_pixels
from .metrics import accuracy_figures, confusion_matrix
from .model_file import save_model
from .probes import DEFAULT_PROBE, get_probe
from .rasters import band_stack, check_writable, raster_info
from .report import html_path, write_report
from .validation import SCHEMES, cap_per_class, make_folds

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


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries a model depends on (read from package metadata, nothing imported)."""
    from .api import package_versions

    installed = package_versions(("numpy", "scikit-learn", "xgboost-cpu", "xgboost", "rasterio", "torch"))
    return {"python": platform.python_version(), "landprobe": __version__,
            **{k: v for k, v in installed.items() if v is not None}}


def _drop_empty_classes(samples: Samples) -> Samples:
    """Remove classes that got no pixel (all their polygons outside the raster or on nodata)."""
    import numpy as np

    present = np.unique(samples.y)
    if len(present) == len(samples.classes):
        return samples
    missing = [c.name for i, c in enumerate(samples.classes) if i not in present]
    logger.warning("Classes without any valid pixel are left out of the model: %s.", ", ".join(missing))
    if len(present) < 2:
        raise InputError("Fewer than two classes have valid pixels under the labels: nothing to classify.")
    remap = np.full(len(samples.classes), -1)
    remap[present] = np.arange(len(present))
    samples.y = remap[samples.y]
    samples.classes = [samples.classes[i] for i in present]
    return samples


def validate(samples: Samples, method: str, scheme: str = "polygon_groups", test_fraction: float = 0.3,
             n_folds: int = 5, seed: int = 0) -> dict[str, Any] | None:
    """Fit on training folds, predict the held-out ones, and pool the predictions into one set of figures.

    Returns ``None`` when the scheme is ``none`` or no sample can be held out.
    """
    import numpy as np

    names = [c.name for c in samples.classes]
    folds = make_folds(scheme, samples.y, samples.groups, samples.rows, samples.cols, test_fraction=test_fraction,
                       n_folds=n_folds, seed=seed, class_names=names)
    if not folds:
        if scheme != "none":
            logger.warning("No class has two or more polygons: validation skipped, no accuracy can be reported.")
        return None
    tested = np.zeros(len(samples.y), dtype=bool)
    predicted = np.zeros(len(samples.y), dtype="int64")
    fold_oa = []
    for test in folds:
        probe = get_probe(method)().fit(samples.x[~test], samples.y[~test], len(names))
        predicted[test] = probe.predict(samples.x[test], proba=False)[0]
        tested |= test
        fold_oa.append(float((predicted[test] == samples.y[test]).mean()))
    figures = accuracy_figures(confusion_matrix(samples.y[tested], predicted[tested], len(names)), names)
    figures.update({
        "scheme": scheme,
        "description": SCHEMES[scheme],
        "optimistic": scheme == "random_pixels",
        "n_folds": len(folds),
        "fold_overall_accuracy": fold_oa,
        "test_fraction": test_fraction if len(folds) == 1 else None,
        "seed": seed,
        "n_test_polygons": len(np.unique(samples.groups[tested])),
        "n_polygons": len(np.unique(samples.groups)),
    })
    return figures


def train_classifier(raster: str | list[str], labels: str, field: str, output_model: str,
                     method: str = DEFAULT_PROBE, output_report: str | None = None,
                     validation: str = "polygon_groups",
                     test_fraction: float = 0.3, n_folds: int = 5, max_samples_per_class: int = 20_000,
                     seed: int = 0, class_colors: dict[str, str] | None = None, indices: bool = False,
                     band_roles: str | None = None, feedback: Feedback | None = None) -> TrainResult:
    """Train ``method`` on the band values (and optionally spectral indices) under the labels; save a model file.

    Args:
        raster: path of the raster whose bands are the features, or several files whose bands are stacked.
        labels: path of the polygon (or point) layer, optionally ``file|layername=name``.
        field: the class field, text or whole numbers.
        output_model: where to write the ``.lpmodel`` file.
        method: a name from :data:`engine.probes.PROBES` (default: the RBF support vector machine).
        output_report: optional JSON file with the validation figures (an HTML page is written beside it).
        validation: a scheme from :data:`engine.validation.SCHEMES`.
        test_fraction: share of each class's polygons held out by ``polygon_groups`` and ``random_pixels``.
        n_folds: folds of ``group_kfold`` and ``spatial_blocks``.
        max_samples_per_class: at most this many pixels per class, shared evenly among its polygons.
        seed: seed of the splits and the sampling.
        class_colors: ``#rrggbb`` colour of each class value (as text), e.g. from the layer's style.
        indices: add the normalised-difference indices that the band roles allow (see :mod:`engine.features`).
        band_roles: roles of bands as ``"red=3, nir=4"``, for bands whose descriptions do not say.
        feedback: progress and cancel.

    Returns:
        The files written and the held-out overall accuracy and kappa.

    """
    feedback = feedback or Feedback()
    get_probe(method)  # fail fast on an unknown method and scheme
    if validation not in SCHEMES:
        raise InputError(f"Unknown validation {validation!r}; choose one of: {', '.join(SCHEMES)}.")
    check_writable(output_model)
    if output_report:
        check_writable(output_report)
    with band_stack(raster) as path:
        info = raster_info(path)
        recipe = make_recipe(list(info.band_names), indices, band_roles)
        samples = _drop_empty_classes(sample_pixels(path, labels, field, feedback.stage(0.0, 0.3), class_colors))
    samples.x = compute_features(samples.x, recipe)
    if recipe.get("indices"):
        logger.info("Features: %d bands and the indices %s.", len(recipe["bands"]),
                    ", ".join(f"{k} (bands {a} and {b})" for k, (a, b) in recipe["indices"].items()))
    keep = cap_per_class(samples.y, samples.groups, max_samples_per_class, seed)
    if len(keep) < len(samples.y):
        logger.info("Kept %d of %d pixels (at most %d per class, shared among its polygons).", len(keep),
                    len(samples.y), max_samples_per_class)
        samples = replace(samples, x=samples.x[keep], y=samples.y[keep], groups=samples.groups[keep],
                          rows=samples.rows[keep], cols=samples.cols[keep])
    samples.stats["n_samples_used"] = len(samples.y)
    feedback.progress(0.3, "Validating on held-out polygons")
    feedback.check_cancel()
    figures = validate(samples, method, validation, test_fraction, n_folds, seed)
    if figures:
        logger.info("Validation (%s): overall accuracy %.3f, kappa %.3f (%d pixels of %d polygons)%s.",
                    validation, figures["overall_accuracy"], figures["kappa"], figures["n"],
                    figures["n_test_polygons"], ", OPTIMISTIC" if figures["optimistic"] else "")
    feedback.progress(0.65, "Training the final model on all labels")
    feedback.check_cancel()
    probe = get_probe(method)().fit(samples.x, samples.y, len(samples.classes))
    feedback.check_cancel()
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "classes": [asdict(c) for c in samples.classes],
        "field": field,
        "input": {"band_count": info.count, "band_names": list(info.band_names), "dtype": info.dtype,
                  "nodata": info.nodata, "crs_wkt": info.crs_wkt, "raster": raster},
        "features": recipe | {"names": feature_names(recipe, list(info.band_names))},
        "training": {**samples.stats, "labels": labels},
        "validation": figures,
        "libraries": library_versions(),
    }
    save_model(output_model, manifest, probe)
    if output_report:
        report = {"title": "Landprobe training report", "method": method, "raster": raster, "labels": labels,
                  "field": field, "features": manifest["features"], "validation": figures,
                  "training": manifest["training"], "classes": manifest["classes"], "model": str(output_model)}
        write_report(report, output_report)
    feedback.progress(1.0, "Done")
    return TrainResult(
        output_model=str(output_model), output_report=output_report,
        output_html=str(html_path(output_report)) if output_report else None,
        overall_accuracy=figures["overall_accuracy"] if figures else None,
        kappa=figures["kappa"] if figures else None,
        macro_f1=figures["macro_f1"] if figures else None,
        classes=[c.name for c in samples.classes], n_samples=samples.stats["n_samples"],
        n_polygons=samples.stats["n_polygons"],
    )
