"""One decision tree as flat arrays, the form both the compiled kernels and the tree walkers read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class VectorTree:
    """One tree in breadth-first order: ``left[n] == -1`` marks a leaf; a split sends ``x[feature] < cond`` left."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    cond: np.ndarray
    value: np.ndarray  # (nodes, outputs), read at leaves

    @property
    def size(self) -> int:
        """Number of nodes."""
        return len(self.left)
