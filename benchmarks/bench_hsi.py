"""Hyperspectral pixel classification: SVM and random forest per pixel against the spectral-spatial attention network.

Protocol (the one of the hyperspectral literature, e.g. the HybridSN paper's tables):

- Data: ``--cube synthetic`` (default) lays ``engine.io.hsi.synthetic_cube`` (200 bands, seeded by the split seed)
  on the real Indian Pines ground truth; ``--cube PATH.mat`` reads a real cube instead (``Indian_pines_corrected.mat``,
  ``PaviaU.mat``, ``Salinas_corrected.mat``, downloaded by the user) with its ``--gt``, so the figures can be set
  against the published ones. Bands are standardised with the mean and std of all the cube's pixels (no labels).
- Split: ``engine.io.hsi.stratified_pixel_split``: per class, a random ``--train-fraction`` of its labelled pixels
  (at least one) train, the rest are the test set; one split per seed, shared by every contender.
- SVM: scikit-learn ``SVC`` (RBF) on standardised pixels, C chosen by 3-fold cross-validation over 1, 10, 100, 1000
  on the training pixels (gamma 'scale'). Random forest: 300 trees, default settings.
- Network: ``engine.deep.ssan.SpectralSpatialAttentionNet`` trained by the engine's own Lightning path, as users
  run it. The cube is written to a GeoTIFF; ``engine.deep.data.ChipStore`` reads ``--window`` x ``--window`` chips
  around the labelled pixels, normalised with the same per-band mean and std, and zero-padded at the image edge
  (0 after normalisation = the band mean; an earlier plain-torch version of this benchmark padded by reflection).
  ``build_network("hyperspectral", "ssan", ...)`` with PCA buffers fitted on the training pixels; ``ChipDataset``
  augmentation (random flip and quarter turn, spectral jitter 0.02); ``DeepModule`` (AdamW lr 1e-3, weight decay
  1e-4, cosine decay, cross-entropy weighted by ``class_weights``); ``engine.deep.trainer.fit`` on the CPU, batch
  64, ``--epochs`` epochs, no early stopping. With no validation loader ``fit`` keeps the epoch of lowest training
  loss, so the test pixels influence neither the training nor the kept epoch.
- Scores on the test pixels: overall accuracy (OA), average accuracy (AA, mean of the per-class producer's
  accuracies) and kappa, mean ± std over the seeds; seconds per training epoch of the network.

Run: ``PYTHONPATH=. <engine python> benchmarks/bench_hsi.py [--cube synthetic|PATH.mat] [--epochs 30]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO, markdown_table

DEFAULT_GT = REPO / "tests" / "data" / "hsi" / "Indian_pines_gt.mat"


def scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[float, float, float]:
    """Overall accuracy, average accuracy and kappa (the engine's metrics)."""
    from engine.assess.metrics import accuracy_figures, confusion_matrix

    figures = accuracy_figures(confusion_matrix(y_true, y_pred, n_classes), [str(c) for c in range(n_classes)])
    per_class = [c["producers_accuracy"] for c in figures["per_class"] if c["producers_accuracy"] is not None]
    return float(figures["overall_accuracy"]), float(np.mean(per_class)), float(figures["kappa"])


def run_svm(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int) -> np.ndarray:
    """RBF SVM on standardised pixels, C by 3-fold cross-validation."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    warnings.filterwarnings("ignore", message="The least populated class")  # Indian Pines oats: 2 px at 10 %
    grid = GridSearchCV(make_pipeline(StandardScaler(), SVC(kernel="rbf", random_state=seed)),
                        {"svc__C": [1, 10, 100, 1000]}, cv=3, n_jobs=2)
    return grid.fit(x_train, y_train).predict(x_test)


def run_rf(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int) -> np.ndarray:
    """Random forest of 300 trees."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(300, n_jobs=2, random_state=seed).fit(x_train, y_train).predict(x_test)


def write_cube(cube: np.ndarray, path: Path) -> Path:
    """A (rows, cols, bands) cube as a band-first float32 GeoTIFF on an image grid (one unit per pixel, no CRS)."""
    import rasterio
    from rasterio.transform import Affine

    rows, cols, bands = cube.shape
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=bands, dtype="float32",
                       transform=Affine(1, 0, 0, 0, -1, rows)) as dst:
        dst.write(np.moveaxis(cube, 2, 0).astype("float32"))
    return path


def run_network(src: Any, stats: tuple[np.ndarray, np.ndarray], pixels: np.ndarray, gt: np.ndarray,
                y: np.ndarray, train: np.ndarray, test: np.ndarray, n_classes: int, args: argparse.Namespace,
                seed: int, run_dir: Path) -> tuple[np.ndarray, float]:
    """Train the network with the engine's Lightning path; predictions on the test pixels, seconds per epoch."""
    import torch
    from torch.utils.data import DataLoader

    from engine.core.feedback import Feedback
    from engine.deep.data import ChipDataset, ChipStore
    from engine.deep.lit import DeepModule, class_weights
    from engine.deep.networks import StartingPoint, build_network
    from engine.deep.ssan import fit_pca
    from engine.deep.trainer import FitOptions, fit

    labelled = np.flatnonzero(gt.ravel() > 0)  # the store's chips; train and test index into them
    y_chips = y[labelled]
    train_at, test_at = np.searchsorted(labelled, train), np.searchsorted(labelled, test)
    names = [f"band {b}" for b in range(1, src.count + 1)]
    built = build_network("hyperspectral", "ssan", names, stats, n_classes, args.window, StartingPoint(seed=seed),
                          options={"n_pca": args.n_pca})
    built.module.set_pca(*fit_pca(pixels[train], args.n_pca))  # as engine.deep.dataset_setup._fit_pca
    store = ChipStore(src, built.bands, built.mean, built.std, labelled // src.width, labelled % src.width,
                      args.window)
    counts = np.bincount(y[train], minlength=n_classes).tolist()
    module = DeepModule(built.module, class_weights(counts), lr=1e-3, scheduler="cosine", epochs=args.epochs,
                        monitor="train_loss")
    loader = DataLoader(ChipDataset(store, train_at, y_chips, train=True, spectral_jitter=0.02), batch_size=64,
                        shuffle=True, generator=torch.Generator().manual_seed(seed))
    options = FitOptions(epochs=args.epochs, batch_size=64, patience=0, scheduler="cosine", device="cpu", seed=seed)
    result = fit(module, loader, None, run_dir, options, Feedback())
    module.eval()
    with torch.inference_mode():
        test_loader = DataLoader(ChipDataset(store, test_at, y_chips, train=False), batch_size=256)
        pred = torch.cat([module(x).argmax(1) for x, _ in test_loader])
    return pred.numpy(), float(result.seconds_per_epoch or float("nan"))


