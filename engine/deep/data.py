"""Training data for deep models: chips around labelled pixels, tiles with label masks, and augmentation.

The raster is read once, normalised, and held in memory only where labels are: blocks of 512 px (plus a margin of
a chip) around labelled pixels for chip tasks, and the training tiles themselves for segmentation. Nodata pixels and
pixels outside the raster read as 0 after normalisation (the band mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio import features, windows

from ..io.labels import burn_classes
from ..io.rasters import read_normalised

if TYPE_CHECKING:
    import torch

BLOCK = 512
IGNORE = -1  # target value the loss ignores (unlabelled pixels, and the other split's polygons)


class ChipStore:
    """Chips of ``chip`` x ``chip`` px centred on pixels (``rows``, ``cols``) of an open raster."""

    def __init__(self, src: Any, bands: list[int], mean: np.ndarray, std: np.ndarray, rows: np.ndarray,
                 cols: np.ndarray, chip: int) -> None:
        self.chip, self.half = chip, chip // 2
        keys = (rows // BLOCK) * (src.width // BLOCK + 1) + cols // BLOCK
        self.blocks: list[np.ndarray] = []
        self.where = np.zeros((len(rows), 3), dtype="int64")  # block, row and column of each chip's corner
        for key in np.unique(keys):
            members = np.flatnonzero(keys == key)
            top, left = int(rows[members[0]] // BLOCK * BLOCK), int(cols[members[0]] // BLOCK * BLOCK)
            data, _ = read_normalised(src, bands, top - self.half, left - self.half, BLOCK + chip, BLOCK + chip,
                                      mean, std)
            self.where[members] = np.stack([np.full(len(members), len(self.blocks)), rows[members] - top,
                                            cols[members] - left], axis=1)
            self.blocks.append(data)

    def __len__(self) -> int:
        return len(self.where)

    def get(self, i: int) -> np.ndarray:
        """Chip ``i`` (bands, chip, chip), a view."""
        block, r, c = self.where[i]
        return self.blocks[block][:, r:r + self.chip, c:c + self.chip]

    def stack(self, index: np.ndarray) -> np.ndarray:
        """Chips ``index`` as one array (n, bands, chip, chip)."""
        return np.stack([self.get(int(i)) for i in index]) if len(index) else np.zeros((0, 0, self.chip, self.chip))


def augment(x: torch.Tensor, target: torch.Tensor | None = None, spectral_jitter: float = 0.0
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A random flip and quarter turn (the same for ``target``), and an optional per-band gain and offset."""
    # Lazy: the torch stack takes seconds to import.
    import torch

    k = int(torch.randint(0, 4, ()).item())
    flip = bool(torch.randint(0, 2, ()).item())
    x = torch.rot90(x, k, dims=(-2, -1))
    if flip:
        x = torch.flip(x, dims=(-1,))
    if target is not None:
        target = torch.rot90(target, k, dims=(-2, -1))
        if flip:
            target = torch.flip(target, dims=(-1,))
    if spectral_jitter:
        gain = 1 + spectral_jitter * torch.randn(x.shape[0], 1, 1)
        x = x * gain + spectral_jitter * torch.randn(x.shape[0], 1, 1)
    return x, target


class ChipDataset:
    """A torch map-style dataset of chips and their class indices, optionally augmented."""

    def __init__(self, store: ChipStore, index: np.ndarray, y: np.ndarray, train: bool,
                 spectral_jitter: float = 0.0) -> None:
        self.store, self.index, self.y = store, index, y
        self.train, self.spectral_jitter = train, spectral_jitter

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Lazy: the torch stack takes seconds to import.
        import torch

        j = int(self.index[i])
        x = torch.from_numpy(self.store.get(j).copy())
        if self.train:
            x, _ = augment(x, None, self.spectral_jitter)
        return x.contiguous(), torch.tensor(int(self.y[j]))


@dataclass
class Tiles:
    """Training tiles for segmentation: normalised values and one target per split (``IGNORE`` elsewhere)."""

    data: np.ndarray  # (n, bands, size, size) float32
    train_target: np.ndarray  # (n, size, size) int64
    val_target: np.ndarray


class TileDataset:
    """A torch map-style dataset of tiles and their per-pixel targets, optionally augmented."""

    def __init__(self, data: np.ndarray, target: np.ndarray, train: bool) -> None:
        keep = np.flatnonzero((target != IGNORE).any(axis=(1, 2)))
        self.data, self.target, self.train = data[keep], target[keep], train

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Lazy: the torch stack takes seconds to import.
        import torch

        x, t = torch.from_numpy(self.data[i].copy()), torch.from_numpy(self.target[i].copy())
        if self.train:
            x, t = augment(x, t)
        return x.contiguous(), t.contiguous()


def read_tiles(src: Any, gdf: Any, label_window: Any, bands: list[int], mean: np.ndarray, std: np.ndarray,
               size: int, test_groups: set[int], step: int | None = None) -> Tiles:
    """Tiles of ``size`` px every ``step`` px (default ``size // 2``) over the labels, with each labelled pixel's class.

    A pixel's class goes to the training target when its polygon is not in ``test_groups``, else to the validation
    target; unlabelled pixels, pixels claimed by two classes and nodata pixels are ``IGNORE`` in both.
    """
    # Lazy: shapely comes with the label reading, not needed by every job.
    from shapely.geometry import box


    step = max(1, step or size // 2)
    r_start, c_start = int(label_window.row_off), int(label_window.col_off)
    r_end, c_end = r_start + int(label_window.height), c_start + int(label_window.width)
    data, train_t, val_t = [], [], []
    test = np.array(sorted(test_groups), dtype="int64")
    sindex = gdf.sindex
    for top in range(r_start - step // 2, max(r_start, r_end - step // 2) + 1, step):
        for left in range(c_start - step // 2, max(c_start, c_end - step // 2) + 1, step):
            win = windows.Window(left, top, size, size)
            hits = sindex.query(box(*windows.bounds(win, src.transform)))
            if not len(hits):
                continue
            sub = gdf.iloc[hits]
            transform = src.window_transform(win)
            index, claims = burn_classes(sub, (size, size), transform)
            groups = features.rasterize(zip(sub.geometry, sub["_group"], strict=True), out_shape=(size, size),
                                        transform=transform, fill=0, dtype="int32")
            x, valid = read_normalised(src, bands, top, left, size, size, mean, std)
            labelled = (claims == 1) & valid
            if not labelled.any():
                continue
            in_test = np.isin(groups, test)
            data.append(x)
            train_t.append(np.where(labelled & ~in_test, index, IGNORE).astype("int64"))
            val_t.append(np.where(labelled & in_test, index, IGNORE).astype("int64"))
    if not data:
        return Tiles(np.zeros((0, len(bands), size, size), "float32"), np.zeros((0, size, size), "int64"),
                     np.zeros((0, size, size), "int64"))
    return Tiles(np.stack(data), np.stack(train_t), np.stack(val_t))
