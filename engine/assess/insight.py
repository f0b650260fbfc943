"""Insight into the labels and the features: learning curves and 2-D projections of the labelled samples.

Two questions a user asks before labelling more or switching features:

- *How many labels do I need, and do embeddings beat raw bands?* :func:`learning_curve` trains a probe on
  growing numbers of labelled samples per class, drawn from training polygons only, and scores it on polygons held
  out whole, for several feature sets on the very same draws (a paired comparison).
- *Do my classes separate in this feature space?* :func:`projection` puts the labelled samples in two dimensions
  (PCA, and t-SNE for moderate numbers of points).

This module computes; :mod:`engine.assess.plots` draws, in the style every plot of the engine shares.
:func:`learning_curve_png` (re-exported from there) plots a curve, :func:`projection_png` computes a projection and
plots it coloured by class. The results are plain dicts that :func:`engine.assess.report.render_html` renders under
the keys ``learning_curve`` and ``projection``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import InputError
from ..core.feedback import Feedback
from ..probes.registry import get_probe
from ..samples.validation import polygon_group_split
from .metrics import accuracy_figures, confusion_matrix
from .plots import feature_space_png
from .plots import learning_curve_png as learning_curve_png  # re-exported: callers draw the curve from here

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..probes.base import Probe

logger = logging.getLogger(__name__)

#: Default numbers of labelled samples per class; ``None`` is every training sample.
DEFAULT_SIZES: tuple[int | None, ...] = (5, 10, 25, 50, None)


# ---------------------------------------------------------------------------------------------------------------
# Learning curve
# ---------------------------------------------------------------------------------------------------------------


def _round_robin_order(index: np.ndarray, polygons: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``index`` reordered so that any prefix spreads over as many polygons as possible.

    The polygons are put in a random order and each polygon's samples are shuffled; the result takes the first
    sample of every polygon (in polygon order), then the second of every polygon that has one, and so on. A prefix
    of length ``n`` thus holds ``n`` samples from ``min(n, number of polygons)`` polygons, and polygon sample counts
    in it differ by at most one (until small polygons run out).
    """
    shuffle = rng.permutation(len(index))
    index, polygons = index[shuffle], polygons[shuffle]
    _, inverse, counts = np.unique(polygons, return_inverse=True, return_counts=True)
    polygon_rank = rng.permutation(len(counts))[inverse]
    by_polygon = np.argsort(inverse, kind="stable")
    starts = np.cumsum(counts) - counts
    within = np.empty(len(index), dtype="int64")
    within[by_polygon] = np.arange(len(index)) - np.repeat(starts, counts)
    return index[np.lexsort((polygon_rank, within))]  # primary key: rank within polygon; then polygon order


def draw_per_class(
    y: np.ndarray, groups: np.ndarray, train_mask: np.ndarray, n: int | None, rng: np.random.Generator
) -> np.ndarray:
    """Indices of at most ``n`` training samples per class, spread over the class's training polygons.

    Only samples where ``train_mask`` is true are ever drawn. Within a class the draw goes round-robin over the
    class's training polygons in random order (see :func:`_round_robin_order`): 5 samples come from 5 different
    polygons when the class has at least 5, so a small draw is not 5 neighbouring pixels of one polygon. A class with
    ``n`` samples or fewer, or ``n=None``, gives all of its training samples.

    The generator is consumed the same way whatever ``n`` is, so two draws from generators in the same state are
    nested: the smaller one is a subset of the larger.

    Args:
        y: class index per sample.
        groups: polygon id per sample.
        train_mask: boolean mask of the samples that may be drawn (the training side of a split).
        n: the most samples per class, or ``None`` for all.
        rng: the random generator.

    Returns:
        Sorted sample indices (int64).

    """
    train_mask = np.asarray(train_mask, dtype=bool)
    picked: list[np.ndarray] = []
    for k in np.unique(y[train_mask]):
        index = np.flatnonzero(train_mask & (y == k))
        order = _round_robin_order(index, groups[index], rng)
        picked.append(order if n is None else order[:n])
    if not picked:
        return np.empty(0, dtype="int64")
    return np.sort(np.concatenate(picked)).astype("int64")


