"""Accuracy of probes on raw bands against probes on embeddings, with few and with all labels, on the Landsat sample.

Protocol:

- Raster: bands 1-7 of the Landsat 7 sample (band 8 is all zero), int16. Labels: ``training_data.shp``, field
  ``class``.
- Embeddings: ``engine.embeddings.encode.extract_embeddings`` at stride 1 (one embedding per pixel, from the patch
  centred on
  it), for RCF Gaussian (128 features, patch 16 px), RCF empirical (patch 16 px) and ResNet-18 (512 features,
  patch 32 px). **ResNet-18 has random-initialised weights** (seeded): no pretrained Landsat weights can be
  downloaded here, so its row is NOT a pretrained result.
- Samples: the embedding cells covered to at least 50 % by one class (``engine.samples.cells.sample_cells``, i.e. the
  pixels
  under the polygons); raw bands are the band values of the same pixels, so every feature set has the same samples.
- Curve: ``engine.assess.insight.learning_curve`` with the same held-out polygons (``polygon_group_split``, 30 % of each
  class's polygons, seeds 0..4) and the same draws of 5, 10, 25 and all training samples per class (spread over
  the training polygons) for every feature set; overall accuracy, kappa and macro F1 on the test-polygon pixels,
  mean ± std over the seeds.

Run: ``PYTHONPATH=. <engine python> benchmarks/bench_embedding_accuracy.py [--method svm] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from common import FIELD, LABELS, markdown_table, seven_band_copy

ENCODERS = {  # display name: (encoder, patch, extra note)
    "RCF Gaussian (128)": ("rcf_gaussian", 16, ""),
    "RCF empirical (128)": ("rcf_empirical", 16, ""),
    "ResNet-18 RANDOM-INIT (512)": ("resnet18", 32, "random weights: not a pretrained result"),
}


def embedding_sets(sample: Path, work: Path) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[str]]:
    """Feature matrices over the same labelled pixels: raw bands and each encoder's embeddings."""
    from engine.core.feedback import Feedback
    from engine.embeddings.sources import load_embeddings
    from engine.jobs.extract_embeddings import extract_embeddings

    sets: dict[str, np.ndarray] = {}
    reference = None
    for name, (encoder, patch, _) in ENCODERS.items():
        out = work / f"emb_{encoder}_{patch}.tif"
        if not out.exists():
            start = time.perf_counter()
            extract_embeddings(str(sample), str(out), encoder, patch, 1)
            print(f"{name}: embeddings in {time.perf_counter() - start:.1f} s", flush=True)
        loaded = load_embeddings(str(out), str(LABELS), FIELD, 0.5, Feedback(), None)
        s = loaded.samples
        key = (s.y.tolist(), s.rows.tolist(), s.cols.tolist())
        if reference is None:
            reference, labels = key, s
            sets["raw bands (7)"] = loaded.raw_cell_means
        elif key != reference:
            raise RuntimeError(f"{name}: the labelled cells differ from the first encoder's")
        sets[name] = s.x
    return sets, labels.y, labels.groups, [c.name for c in labels.classes]


def main() -> None:
    """Extract the embeddings once, run the learning curves, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="svm", help="probe (default: svm, the engine's default)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/landprobe-bench"))
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from engine.assess.insight import learning_curve

    args.workdir.mkdir(parents=True, exist_ok=True)
    sample = seven_band_copy(args.workdir)
    sets, y, groups, names = embedding_sets(sample, args.workdir)
    print(f"{len(y)} labelled pixels, {len(np.unique(groups))} polygons, classes {', '.join(names)}", flush=True)
    start = time.perf_counter()
    curve = learning_curve(sets, y, groups, args.method, names, sizes=(5, 10, 25, None),
                           seeds=tuple(range(args.seeds)))
    print(f"curves in {time.perf_counter() - start:.1f} s\n")
    notes = {name: note for name, (_, _, note) in ENCODERS.items()}
    rows = [[r["features"], str(r["per_class"]), f"{r['n_train']:.0f}",
             f"{r['overall_accuracy']:.3f} ± {r['overall_accuracy_std']:.3f}", f"{r['kappa']:.3f}",
             f"{r['macro_f1']:.3f}", notes.get(r["features"], "")] for r in curve["rows"]]
    print(f"## {args.method} on raw bands vs embeddings, {len(curve['seeds'])} polygon splits\n")
    print(markdown_table(["features", "labels per class", "mean train samples", "OA", "kappa", "macro F1", "note"],
                         rows))


if __name__ == "__main__":
    main()
