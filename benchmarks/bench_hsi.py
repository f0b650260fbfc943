"""Hyperspectral pixel classification: SVM and random forest per pixel against the spectral-spatial attention network.

Protocol (the one of the hyperspectral literature, e.g. the HybridSN paper's tables):

- Data: ``--cube synthetic`` (default) lays ``engine.hsi.synthetic_cube`` (200 bands, seeded by the split seed)
  on the real Indian Pines ground truth; ``--cube PATH.mat`` reads a real cube instead (``Indian_pines_corrected.mat``,
  ``PaviaU.mat``, ``Salinas_corrected.mat``, downloaded by the user) with its ``--gt``, so the figures can be set
  against the published ones. Bands are standardised with the mean and std of all the cube's pixels (no labels).
- Split: ``engine.hsi.stratified_pixel_split``: per class, a random ``--train-fraction`` of its labelled pixels
  (at least one) train, the rest are the test set; one split per seed, shared by every contender.
- SVM: scikit-learn ``SVC`` (RBF) on standardised pixels, C chosen by 3-fold cross-validation over 1, 10, 100, 1000
  on the training pixels (gamma 'scale'). Random forest: 300 trees, default settings.
- Network: ``engine.deep.ssan.SpectralSpatialAttentionNet`` on ``--window`` x ``--window`` chips (reflection
  padding at the image edge), PCA buffers fitted on the training pixels, AdamW (lr 1e-3, weight decay 1e-4),
  class-weighted cross-entropy, batch 64, ``--epochs`` epochs, augmentation by a random flip/rotation per batch and
  a small spectral jitter (N(0, 0.05) per band, N(0, 0.03) brightness). The last epoch's model is scored. This loop
  is plain torch for now; the engine's Lightning training will replace it.
- Scores on the test pixels: overall accuracy (OA), average accuracy (AA, mean of the per-class producer's
  accuracies) and kappa, mean ± std over the seeds; seconds per training epoch of the network.

Run: ``PYTHONPATH=. <engine python> benchmarks/bench_hsi.py [--cube synthetic|PATH.mat] [--epochs 30]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
import warnings
from pathlib import Path

import numpy as np
from common import REPO, markdown_table

DEFAULT_GT = REPO / "tests" / "data" / "hsi" / "Indian_pines_gt.mat"


def scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[float, float, float]:
    """Overall accuracy, average accuracy and kappa (the engine's metrics)."""
    from engine.metrics import accuracy_figures, confusion_matrix

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


def run_network(cube: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, n_classes: int,
                args: argparse.Namespace, seed: int) -> tuple[np.ndarray, float]:
    """Train the network on chips around the training pixels; predictions on the test pixels, seconds per epoch."""
    import torch

    from engine.deep.ssan import SpectralSpatialAttentionNet, fit_pca

    torch.manual_seed(seed)
    _, cols, bands = cube.shape
    half = args.window // 2
    padded = torch.from_numpy(np.pad(cube, ((half, half), (half, half), (0, 0)), mode="reflect")).permute(2, 0, 1)
    offsets = torch.arange(args.window)

    def chips(index: np.ndarray) -> torch.Tensor:
        r = torch.from_numpy(index // cols)[:, None, None] + offsets[None, :, None]
        c = torch.from_numpy(index % cols)[:, None, None] + offsets[None, None, :]
        return padded[:, r, c].permute(1, 0, 2, 3).contiguous()

    mean, components = fit_pca(cube.reshape(-1, bands)[train], args.n_pca)
    net = SpectralSpatialAttentionNet(bands, n_classes, args.window, args.n_pca, args.hidden,
                                      torch.from_numpy(mean), torch.from_numpy(components))
    counts = np.bincount(y[train], minlength=n_classes).astype("float64")
    weights = torch.tensor(counts.sum() / (n_classes * np.maximum(counts, 1)), dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    generator = np.random.default_rng(seed)
    labels = torch.from_numpy(y)
    start = time.perf_counter()
    for _ in range(args.epochs):
        net.train()
        for batch in np.array_split(generator.permutation(train), max(1, len(train) // 64)):
            x = torch.rot90(chips(batch), int(generator.integers(4)), dims=(2, 3))
            if generator.random() < 0.5:
                x = x.flip(3)
            x = x * (1 + 0.03 * torch.randn(len(batch), 1, 1, 1)) + 0.05 * torch.randn(len(batch), bands, 1, 1)
            loss = loss_fn(net(x), labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    per_epoch = (time.perf_counter() - start) / max(1, args.epochs)
    net.eval()
    with torch.inference_mode():
        pred = torch.cat([net(chips(b)).argmax(1) for b in np.array_split(test, max(1, len(test) // 512))])
    return pred.numpy(), per_epoch


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
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--only", nargs="+", default=["svm", "rf", "network"], choices=["svm", "rf", "network"])
    args = parser.parse_args()
    import torch

    from engine.hsi import SyntheticParameters, read_mat_array, stratified_pixel_split, synthetic_cube

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
        cube = real if real is not None else synthetic_cube(gt, 200, seed)
        flat = cube.reshape(-1, cube.shape[2])
        cube = ((cube - flat.mean(0)) / (flat.std(0) + 1e-6)).astype("float32")
        pixels = cube.reshape(-1, cube.shape[2])
        for fraction in args.train_fraction:
            train, test = stratified_pixel_split(gt, fraction, seed)
            for name in args.only:
                start, note = time.perf_counter(), ""
                if name == "network":
                    pred, per_epoch = run_network(cube, y, train, test, n_classes, args, seed)
                    epoch_s.append(per_epoch)
                    note = f", {per_epoch:.2f} s per epoch"
                else:
                    pred = (run_svm if name == "svm" else run_rf)(pixels[train], y[train], pixels[test], seed)
                figures = scores(y[test], pred, n_classes)
                results.setdefault((fraction, name), []).append(figures)
                print(f"seed {seed}, train {fraction:.0%}, {name}: OA {figures[0]:.3f} AA {figures[1]:.3f} "
                      f"kappa {figures[2]:.3f} ({time.perf_counter() - start:.1f} s{note})", flush=True)
    names = {"svm": "SVM (RBF, per pixel)", "rf": "random forest (per pixel)",
             "network": f"spectral-spatial attention net ({args.window}x{args.window}, {args.epochs} epochs)"}
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