def _check_inputs(feature_sets: dict[str, np.ndarray], y: np.ndarray, groups: np.ndarray,
                  sizes: tuple[int | None, ...]) -> None:
    """Refuse feature matrices that do not match the samples and sizes that are not positive whole numbers."""
    if not feature_sets:
        raise InputError("A learning curve needs at least one feature set.")
    if len(y) != len(groups):
        raise InputError(f"Class and polygon arrays differ in length ({len(y)} and {len(groups)}).")
    for name, x in feature_sets.items():
        if x.ndim != 2 or x.shape[0] != len(y):
            raise InputError(f"Feature set {name!r} has shape {x.shape}; expected ({len(y)}, features).")
    if not sizes:
        raise InputError("A learning curve needs at least one size.")
    for size in sizes:
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise InputError(f"Learning-curve sizes are whole numbers of samples per class >= 1 or None; got {size!r}.")


def _splits(y: np.ndarray, groups: np.ndarray, test_fraction: float, seeds: tuple[int, ...],
            class_names: list[str]) -> list[tuple[int, np.ndarray]]:
    """One polygon-group split per seed, leaving out seeds whose split holds nothing out."""
    splits = []
    for seed in seeds:
        test = polygon_group_split(y, groups, test_fraction, seed, class_names=class_names)
        if test.any():
            splits.append((int(seed), test))
        else:
            logger.warning("Learning curve: the split of seed %s holds no polygon out; seed skipped.", seed)
    return splits


