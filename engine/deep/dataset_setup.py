"""From a raster and labelled polygons to training and validation datasets and a network ready to train."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..core.errors import InputError
from ..core.feedback import Feedback
from ..embeddings.encode import band_statistics, empty_bands, patch_sampler
from ..io.labels import LabelClass, labels_over_raster, sample_pixels
from ..io.rasters import band_label, common_dtype
from ..samples.classes import drop_empty_classes
from ..samples.validation import cap_per_class, make_folds, polygon_group_split
from .data import IGNORE, ChipDataset, ChipStore, TileDataset, read_tiles
from .networks import BuiltNetwork, StartingPoint, build_network

logger = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """Datasets, the network, the classes and what to record about the training data."""

    classes: list[LabelClass]
    built: BuiltNetwork
    train: Any
    val: Any | None
    class_counts: list[int]
    stats: dict[str, Any]
    input_info: dict[str, Any]


def _input_info(src: Any, raster: str, left_out: list[int]) -> dict[str, Any]:
    return {"band_count": src.count, "band_names": [d or f"band {i}" for i, d in enumerate(src.descriptions, 1)],
            "bands_left_out": list(left_out), "dtype": common_dtype(src.dtypes), "nodata": src.nodata,
            "crs_wkt": src.crs.to_wkt() if src.crs else None, "raster": raster}


def prepare_data(src: Any, raster: str, labels: str, field: str, task: str, backbone: str, chip: int,
                 start: StartingPoint, validation: str, test_fraction: float, max_per_class: int, n_pca: int,
                 seed: int, class_colors: dict[str, str] | None, feedback: Feedback) -> PreparedData:
    """Read the labelled data of ``src`` for ``task`` and build the network.

    Called by :func:`engine.jobs.finetune.finetune`.
    """
    names = [d or f"band {i}" for i, d in enumerate(src.descriptions, start=1)]
    options = {"n_pca": n_pca} if task == "hyperspectral" else {}
    empty = empty_bands(src)
    if task == "segmentation":
        return _tiles(src, raster, labels, field, backbone, chip, start, test_fraction, seed, class_colors, names,
                      empty, validation)
    return _chips(src, raster, labels, field, task, backbone, chip, start, validation, test_fraction,
                  max_per_class, seed, class_colors, names, empty, options, feedback)


def _build(src: Any, raster: str, task: str, backbone: str, names: list[str], empty: list[int], n_classes: int,
           chip: int, start: StartingPoint, options: dict[str, Any] | None = None) -> BuiltNetwork:
    """The network on the bands of ``src`` that hold values: ``empty`` (1-based) are left out, with a log line.

    The network is built on the kept bands as if they were the raster's only ones (so a pretrained encoder matches
    its bands by name among them); its ``bands`` are then given back as the raster's band numbers.
    """
    kept = [b for b in range(1, src.count + 1) if b not in set(empty)]
    if not kept:
        raise InputError(f"Raster {raster} holds no value (nodata or NaN) in any band: nothing to train on.")
    if empty:
        logger.warning("Left out %s of %s: no value (nodata or NaN) %s; the model records the bands it reads, and "
                       "Classify raster reads the same ones.", ", ".join(band_label(b, names[b - 1]) for b in empty),
                       raster, "there" if len(empty) == 1 else "in them")
    stats = band_statistics(src, bands=kept)
    sampler = patch_sampler(src, bands=kept) if task != "segmentation" else None
    built = build_network(task, backbone, [names[b - 1] for b in kept], stats, n_classes, chip, start, sampler,
                          options or {})
    built.bands = [kept[b - 1] for b in built.bands]
    return built


def _chips(src: Any, raster: str, labels: str, field: str, task: str, backbone: str, chip: int,
           start: StartingPoint, validation: str, test_fraction: float, max_per_class: int, seed: int,
           class_colors: dict[str, str] | None, names: list[str], empty: list[int], options: dict[str, Any],
           feedback: Feedback) -> PreparedData:
    samples = drop_empty_classes(sample_pixels(raster, labels, field, feedback, class_colors))
    empty = sorted(set(empty) | set(samples.empty_bands))  # none anywhere, or none under the labels
    keep = cap_per_class(samples.y, samples.groups, max_per_class, seed)
    if len(keep) < len(samples.y):
        logger.info("Kept %d of %d labelled pixels (at most %d per class).", len(keep), len(samples.y),
                    max_per_class)
        samples = replace(samples, x=samples.x[keep], y=samples.y[keep], groups=samples.groups[keep],
                          rows=samples.rows[keep], cols=samples.cols[keep])
    folds = make_folds(validation, samples.y, samples.groups, samples.rows, samples.cols,
                       test_fraction=test_fraction, seed=seed, class_names=[c.name for c in samples.classes])
    test = folds[0] if folds else np.zeros(len(samples.y), dtype=bool)
    if task == "hyperspectral":  # no more components than bands or training pixels can give
        n_pca = min(int(options["n_pca"]), len(names) - len(empty), int((~test).sum()))
        if n_pca < int(options["n_pca"]):
            logger.warning("Principal components lowered from %d to %d (the bands or training pixels available).",
                           options["n_pca"], n_pca)
        options = {**options, "n_pca": max(1, n_pca)}
    built = _build(src, raster, task, backbone, names, empty, len(samples.classes), chip, start, options)
    if task == "hyperspectral":
        _fit_pca(built, samples.x[~test])
    store = ChipStore(src, built.bands, built.mean, built.std, samples.rows, samples.cols, chip)
    jitter = 0.02 if task == "hyperspectral" else 0.0
    train = ChipDataset(store, np.flatnonzero(~test), samples.y, train=True, spectral_jitter=jitter)
    val = ChipDataset(store, np.flatnonzero(test), samples.y, train=False) if test.any() else None
    counts = np.bincount(samples.y[~test], minlength=len(samples.classes)).tolist()
    stats = {**samples.stats, "n_samples_used": len(samples.y), "n_train": int((~test).sum()),
             "n_validation": int(test.sum()), "n_test_polygons": len(np.unique(samples.groups[test])),
             "chip_size": chip}
    logger.info("%d training and %d validation chips of %d px.", stats["n_train"], stats["n_validation"], chip)
    return PreparedData(samples.classes, built, train, val, counts, stats, _input_info(src, raster, empty))


def _fit_pca(built: BuiltNetwork, pixels: Any) -> None:
    """Set the hyperspectral network's PCA from the training pixels (normalised as the network sees them)."""
    # Lazy: it loads torch: the torch stack takes seconds to import.
    from .ssan import fit_pca

    normalised = (pixels[:, [b - 1 for b in built.bands]] - built.mean) / built.std
    built.module.set_pca(*fit_pca(normalised.astype("float32"), int(built.spec.options.get("n_pca", 30))))


