"""Train a probe on the pixels under labelled polygons: sample, validate on held-out polygons, fit on all, save."""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from . import __version__
from .errors import InputError
from .feedback import Feedback
from .labels import Samples, sample_pixels
from .metrics import accuracy_figures, confusion_matrix
from .model_file import save_model
from .probes import get_probe
from .rasters import atomic_output, check_writable, raster_info
from .validation import polygon_group_split

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What training produced: files and the held-out accuracy."""

    output_model: str
    output_report: str | None
    overall_accuracy: float | None
    kappa: float | None
    macro_f1: float | None
    classes: list[str]
    n_samples: int
    n_polygons: int


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries a model depends on (read from package metadata, nothing imported)."""
    from importlib import metadata

    versions: dict[str, str | None] = {"python": platform.python_version(), "landprobe": __version__}
    for dist in ("numpy", "scikit-learn", "xgboost-cpu", "xgboost", "rasterio", "torch"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


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


def validate(samples: Samples, method: str, test_fraction: float, seed: int) -> dict[str, Any] | None:
    """Fit on the training polygons, score on the held-out ones; ``None`` when no class can be held out."""
    names = [c.name for c in samples.classes]
    test = polygon_group_split(samples.y, samples.groups, test_fraction, seed, names)
    if not test.any():
        logger.warning("No class has two or more polygons: validation skipped, no accuracy can be reported.")
        return None
    probe = get_probe(method)().fit(samples.x[~test], samples.y[~test], len(names))
    predicted = probe.predict_proba(samples.x[test]).argmax(axis=1)
    figures = accuracy_figures(confusion_matrix(samples.y[test], predicted, len(names)), names)
    figures.update({
        "scheme": "polygon_groups",
        "description": "Whole polygons held out, stratified by class; figures are per held-out pixel.",
        "test_fraction": test_fraction,
        "seed": seed,
        "n_train_polygons": len(set(samples.groups[~test].tolist())),
        "n_test_polygons": len(set(samples.groups[test].tolist())),
        "n_train_pixels": int((~test).sum()),
    })
    return figures


def train_classifier(raster: str, labels: str, field: str, output_model: str, method: str = "logistic_regression",
                     output_report: str | None = None, test_fraction: float = 0.3, seed: int = 0,
                     feedback: Feedback | None = None) -> TrainResult:
    """Train ``method`` on the raw band values under the labels and save a model file.

    Args:
        raster: path of the raster whose bands are the features.
        labels: path of the polygon (or point) layer, optionally ``file|layername=name``.
        field: the class field, text or whole numbers.
        output_model: where to write the ``.lpmodel`` file.
        method: a name from :data:`engine.probes.PROBES`.
        output_report: optional JSON file with the validation figures.
        test_fraction: share of each class's polygons held out for validation.
        seed: seed of the polygon split.
        feedback: progress and cancel.

    Returns:
        The files written and the held-out overall accuracy and kappa.

    """
    feedback = feedback or Feedback()
    get_probe(method)  # fail fast on an unknown method
    check_writable(output_model)
    if output_report:
        check_writable(output_report)
    info = raster_info(raster)
    samples = _drop_empty_classes(sample_pixels(raster, labels, field, feedback.stage(0.0, 0.3)))
    feedback.progress(0.3, "Validating on held-out polygons")
    feedback.check_cancel()
    validation = validate(samples, method, test_fraction, seed)
    if validation:
        logger.info("Held-out polygons: overall accuracy %.3f, kappa %.3f (%d pixels of %d polygons).",
                    validation["overall_accuracy"], validation["kappa"], validation["n"],
                    validation["n_test_polygons"])
    feedback.progress(0.65, "Training the final model on all labels")
    feedback.check_cancel()
    probe = get_probe(method)().fit(samples.x, samples.y, len(samples.classes))
    feedback.check_cancel()
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "classes": [asdict(c) for c in samples.classes],
        "field": field,
        "input": {"band_count": info.count, "band_names": list(info.band_names), "dtype": info.dtype,
                  "nodata": info.nodata, "crs_wkt": info.crs_wkt, "raster": info.path},
        "features": {"recipe": "raw_bands", "bands": list(range(1, info.count + 1))},
        "training": {**samples.stats, "labels": labels},
        "validation": validation,
        "libraries": library_versions(),
    }
    save_model(output_model, manifest, probe)
    if output_report:
        report = {"title": "Landprobe training report", "method": method, "raster": raster, "labels": labels,
                  "field": field, "validation": validation, "training": manifest["training"],
                  "classes": manifest["classes"], "model": str(output_model)}
        with atomic_output(output_report) as tmp:
            tmp.write_text(json.dumps(report, indent=2))
    feedback.progress(1.0, "Done")
    return TrainResult(
        output_model=str(output_model), output_report=output_report,
        overall_accuracy=validation["overall_accuracy"] if validation else None,
        kappa=validation["kappa"] if validation else None,
        macro_f1=validation["macro_f1"] if validation else None,
        classes=[c.name for c in samples.classes], n_samples=samples.stats["n_samples"],
        n_polygons=samples.stats["n_polygons"],
    )
