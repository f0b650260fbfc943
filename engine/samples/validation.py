"""Validation splits that do not leak.

Every scheme returns folds as boolean masks of test samples. Whole polygons always land on one side (except in
``random_pixels``, which exists for comparison with tools that split pixels and is marked optimistic):

- ``polygon_groups`` (default): about ``test_fraction`` of each class's polygons held out once;
- ``group_kfold``: k folds of polygons, stratified by class; every polygon is tested once;
- ``spatial_blocks``: polygons grouped into square blocks of the raster grid, k folds of blocks, so that the
  test polygons are also far from the training ones;
- ``random_pixels``: a stratified random pixel split; neighbouring pixels of one polygon fall on both sides, so the
  figures are optimistic;
- ``none``: no validation.
"""

from __future__ import annotations

import logging

import numpy as np

from ..core.errors import InputError

logger = logging.getLogger(__name__)

SCHEMES = {
    "polygon_groups": "Whole polygons held out, stratified by class; figures are per held-out pixel.",
    "group_kfold": "k-fold cross-validation by whole polygons, stratified by class; every polygon tested once.",
    "spatial_blocks": "k-fold cross-validation by spatial blocks of polygons; test polygons lie away from training "
    "ones.",
    "random_pixels": "Random pixel split: neighbouring pixels of one polygon fall on both sides, so these figures "
    "are OPTIMISTIC and overstate the map's accuracy.",
    "none": "No validation.",
}


#: Class names listed in full in a warning; beyond them, "and N more".
LISTED_CLASSES = 12