def _tiles(src: Any, raster: str, labels: str, field: str, backbone: str, chip: int, start: StartingPoint,
           test_fraction: float, seed: int, class_colors: dict[str, str] | None, names: list[str], empty: list[int],
           validation: str) -> PreparedData:
    if validation == "random_pixels":
        raise InputError("Segmentation validates on whole polygons: choose the polygon split or none.")
    gdf, classes, window = labels_over_raster(src, labels, field, class_colors)
    polygon_class = gdf["_class"].to_numpy()
    polygon_id = gdf["_group"].to_numpy()
    test_groups: set[int] = set()
    if validation != "none":
        mask = polygon_group_split(polygon_class, polygon_id, test_fraction, seed, [c.name for c in classes])
        test_groups = {int(g) for g in polygon_id[mask]}
    built = _build(src, raster, "segmentation", backbone, names, empty, len(classes), chip, start)
    tiles = read_tiles(src, gdf, window, built.bands, built.mean, built.std, chip, test_groups)
    if not len(tiles.data):
        raise InputError(f"The labels of {labels} cover only nodata pixels of {raster}: nothing to train on.")
    train = TileDataset(tiles.data, tiles.train_target, train=True)
    # the same labels on tiles side by side: every pixel once, to validate on and to count
    side_by_side = read_tiles(src, gdf, window, built.bands, built.mean, built.std, chip, test_groups, chip)
    val = TileDataset(side_by_side.data, side_by_side.val_target, train=False) if test_groups else None
    n_val = int((side_by_side.val_target != IGNORE).sum())
    counts = np.bincount(side_by_side.train_target[side_by_side.train_target != IGNORE].ravel(),
                         minlength=len(classes)).tolist()
    stats = {"n_samples": int(sum(counts)) + n_val, "n_polygons": len(np.unique(polygon_id)),
             "n_train": int(sum(counts)), "n_validation": n_val, "n_test_polygons": len(test_groups),
             "n_tiles": len(tiles.data), "chip_size": chip,
             "samples_per_class": {c.name: n for c, n in zip(classes, counts, strict=True)}}
    logger.info("%d tiles of %d px: %d training and %d validation pixels.", len(tiles.data), chip, stats["n_train"],
                n_val)
    return PreparedData(classes, built, train, val, counts, stats, _input_info(src, raster, empty))

