"""Deep fine-tuning against the best probe on the Landsat 7 sample, with the probes' polygon splits, on the CPU.

Protocol:

- Raster: bands 1-7 of the Landsat 7 sample (band 8 is all zero), int16. Labels: ``training_data.shp``, field
  ``class``. The same held-out polygons for every contender: ``polygon_group_split`` (30 % of each class's polygons)
  with seeds 0..4, scored on every pixel of the held-out polygons.
- Probe: ``engine.training.train_classifier`` with the default method (RBF SVM), figures of its validation.
- Deep (``engine.jobs.finetune.finetune``, defaults otherwise: AdamW lr 1e-3, batch 32, ReduceLROnPlateau,
  class-weighted loss, flips and quarter turns, early stopping with patience 8 on the validation loss, best epoch
  kept, at most 40 epochs):

  - patch classifier, ResNet-18 **from scratch** (no pretrained weights can be downloaded here), 32 px chips;
  - patch classifier on a **frozen random-feature backbone** (RCF, 128 Gaussian filters, never trained) with a
    trained linear head, 16 px chips: a baseline, not a pretrained result;
  - U-Net with a ResNet-18 encoder **from scratch**, 64 px tiles, unlabelled pixels ignored by the loss.

  Note that early stopping and the kept epoch use the validation polygons, which are then also scored: the deep
  figures are slightly optimistic against the probe's (the probe never sees its test polygons).
- Figures: overall accuracy, kappa, macro F1 (mean ± std over seeds), seconds per epoch and epochs run.

Run: ``PYTHONPATH=. <engine python> benchmarks/bench_finetune.py [--seeds 0 1 2 3 4] [--epochs 40]``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import FIELD, LABELS, markdown_table, seven_band_copy

CONTENDERS: dict[str, dict[str, Any]] = {
    "Patch ResNet-18, from scratch (32 px)": {"task": "patch", "backbone": "resnet18", "chip_size": 32},
    "Patch, frozen random features + linear head (16 px; baseline)": {"task": "patch", "backbone": "rcf_gaussian",
                                                                     "chip_size": 16},
    "Patch small CNN, from scratch (15 px)": {"task": "patch", "backbone": "small_cnn", "chip_size": 15},
    "U-Net ResNet-18, from scratch (64 px tiles)": {"task": "segmentation", "backbone": "resnet18",
                                                    "chip_size": 64},
}


def run(raster: Path, work: Path, seeds: list[int], epochs: int, only: list[str] | None) -> list[list[str]]:
    """Train every contender for every seed; a table row per contender."""
    from engine.jobs.finetune import finetune
    from engine.jobs.train_classifier import train_classifier

    results: dict[str, list[dict[str, float]]] = {}
    for seed in seeds:
        start = time.perf_counter()
        probe = train_classifier(str(raster), str(LABELS), FIELD, str(work / f"svm_{seed}.lpmodel"), seed=seed)
        results.setdefault("Probe: RBF SVM on band values (default method)", []).append(
            {"oa": probe.overall_accuracy, "kappa": probe.kappa, "f1": probe.macro_f1, "s_epoch": np.nan,
             "epochs": np.nan, "wall": time.perf_counter() - start})
        for name, options in CONTENDERS.items():
            if only and not any(o in name for o in only):
                continue
            start = time.perf_counter()
            done = finetune(str(raster), str(LABELS), FIELD, str(work / f"deep_{seed}_{len(results)}.lpmodel"),
                            epochs=epochs, patience=8, seed=seed, device="cpu", **options)
            row = {"oa": done.overall_accuracy, "kappa": done.kappa, "f1": done.macro_f1,
                   "s_epoch": done.seconds_per_epoch, "epochs": done.epochs_run, "wall": time.perf_counter() - start}
            results.setdefault(name, []).append(row)
            print(f"seed {seed}, {name}: OA {row['oa']:.3f}, {row['epochs']} epochs, {row['s_epoch']:.2f} s/epoch",
                  flush=True)

    def pm(rows: list[dict[str, float]], key: str, digits: int = 3) -> str:
        values = np.array([r[key] for r in rows], dtype="float64")
        if np.isnan(values).all():
            return "n/a"
        return f"{np.nanmean(values):.{digits}f} ± {np.nanstd(values):.{digits}f}"

    return [[name, pm(rows, "oa"), pm(rows, "kappa"), pm(rows, "f1"), pm(rows, "s_epoch", 2),
             pm(rows, "epochs", 1), pm(rows, "wall", 1)] for name, rows in results.items()]


def main() -> None:
    """Parse the options, run, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--only", nargs="*", help="run only contenders whose name contains one of these")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("lightning").setLevel(logging.WARNING)
    import torch

    with tempfile.TemporaryDirectory(prefix="landprobe-bench-finetune-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        raster = seven_band_copy(work)
        rows = run(raster, work, args.seeds, args.epochs, args.only)
    print(f"\nCPU, {torch.get_num_threads()} threads; seeds {args.seeds}; held-out polygons scored.\n")
    print(markdown_table(["contender", "overall accuracy", "kappa", "macro F1", "s / epoch", "epochs run",
                          "wall s"], rows))


if __name__ == "__main__":
    main()