def name_list(names: list[str], limit: int = LISTED_CLASSES) -> str:
    """``a, b, c`` for a log line: at most ``limit`` names, then ``and N more``."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def classes_in_one_group(y: np.ndarray, groups: np.ndarray, class_names: list[str] | None = None) -> list[str]:
    """The names of the classes whose samples all lie in a single group (one polygon, or one spatial block)."""
    single = [k for k in np.unique(y) if len(np.unique(groups[y == k])) < 2]
    return [class_names[k] if class_names else str(k) for k in single]


def warn_single_polygon_classes(names: list[str]) -> None:
    """One warning line for every class with a single polygon, used for training and not validated."""
    if len(names) == 1:
        logger.warning("Class %s has a single polygon, used for training and not validated. Draw a second polygon "
                       "to measure its accuracy.", names[0])
    elif names:
        logger.warning("%d classes have a single polygon, used for training and not validated: %s. Draw a second "
                       "polygon for each to measure their accuracy.", len(names), name_list(names))


def _warn_untrainable_in_fold(names: list[str], what: str) -> None:
    """One warning line for the classes in a single ``what`` (polygon, spatial block) under k-fold validation."""
    if len(names) == 1:
        logger.warning("Class %s lies in a single %s: the fold that tests it has not learnt it, so its accuracy "
                       "reads 0 %%. Draw polygons of it in another part of the image.", names[0], what)
    elif names:
        logger.warning("%d classes lie in a single %s each: the fold that tests one has not learnt it, so their "
                       "accuracy reads 0 %%: %s. Draw polygons of each in another part of the image.", len(names),
                       what, name_list(names))


def polygon_group_split(
    y: np.ndarray, groups: np.ndarray, test_fraction: float = 0.3, seed: int = 0, class_names: list[str] | None = None
) -> np.ndarray:
    """Hold out about ``test_fraction`` of each class's polygons; return a boolean mask of test samples.

    Every pixel of a polygon lands on the same side, so neighbouring pixels never sit on both. A class keeps at
    least one polygon for training; the classes with a single polygon are not validated (one warning names them).
    """
    rng = np.random.default_rng(seed)
    test_groups: list[np.ndarray] = []
    warn_single_polygon_classes(classes_in_one_group(y, groups, class_names))
    for k in np.unique(y):
        class_groups = np.unique(groups[y == k])
        if len(class_groups) < 2:
            continue
        n_test = min(max(1, round(test_fraction * len(class_groups))), len(class_groups) - 1)
        test_groups.append(rng.choice(class_groups, size=n_test, replace=False))
    if not test_groups:
        return np.zeros(len(y), dtype=bool)
    return np.isin(groups, np.concatenate(test_groups))


def _group_kfold(y: np.ndarray, groups: np.ndarray, n_folds: int, seed: int, class_names: list[str] | None = None,
                 what: str = "polygon") -> list[np.ndarray]:
    """Stratified k-fold over groups; fewer folds when there are fewer groups.

    A class whose samples lie in a single group (``what``: a polygon or a spatial block) is tested in the fold that
    holds out that group, where the model has never seen it: with ``class_names`` (the validation the user asked
    for, not the inner cross-validation of :mod:`engine.assess.selection`), one warning names these classes.
    """
    # Lazy: scikit-learn takes half a second to import, and not every job needs it here.
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(np.unique(groups))
    # scikit-learn refuses more folds than the largest class has samples (a few embedding cells per class)
    largest = int(np.unique(y, return_counts=True)[1].max()) if len(y) else 0
    n_folds = min(n_folds, n_groups, largest)
    if n_folds < 2:
        return []
    single = classes_in_one_group(y, groups, class_names) if class_names is not None else []
    _warn_untrainable_in_fold(single, what)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = []
    for _, test_index in splitter.split(np.zeros(len(y)), y, groups):
        mask = np.zeros(len(y), dtype=bool)
        mask[test_index] = True
        folds.append(mask)
    return folds


def spatial_block_ids(groups: np.ndarray, rows: np.ndarray, cols: np.ndarray, block_size: int) -> np.ndarray:
    """The block of every sample: the ``block_size`` px square holding its polygon's first sampled pixel.

    A polygon is never split between blocks, so whole polygons move together.
    """
    _, first = np.unique(groups, return_index=True)
    order = np.searchsorted(np.unique(groups), groups)
    block_rows = rows[first] // block_size
    block_cols = cols[first] // block_size
    block_of_group = block_rows * (int(cols.max()) // block_size + 1) + block_cols
    return block_of_group[order]


def make_folds(scheme: str, y: np.ndarray, groups: np.ndarray, rows: np.ndarray, cols: np.ndarray, *,
               test_fraction: float = 0.3, n_folds: int = 5, seed: int = 0, block_size: int | None = None,
               class_names: list[str] | None = None) -> list[np.ndarray]:
    """Test masks for ``scheme`` (see the module's docstring); an empty list means no validation is possible.

    Raises:
        InputError: for an unknown scheme.

    """
    if scheme not in SCHEMES:
        raise InputError(f"Unknown validation {scheme!r}; choose one of: {', '.join(SCHEMES)}.")
    if scheme == "none":
        return []
    if scheme == "polygon_groups":
        mask = polygon_group_split(y, groups, test_fraction, seed, class_names)
        return [mask] if mask.any() else []
    if scheme == "group_kfold":
        return _group_kfold(y, groups, n_folds, seed, class_names)
    if scheme == "spatial_blocks":
        if block_size is None:  # about 5 x 5 blocks over the labelled extent
            extent = max(int(rows.max() - rows.min()), int(cols.max() - cols.min())) + 1
            block_size = max(1, extent // 5)
        blocks = spatial_block_ids(groups, rows - rows.min(), cols - cols.min(), block_size)
        logger.info("Spatial blocks of %d px: %d blocks hold labels.", block_size, len(np.unique(blocks)))
        return _group_kfold(y, blocks, n_folds, seed, class_names, "spatial block")
    # random_pixels
    # Lazy: scikit-learn takes half a second to import, and not every job needs it here.
    from sklearn.model_selection import train_test_split

    logger.warning("Random pixel validation: neighbouring pixels of one polygon fall on both sides, so the "
                   "accuracy is optimistic.")
    _, test_index = train_test_split(np.arange(len(y)), test_size=test_fraction, random_state=seed, stratify=y)
    mask = np.zeros(len(y), dtype=bool)
    mask[test_index] = True
    return [mask]


def cap_per_class(y: np.ndarray, groups: np.ndarray, max_per_class: int, seed: int = 0) -> np.ndarray:
    """Indices of samples to keep: at most ``max_per_class`` per class.

    The budget is shared as evenly as possible among the class's polygons, so one huge polygon cannot dominate.
    """
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    for k in np.unique(y):
        index = np.flatnonzero(y == k)
        if len(index) <= max_per_class:
            keep.append(index)
            continue
        polygon_ids, sizes = np.unique(groups[index], return_counts=True)
        # Water-filling: raise a common quota until the class budget is spent.
        quota = np.zeros(len(sizes), dtype="int64")
        budget = max_per_class
        open_ = np.ones(len(sizes), dtype=bool)
        while budget > 0 and open_.any():
            share = max(1, budget // int(open_.sum()))
            grant = np.minimum(sizes - quota, share) * open_
            grant = np.minimum(grant, np.maximum(0, budget - np.cumsum(grant) + grant))
            quota += grant
            budget -= int(grant.sum())
            open_ = quota < sizes
        for pid, q in zip(polygon_ids, quota, strict=True):
            members = index[groups[index] == pid]
            keep.append(rng.choice(members, size=int(q), replace=False) if q < len(members) else members)
    return np.sort(np.concatenate(keep))
