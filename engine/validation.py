"""Validation splits that do not leak: whole polygons go to one side, stratified by class."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)


def polygon_group_split(
    y: np.ndarray, groups: np.ndarray, test_fraction: float = 0.3, seed: int = 0, class_names: list[str] | None = None
) -> np.ndarray:
    """Hold out about ``test_fraction`` of each class's polygons; return a boolean mask of test samples.

    Every pixel of a polygon lands on the same side, so neighbouring pixels never sit on both. A class keeps at
    least one polygon for training; a class with a single polygon is not validated (a warning says so).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    test_groups: list[np.ndarray] = []
    for k in np.unique(y):
        class_groups = np.unique(groups[y == k])
        if len(class_groups) < 2:
            name = class_names[k] if class_names else str(k)
            logger.warning("Class %s has only one polygon: it is used for training and not validated.", name)
            continue
        n_test = min(max(1, round(test_fraction * len(class_groups))), len(class_groups) - 1)
        test_groups.append(rng.choice(class_groups, size=n_test, replace=False))
    if not test_groups:
        return np.zeros(len(y), dtype=bool)
    return np.isin(groups, np.concatenate(test_groups))
