"""After fine-tuning: score the held-out pixels, draw the training curve, write the package and the report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..assess.metrics import accuracy_figures
from ..assess.plots import training_curve_png
from ..assess.report import validation_label, write_report
from ..samples.validation import SCHEMES
from .data import IGNORE
from .package import save_deep_model

logger = logging.getLogger(__name__)


def evaluate(data: Any, module: Any, validation: str, test_fraction: float, seed: int) -> dict[str, Any] | None:
    """Accuracy figures of the best weights on the validation chips or tiles (``None`` without validation)."""
    # Lazy: the torch stack takes seconds to import.
    import torch

    # Lazy: the torch stack takes seconds to import.
    from torch.utils.data import DataLoader


    if data.val is None or not len(data.val):
        return None
    n = len(data.classes)
    cm = np.zeros((n, n), dtype="int64")
    network = module.network.eval()
    device = next(network.parameters()).device
    with torch.inference_mode():
        for x, target in DataLoader(data.val, batch_size=64):
            pred = network(x.to(device)).argmax(dim=1).cpu()
            keep = target != IGNORE
            cm += np.bincount((target[keep] * n + pred[keep]).numpy(), minlength=n * n).reshape(n, n)
    figures = accuracy_figures(cm, [c.name for c in data.classes])
    figures.update({"scheme": validation, "description": SCHEMES[validation],
                    "optimistic": validation == "random_pixels", "n_folds": 1, "test_fraction": test_fraction,
                    "seed": seed, "n_test_polygons": data.stats.get("n_test_polygons"),
                    "n_polygons": data.stats.get("n_polygons")})
    logger.info("%s", figures_line(figures, validation))
    return figures


def figures_line(figures: dict[str, Any], validation: str) -> str:
    """The log line of the final figures, e.g. ``Validation (30 % of each class's polygons held out, whole): ...``."""
    parts = [f"overall accuracy {100 * figures['overall_accuracy']:.1f} %", f"kappa {figures['kappa']:.3f}"]
    if figures.get("macro_f1") is not None:
        parts.append(f"macro F1 {figures['macro_f1']:.3f}")
    caveat = " (OPTIMISTIC: neighbouring pixels on both sides)" if validation == "random_pixels" else ""
    scheme = validation_label({"test_fraction": figures.get("test_fraction"), **figures, "scheme": validation})
    return (f"Validation ({scheme[0].lower() + scheme[1:]}){caveat}: {', '.join(parts)} over {figures['n']} "
            "held-out pixels.")


def write_outputs(output_model: str, output_report: str | None, manifest: dict[str, Any], network: Any,
                  result: Any) -> tuple[str | None, str | None]:
    """Save the model package and, when asked for, the report with its training curve; return the report paths."""
    save_deep_model(output_model, manifest, network.cpu())
    logger.info("Wrote %s.", output_model)
    if not output_report:
        return None, None
    curve = {"epochs": result.history, "device": result.device, "precision": result.precision,
             "seconds_per_epoch": result.seconds_per_epoch}
    if result.history:
        curve["png"] = str(training_curve_png(result.history, Path(output_report).with_suffix("").as_posix()
                                              + "_training_curve.png"))
    spec = manifest["network"]
    report = {"title": "Landprobe fine-tuning report", "method": f"{spec['task']} {spec['backbone']}",
              "raster": manifest["input"]["raster"], "labels": manifest["training"]["labels"],
              "field": manifest["field"], "validation": manifest["validation"], "classes": manifest["classes"],
              "training": {k: v for k, v in manifest["training"].items() if k != "options"},
              "training_curve": curve, "model": str(output_model)}
    return write_report(report, output_report)
