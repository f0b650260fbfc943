"""Whole-scene prediction with a deep model, window by window, for :func:`engine.predict.classify_raster`.

- Chip models (``patch``, ``hyperspectral``) classify every valid pixel from the chip centred on it; a window is
  read with a margin of half a chip, so windows join without seams.
- Segmentation models run on tiles laid on one grid over the whole raster (every ``tile - overlap`` px), and each
  pixel's class probabilities are the average of the tiles covering it, weighted by a ramp that falls towards each
  tile's edges. A window predicts exactly the tiles of that grid that touch it, so the map does not depend on the
  window size: no seams at window edges, and the tile edges are blended away.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..core.feedback import Feedback
from ..io.rasters import band_nodata, open_raster, read_block, read_normalised, valid_mask
from .package import DeepModel

PROBABILITY_NODATA = -1.0
CHIP_BATCH = 256


def tile_weights(size: int, overlap: int) -> np.ndarray:
    """Blending weights of a ``size`` px tile: 1 inside, a linear ramp over ``overlap`` px towards the edges."""
    ramp = np.ones(size, dtype="float64")
    if overlap > 0:
        edge = (np.arange(overlap) + 0.5) / overlap
        ramp[:overlap] = edge
        ramp[size - overlap:] = edge[::-1]
    return np.outer(ramp, ramp).astype("float32")


class DeepWindowPredictor:
    """Reads a window (with the context the network needs) and predicts it; one call at a time."""

    def __init__(self, raster: str, model: DeepModel, want_proba: bool, device: str = "cpu",
                 feedback: Feedback | None = None) -> None:
        """Predict ``raster`` with ``model`` on ``device``; ``feedback``'s cancel is checked every batch."""
        self._raster, self._model, self._want_proba, self._device = raster, model, want_proba, device
        self._feedback = feedback or Feedback()
        self._src: Any = None
        self._lock = threading.Lock()
        spec = model.spec
        self._overlap = int(spec.options.get("overlap", spec.chip // 4))
        self._weights = tile_weights(spec.chip, self._overlap) if spec.task == "segmentation" else None

    def __call__(self, window: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Class index per pixel (-1 for nodata) and, when asked for, class probabilities (classes, rows, cols)."""
        with self._lock:  # torch parallelises inside a window; windows go one at a time
            if self._src is None:
                self._src = open_raster(self._raster)
            src, model = self._src, self._model
            row0, col0, h, w = int(window.row_off), int(window.col_off), int(window.height), int(window.width)
            nodata = band_nodata(src)  # a pixel is valid when the bands the network reads hold a value
            valid = valid_mask(read_block(src, window, model.bands), [nodata[b - 1] for b in model.bands])
            n = model.spec.n_classes
            proba = np.zeros((n, h, w), dtype="float32")
            if valid.any():
                if model.spec.task == "segmentation":
                    proba = self._segment(src, row0, col0, h, w)
                else:
                    proba[:, valid] = self._chips(src, row0, col0, h, w, valid)
            index = np.where(valid, proba.argmax(axis=0), -1).astype("int32")
            if not self._want_proba:
                return index, None
            proba[:, ~valid] = PROBABILITY_NODATA
            return index, proba

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        # Lazy: the torch stack takes seconds to import.
        import torch

        self._feedback.check_cancel()  # a window of chips can take a while: stop between batches
        with torch.inference_mode():
            logits = self._model.network(torch.from_numpy(batch).to(self._device))
            return torch.softmax(logits.float(), dim=1).cpu().numpy()

    def _chips(self, src: Any, row0: int, col0: int, h: int, w: int, valid: np.ndarray) -> np.ndarray:
        """Probabilities (classes, n valid pixels) from the chip around each valid pixel."""
        model, chip = self._model, self._model.spec.chip
        half = chip // 2
        data, _ = read_normalised(src, model.bands, row0 - half, col0 - half, h + chip - 1, w + chip - 1,
                                  model.mean, model.std)

        views = sliding_window_view(data, (chip, chip), axis=(1, 2))  # bands, h, w, chip, chip
        rows, cols = np.nonzero(valid)
        out = np.empty((model.spec.n_classes, len(rows)), dtype="float32")
        for start in range(0, len(rows), CHIP_BATCH):
            r, c = rows[start:start + CHIP_BATCH], cols[start:start + CHIP_BATCH]
            batch = np.ascontiguousarray(views[:, r, c].transpose(1, 0, 2, 3))
            out[:, start:start + len(r)] = self._forward(batch).T
        return out

    def _segment(self, src: Any, row0: int, col0: int, h: int, w: int) -> np.ndarray:
        """Blended probabilities (classes, h, w) of the grid tiles touching the window."""
        model, size = self._model, self._model.spec.chip
        step = size - self._overlap
        acc = np.zeros((model.spec.n_classes, h, w), dtype="float32")
        total = np.zeros((h, w), dtype="float32")
        first_r, first_c = (row0 - size) // step + 1, (col0 - size) // step + 1
        origins = [(tr * step, tc * step) for tr in range(max(0, first_r), (row0 + h - 1) // step + 1)
                   for tc in range(max(0, first_c), (col0 + w - 1) // step + 1)]
        for start in range(0, len(origins), 16):
            group = origins[start:start + 16]
            batch = np.stack([read_normalised(src, model.bands, r, c, size, size, model.mean, model.std)[0]
                              for r, c in group])
            for (r, c), p in zip(group, self._forward(batch), strict=True):
                r0, r1 = max(r, row0), min(r + size, row0 + h)
                c0, c1 = max(c, col0), min(c + size, col0 + w)
                wt = self._weights[r0 - r:r1 - r, c0 - c:c1 - c]
                acc[:, r0 - row0:r1 - row0, c0 - col0:c1 - col0] += p[:, r0 - r:r1 - r, c0 - c:c1 - c] * wt
                total[r0 - row0:r1 - row0, c0 - col0:c1 - col0] += wt
        return acc / np.maximum(total, 1e-12)

    def close(self) -> None:
        """Close the raster."""
        if self._src is not None:
            self._src.close()