def main() -> None:
    """Run every contender on every split and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cube", default="synthetic", help="'synthetic' or a .mat cube (rows, cols, bands)")
    parser.add_argument("--cube-key", default=None, help="the cube's variable in the .mat (default: its only one)")
    parser.add_argument("--gt", type=Path, default=DEFAULT_GT, help="the ground-truth .mat (default: Indian Pines)")
    parser.add_argument("--gt-key", default=None)
    parser.add_argument("--train-fraction", type=float, nargs="+", default=[0.1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--window", type=int, default=11)
    parser.add_argument("--n-pca", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--only", nargs="+", default=["svm", "rf", "network"], choices=["svm", "rf", "network"])
    args = parser.parse_args()
    import lightning  # noqa: F401  (its import sets its loggers to INFO: silence them afterwards)
    import rasterio
    import torch

    from engine.io.hsi import SyntheticParameters, read_mat_array, stratified_pixel_split, synthetic_cube

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*`validation_step` but have no `val_dataloader`")  # none, on purpose
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")  # torch/Lightning deprecation
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"1-min load average at the start: {load:.2f} (timings are only meaningful on an idle machine)")
    gt = read_mat_array(args.gt, args.gt_key).astype("int64")
    real = None if args.cube == "synthetic" else read_mat_array(args.cube, args.cube_key).astype("float32")
    if real is not None and real.shape[:2] != gt.shape:
        raise SystemExit(f"cube {real.shape} and ground truth {gt.shape} differ in size")
    n_classes = int(gt.max())
    y = (gt.ravel() - 1).clip(0)  # class numbers 1..K become 0..K-1; unlabelled pixels are never used
    print(f"ground truth {args.gt.name}: {gt.shape}, {n_classes} classes, {(gt > 0).sum()} labelled pixels")
    if real is None:
        print(f"synthetic cube, 200 bands, seeded by the split seed: {dataclasses.asdict(SyntheticParameters())}")
    results: dict[tuple[float, str], list[tuple[float, float, float]]] = {}
    epoch_s: list[float] = []
    for seed in args.seeds:
        raw = real if real is not None else synthetic_cube(gt, 200, seed)
        flat = raw.reshape(-1, raw.shape[2])
        stats = (flat.mean(0), flat.std(0) + 1e-6)
        pixels = ((flat - stats[0]) / stats[1]).astype("float32")
        with tempfile.TemporaryDirectory(prefix="landprobe-bench-hsi-") as tmp, \
                rasterio.open(write_cube(raw, Path(tmp) / "cube.tif")) as src:
            for fraction in args.train_fraction:
                train, test = stratified_pixel_split(gt, fraction, seed)
                for name in args.only:
                    start, note = time.perf_counter(), ""
                    if name == "network":
                        pred, per_epoch = run_network(src, stats, pixels, gt, y, train, test, n_classes, args, seed,
                                                      Path(tmp) / f"run_{fraction}")
                        epoch_s.append(per_epoch)
                        note = f", {per_epoch:.2f} s per epoch"
                    else:
                        pred = (run_svm if name == "svm" else run_rf)(pixels[train], y[train], pixels[test], seed)
                    figures = scores(y[test], pred, n_classes)
                    results.setdefault((fraction, name), []).append(figures)
                    print(f"seed {seed}, train {fraction:.0%}, {name}: OA {figures[0]:.3f} AA {figures[1]:.3f} "
                          f"kappa {figures[2]:.3f} ({time.perf_counter() - start:.1f} s{note})", flush=True)
    names = {"svm": "SVM (RBF, per pixel)", "rf": "random forest (per pixel)",
             "network": f"spectral-spatial attention net (engine fit, {args.window}x{args.window}, "
                        f"{args.epochs} epochs)"}
    rows = []
    for (fraction, name), figures in results.items():
        a = np.array(figures)
        rows.append([names[name], f"{fraction:.0%}",
                     *(f"{100 * m:.1f} ± {100 * s:.1f}" for m, s in zip(a.mean(0), a.std(0), strict=True))])
    cube_name = "synthetic cube" if real is None else Path(args.cube).name
    print(f"\n## {cube_name} with {args.gt.name}, seeds {args.seeds}\n")
    print(markdown_table(["contender", "train", "OA %", "AA %", "kappa × 100"], rows))
    if epoch_s:
        print(f"\nnetwork: {np.median(epoch_s):.2f} s per epoch (median over the runs, {torch.get_num_threads()} "
              f"torch threads; load average {load:.2f} at the start)")


if __name__ == "__main__":
    main()