def _fit_and_score(probe_class: Callable[[], Probe], x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                   class_names: list[str]) -> dict[str, Any]:
    """Fit a fresh probe on the ``train`` indices, predict the ``test`` mask, return the accuracy figures."""
    probe = probe_class()
    probe.fit(x[train], y[train], len(class_names))
    predicted = probe.predict(x[test], proba=False)[0]
    return accuracy_figures(confusion_matrix(y[test], predicted, len(class_names)), class_names)


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (0 for one value) of the values that are not ``None``."""
    known = np.array([v for v in values if v is not None], dtype="float64")
    if not len(known):
        return None, None
    std = known.std(ddof=1) if len(known) > 1 else 0.0
    return float(known.mean()), float(std)


def _row(name: str, size: int | None, n_train: list[float], figures: list[dict[str, Any]]) -> dict[str, Any]:
    """One row of the curve: a feature set at one size, averaged over the seeds."""
    oa, oa_std = _mean_std([f["overall_accuracy"] for f in figures])
    return {
        "features": name,
        "per_class": "all" if size is None else int(size),
        "n_train": float(sum(n_train) / len(n_train)),
        "overall_accuracy": oa,
        "overall_accuracy_std": oa_std,
        "kappa": _mean_std([f["kappa"] for f in figures])[0],
        "macro_f1": _mean_std([f["macro_f1"] for f in figures])[0],
    }


def learning_curve(
    feature_sets: dict[str, np.ndarray],
    y: np.ndarray,
    groups: np.ndarray,
    method: str | Callable[[], Probe],
    class_names: list[str],
    sizes: tuple[int | None, ...] = DEFAULT_SIZES,
    test_fraction: float = 0.3,
    seeds: tuple[int, ...] = (0, 1, 2),
    feedback: Feedback | None = None,
) -> dict[str, Any]:
    """Held-out accuracy of a probe against the number of labelled samples per class, for several feature sets.

    For every seed, about ``test_fraction`` of each class's polygons are held out whole
    (:func:`engine.samples.validation.polygon_group_split`). For every size, at most that many samples per class are
    drawn
    from the training polygons only, spread round-robin over them (:func:`draw_per_class`); the draws of one seed are
    nested (the 5 samples are among the 10). A probe ``method`` is fitted on the draw and scored on all held-out
    samples. Every feature set sees the same split and the same sample indices, so the comparison is paired.

    Args:
        feature_sets: display name -> (n, d) feature matrix, all over the same ``n`` samples.
        y: class index per sample, ``0..len(class_names)-1``.
        groups: polygon id per sample.
        method: probe name (see :data:`engine.probes.registry.PROBES`), or a function returning a fresh probe (for
            example the automatic choice's winner, :meth:`engine.assess.selection.Candidate.build`).
        class_names: class names, by class index.
        sizes: samples per class to train on; ``None`` is all training samples. A size above what a class has
            uses all of it; the row's ``n_train`` records the mean actually used.
        test_fraction: share of each class's polygons held out.
        seeds: one split and draw per seed; a seed whose split holds nothing out is skipped.
        feedback: progress (once per fit) and cancel.

    Returns:
        ``method``, ``test_fraction``, ``seeds`` (those evaluated), ``classes`` and ``rows``: one per feature set and
        size (in that order) with ``features``, ``per_class`` (the size or ``"all"``), ``n_train`` (mean training
        samples per class), ``overall_accuracy`` (mean over seeds), ``overall_accuracy_std`` (sample standard
        deviation over seeds), ``kappa`` and ``macro_f1`` (means). Plain JSON-able types.

    Raises:
        InputError: for an unknown method, mismatched inputs, bad sizes, or when no class has two polygons (nothing
            can be held out).
        CancelledError: when the feedback is cancelled.

    """
    probe_class = get_probe(method) if isinstance(method, str) else method
    y = np.asarray(y).astype("int64")
    groups = np.asarray(groups)
    feature_sets = {name: np.asarray(x) for name, x in feature_sets.items()}
    _check_inputs(feature_sets, y, groups, sizes)
    splits = _splits(y, groups, test_fraction, seeds, class_names)
    if not splits:
        raise InputError("No class has two polygons or more: no polygon can be held out for a learning curve.")

    total = len(splits) * len(sizes) * len(feature_sets)
    n_train: dict[int, list[float]] = {i: [] for i in range(len(sizes))}
    figures: dict[tuple[str, int], list[dict[str, Any]]] = {(n, i): [] for n in feature_sets for i in range(len(sizes))}
    done = 0
    for seed, test in splits:
        for i, size in enumerate(sizes):
            train = draw_per_class(y, groups, ~test, size, np.random.default_rng(seed))
            n_train[i].append(len(train) / len(np.unique(y[train])))
            for name, x in feature_sets.items():
                if feedback is not None:
                    feedback.check_cancel()
                figures[(name, i)].append(_fit_and_score(probe_class, x, y, train, test, class_names))
                done += 1
                if feedback is not None:
                    label = "all" if size is None else str(size)
                    feedback.progress(done / total, f"Learning curve: {name}, {label} per class, seed {seed}")

    rows = [_row(name, size, n_train[i], figures[(name, i)])
            for name in feature_sets for i, size in enumerate(sizes)]
    label = method if isinstance(method, str) else getattr(getattr(method, "__self__", None), "name", "probe")
    return {"method": label, "test_fraction": float(test_fraction), "seeds": [s for s, _ in splits],
            "classes": list(class_names), "rows": rows}


# ---------------------------------------------------------------------------------------------------------------
# Projection
# ---------------------------------------------------------------------------------------------------------------


def _stratified_subsample(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``k`` samples (``k < len(y)``), classes in proportion, every class keeping at least one."""
    classes, counts = np.unique(y, return_counts=True)
    share = counts * k / len(y)
    quota = np.minimum(np.maximum(np.floor(share).astype("int64"), 1), counts)
    spare = k - int(quota.sum())
    if spare > 0:  # largest remainders first, within what each class has
        for i in np.argsort(-(share - np.floor(share)), kind="stable"):
            if spare == 0:
                break
            if quota[i] < counts[i]:
                quota[i] += 1
                spare -= 1
    picked = [rng.choice(np.flatnonzero(y == c), size=int(q), replace=False) for c, q in zip(classes, quota,
                                                                                              strict=True)]
    return np.sort(np.concatenate(picked))


def _standardise(x: np.ndarray) -> np.ndarray:
    """Features scaled to zero mean and unit variance (constant features stay 0)."""
    x = np.asarray(x, dtype="float64")
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


def _pca(x: np.ndarray, seed: int) -> tuple[np.ndarray, list[float]]:
    """The first two principal components and their explained variance ratios (a zero axis when d or n < 2)."""
    # Lazy: scikit-learn takes half a second to import, and not every job needs it here.
    from sklearn.decomposition import PCA

    n_components = min(2, x.shape[1], x.shape[0])
    pca = PCA(n_components=n_components, random_state=seed)
    xy = pca.fit_transform(x)
    ratios = [float(r) for r in np.nan_to_num(pca.explained_variance_ratio_)]
    while xy.shape[1] < 2:
        xy = np.column_stack([xy, np.zeros(len(xy))])
        ratios.append(0.0)
    return xy, ratios


#: Up to this many points t-SNE runs on one OpenMP thread: its 1000 gradient steps are too short to gain from
#: threads, and on a busy CPU the threads' spin-waiting made 300 points 7 times slower (9.5 s instead of 1.3 s).
TSNE_SINGLE_THREAD_MAX = 1000


def _tsne(x: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """t-SNE to two dimensions, seeded, PCA-initialised, perplexity ``min(30, (n - 1) / 3)``."""
    # Lazy: scikit-learn takes half a second to import, and not every job needs it here.
    from sklearn.manifold import TSNE

    # Lazy: only the parallel folds need it.
    from threadpoolctl import threadpool_limits

    perplexity = min(30.0, (len(x) - 1) / 3.0)
    threads = 1 if len(x) <= TSNE_SINGLE_THREAD_MAX else None
    with threadpool_limits(limits=threads, user_api="openmp"):
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    return xy, perplexity


def projection(x: np.ndarray, y: np.ndarray, max_points: int = 3000, tsne_max: int = 5000,
               seed: int = 0) -> dict[str, Any]:
    """The labelled samples in two dimensions: PCA, and t-SNE as well when affordable. Plain data, no plot.

    The features are standardised first. More than ``max_points`` samples are subsampled to ``max_points``, classes
    in proportion (each keeps at least one). PCA is always computed; t-SNE (scikit-learn, seeded, ``init="pca"``,
    perplexity ``min(30, (n - 1) / 3)``) is added when the number of points is at most ``tsne_max`` (and at least
    5). t-SNE keeps neighbourhoods, not distances: far-apart clusters in it are not necessarily far apart in feature
    space. :func:`engine.assess.plots.feature_space_png` draws the result.

    Args:
        x: (n, d) features of the labelled samples.
        y: class index per sample.
        max_points: the most points kept.
        tsne_max: the most points for which t-SNE is computed.
        seed: seed of the subsample, PCA and t-SNE.

    Returns:
        ``methods`` (``["PCA"]`` or ``["PCA", "t-SNE"]``), ``pca_explained_variance`` (ratios of the two axes),
        ``n_points`` (points kept), ``n_samples`` (samples given), with t-SNE ``perplexity``, and the arrays
        ``coordinates`` (method -> (n_points, 2)) and ``y`` (class index per point kept).

    Raises:
        InputError: when ``x`` and ``y`` do not match or there is no sample.

    """
    x = np.asarray(x)
    y = np.asarray(y).astype("int64")
    if x.ndim != 2 or x.shape[0] != len(y) or len(y) == 0:
        raise InputError(f"Projection: features of shape {x.shape} do not match {len(y)} class labels.")
    n_samples = len(y)
    if len(y) > max_points:
        keep = _stratified_subsample(y, max_points, np.random.default_rng(seed))
        x, y = x[keep], y[keep]
    xs = _standardise(x)
    pca_xy, ratios = _pca(xs, seed)
    result: dict[str, Any] = {"methods": ["PCA"], "pca_explained_variance": ratios, "n_points": len(y),
                              "n_samples": n_samples, "coordinates": {"PCA": pca_xy}, "y": y}
    if 5 <= len(y) <= tsne_max:
        tsne_xy, perplexity = _tsne(xs, seed)
        result["methods"].append("t-SNE")
        result["perplexity"] = float(perplexity)
        result["coordinates"]["t-SNE"] = tsne_xy
    return result


def projection_png(
    x: np.ndarray,
    y: np.ndarray,
    class_names: list[str],
    colors: list[str],
    path: str | Path,
    max_points: int = 3000,
    tsne_max: int = 5000,
    seed: int = 0,
) -> dict[str, Any]:
    """Compute the :func:`projection` of the labelled samples and draw it, coloured by class, as a PNG at ``path``.

    Args:
        x: (n, d) features of the labelled samples.
        y: class index per sample.
        class_names: class names, by class index.
        colors: ``#rrggbb`` colour per class index.
        path: the PNG to write.
        max_points: the most points drawn.
        tsne_max: the most points for which t-SNE is computed.
        seed: seed of the subsample, PCA and t-SNE.

    Returns:
        The report's ``projection`` section: ``png`` (the path), ``methods``, ``pca_explained_variance``,
        ``n_points``, ``n_samples`` and, with t-SNE, ``perplexity`` (see :func:`projection`); no arrays.

    Raises:
        InputError: when ``x`` and ``y`` do not match or there is no sample.

    """
    computed = projection(x, y, max_points=max_points, tsne_max=tsne_max, seed=seed)
    feature_space_png(computed, class_names, colors, path)
    return {"png": str(path), **{k: v for k, v in computed.items() if k not in ("coordinates", "y")}}
