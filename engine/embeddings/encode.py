"""Embedding rasters: an encoder applied to every patch of a raster, written on the patch grid.

The output grid has one cell per ``stride`` x ``stride`` pixels, aligned with the raster's origin (its transform is
the raster's scaled by ``stride``); each cell's embedding comes from the ``patch`` x ``patch`` pixels centred on it.
Pixels outside the raster or on nodata are set to the band mean (zero after normalisation); a cell is nodata (NaN)
when less than half of its patch's pixels inside the raster are valid. The raster is read in strips of cell rows,
so memory stays bounded; batches of patches go through the encoder on the GPU when there is one, else on the CPU
(the log names the device).

The file records, as JSON in its ``LANDPROBE_EMBEDDING`` metadata item, the encoder, the weights, the bands read,
patch, stride, normalisation and versions, so that later steps can refuse embeddings of another encoder.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window

from ..core.devices import choose_device
from ..core.errors import InputError
from ..core.feedback import Feedback
from ..core.numbers import mean_and_scale
from ..core.versions import library_versions
from ..io.rasters import (
    atomic_output,
    band_label,
    band_nodata,
    band_scaling,
    open_raster,
    read_block,
    read_normalised,
    valid_mask,
)
from .encoders import EncoderOptions, EncoderRequest, build_encoder, get_encoder
from .inputs import METADATA_KEY

if TYPE_CHECKING:
    from .encoders import BuiltEncoder, EncoderOptions

logger = logging.getLogger(__name__)

STRIP_PIXELS = 4_000_000  # raw pixels read per strip
BLOCK_ROWS = 16  # output tile height in cells: strips are written in whole tiles, each compressed once


@dataclass
class EmbeddingResult:
    """The embedding raster written and its shape."""

    output: str
    encoder: str
    dim: int
    width: int
    height: int
    device: str
    valid_cells: int
    preview: str | None = None


def _decimated(src: Any, max_side: int) -> np.ndarray:
    """All bands of ``src`` read at most ``max_side`` pixels a side (GDAL's overviews or nearest)."""
    scale = max(1, math.ceil(max(src.width, src.height) / max_side))
    return read_block(src, out_shape=(src.count, max(1, src.height // scale), max(1, src.width // scale)))


def empty_bands(src: Any, max_side: int = 1024, data: np.ndarray | None = None) -> list[int]:
    """Bands (1-based) of ``src`` that hold no value (nodata or NaN) anywhere in a read decimated to ``max_side``."""
    data = _decimated(src, max_side) if data is None else data
    nodata = band_nodata(src)
    return [b + 1 for b in range(src.count) if not valid_mask(data[b:b + 1], [nodata[b]]).any()]


def _scaling_of(scaling: tuple[list[float], list[float]] | None, bands: list[int]
                ) -> tuple[list[float], list[float]] | None:
    """The scales and offsets of ``bands`` (1-based) among every band's ``scaling``."""
    return None if scaling is None else ([scaling[0][b - 1] for b in bands], [scaling[1][b - 1] for b in bands])


def band_statistics(src: Any, max_side: int = 1024, scaling: tuple[list[float], list[float]] | None = None,
                    bands: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std of the valid pixels, from a read decimated to at most ``max_side`` pixels a side.

    With ``scaling`` (each band's scale and offset, see :func:`engine.io.rasters.band_scaling`), of physical values.
    With ``bands`` (1-based), of those bands only, a pixel being valid when those bands hold a value.

    Raises:
        InputError: when no pixel holds a value in every band, naming the bands that hold none.

    """
    data = _decimated(src, max_side)
    nodata = band_nodata(src)
    if bands is not None:
        data, nodata = data[[b - 1 for b in bands]], [nodata[b - 1] for b in bands]
        scaling = _scaling_of(scaling, bands)
    valid = valid_mask(data, nodata)
    if not valid.any():
        empty = empty_bands(src, max_side, data)
        if empty and len(empty) < src.count:
            names = [d or f"band {i}" for i, d in enumerate(src.descriptions, start=1)]
            raise InputError(
                f"Raster {src.name}: {', '.join(band_label(b, names[b - 1]) for b in empty)} hold no value (nodata "
                "or NaN) anywhere, so every pixel counts as nodata; leave those bands out and try again."
            )
        raise InputError(f"Raster {src.name} holds only nodata: nothing to encode.")
    values = data[:, valid].astype("float64")
    if scaling is not None:
        values = values * np.asarray(scaling[0])[:, None] + np.asarray(scaling[1])[:, None]
    return mean_and_scale(values, axis=1)


def patch_sampler(src: Any, scaling: tuple[list[float], list[float]] | None = None,
                  bands: list[int] | None = None) -> Any:
    """A function drawing ``n`` random ``size`` x ``size`` patches (raw values) from valid parts of ``src``.

    With ``scaling`` (each band's scale and offset), the patches hold physical values; with ``bands`` (1-based), they
    hold those bands only.
    """
    nodata = band_nodata(src)
    if bands is not None:
        nodata = [nodata[b - 1] for b in bands]
        scaling = _scaling_of(scaling, bands)

    def sample(n: int, size: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        patches: list[np.ndarray] = []
        for _ in range(50 * n):
            if len(patches) == n:
                break
            row, col = rng.integers(0, src.height - size + 1), rng.integers(0, src.width - size + 1)
            data = read_block(src, Window(col, row, size, size), bands)
            if valid_mask(data, nodata).all():
                patch = data.astype("float64")
                if scaling is not None:
                    patch = patch * np.asarray(scaling[0])[:, None, None] + np.asarray(scaling[1])[:, None, None]
                patches.append(patch)
        if len(patches) < n:
            raise InputError(f"Raster {src.name}: too few patches without nodata to draw empirical filters from.")
        return np.stack(patches)

    return sample


def encoder_scaling(built: BuiltEncoder) -> tuple[list[float], list[float]] | None:
    """The scale and offset of each raster band the encoder applies before its normalisation (``None``: none).

    Recorded when its normalisation comes from the raster's own statistics; pretrained weights normalise the values
    as stored, as their training data held them.
    """
    scales, offsets = built.metadata.get("scales"), built.metadata.get("offsets")
    return (list(scales), list(offsets)) if scales is not None and offsets is not None else None


def prepare_encoder(src: Any, options: EncoderOptions, device: str = "auto") -> tuple[BuiltEncoder, str, int, int,
                                                                                       str]:
    """Check the patch settings, build the encoder for the open raster ``src`` and choose the device.

    Returns:
        The built encoder, its registry name, the patch size, the stride and the device.

    """
    spec = get_encoder(options.encoder)
    patch = int(options.patch_size or spec.default_patch)
    step = int(options.stride or patch)
    if patch < spec.min_patch or step < 1 or step > patch:
        raise InputError(f"{spec.label}: the patch size must be at least {spec.min_patch} px and the stride between "
                         f"1 and the patch size (got patch {patch}, stride {step}).")
    if spec.architecture.startswith("vit") and patch % 16:
        raise InputError(f"{spec.label}: the patch size must be a multiple of 16 (got {patch}).")
    names = [d or f"band {i}" for i, d in enumerate(src.descriptions, start=1)]
    # physical values (scale and offset tags) where the normalisation comes from the raster's statistics
    scaling = None if spec.family == "torchgeo" and options.weights else band_scaling(src)
    request = EncoderRequest(spec, names, band_statistics(src, scaling=scaling), patch_sampler(src, scaling),
                             options.weights, options.weights_file, options.band_map, options.architecture,
                             options.n_features, options.seed)
    built = build_encoder(request)
    if scaling is not None:
        built.metadata |= {"scales": scaling[0], "offsets": scaling[1]}
    chosen = choose_device(device)
    logger.info("Encoding with %s (%d dimensions) on %s, patches of %d px every %d px.", spec.label, built.dim,
                chosen, patch, step)
    return built, spec.name, patch, step, chosen


def cell_grid(src: Any, step: int) -> tuple[int, int]:
    """Rows and columns of the embedding grid of ``src`` with cells of ``step`` px."""
    return math.ceil(src.height / step), math.ceil(src.width / step)


def encode_raster(src: Any, built: BuiltEncoder, encoder: str, output: Path, patch: int, step: int, batch_size: int,
                  device: str, feedback: Feedback, raster: str | list[str], names: list[str],
                  cell_window: tuple[int, int, int, int] | None = None) -> EmbeddingResult:
    """Encode the open raster ``src`` with the ready encoder ``built`` and write the embedding GeoTIFF.

    ``cell_window`` (first row, end row, first column, end column of the embedding grid) limits the output to part of
    the grid; those cells get exactly the values a whole-raster run gives them.
    """
    all_rows, all_cols = cell_grid(src, step)
    row_a, row_b, col_a, col_b = cell_window or (0, all_rows, 0, all_cols)
    rows, cols = row_b - row_a, col_b - col_a
    strip_rows = max(1, STRIP_PIXELS // max(1, cols * step * step))
    metadata = {"encoder": encoder, **built.metadata, "dim": built.dim, "patch_size": patch, "stride": step,
                "input_bands": [names[b - 1] for b in built.bands], "band_indices": built.bands,
                "mean": built.mean.tolist(), "std": built.std.tolist(), "raster": raster,
                "libraries": library_versions()}
    transform = src.transform * Affine.scale(step) * Affine.translation(col_a, row_a)
    profile = {"driver": "GTiff", "width": cols, "height": rows, "count": built.dim, "dtype": "float32",
               "nodata": float("nan"), "crs": src.crs, "transform": transform,
               "tiled": True, "blockxsize": 256, "blockysize": BLOCK_ROWS, "compress": "deflate", "predictor": 3,
               "interleave": "band", "BIGTIFF": "IF_SAFER"}
    n_batches = sum(math.ceil(cols * min(strip_rows, rows - r) / batch_size) for r in range(0, rows, strip_rows))
    counter = {"done": 0}

    def batch_done() -> None:
        counter["done"] += 1
        feedback.progress(min(1.0, counter["done"] / max(1, n_batches)),
                          f"Encoding batch {counter['done']} of about {n_batches}")

    valid_cells = 0
    with atomic_output(output) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        writer = _TileRowWriter(dst, BLOCK_ROWS)
        for r0 in range(0, rows, strip_rows):
            n_rows = min(strip_rows, rows - r0)
            out = encode_cells(src, built, patch, step, (row_a + r0, row_a + r0 + n_rows, col_a, col_b),
                               batch_size, device, feedback.check_cancel, batch_done)
            valid_cells += int((~np.isnan(out[0])).sum())
            writer.write(out)
        writer.flush()
        for band in range(1, built.dim + 1):
            dst.set_band_description(band, f"{encoder} {band - 1:03d}")
        dst.update_tags(**{METADATA_KEY: json.dumps(metadata)})
    feedback.progress(1.0, "Done")
    return EmbeddingResult(str(output), encoder, built.dim, cols, rows, device, valid_cells)


def encode_cells(src: Any, built: BuiltEncoder, patch: int, step: int, cell_window: tuple[int, int, int, int],
                 batch_size: int, device: str, check_cancel: Callable[[], None] | None = None,
                 batch_done: Callable[[], None] | None = None) -> np.ndarray:
    """The embeddings of the cells ``cell_window`` (first row, end row, first column, end column) of ``src``'s grid.

    Each cell gets the values a whole-raster :func:`encode_raster` gives it: its patch is read around it (pixels
    outside the raster or on nodata set to the band mean), and it is NaN when less than half of its patch's pixels
    inside the raster are valid. Reads the cells' patches at once: keep the window to a few million pixels.

    Returns:
        float32 array (dimensions, rows, columns).

    """
    # Lazy: the torch stack takes seconds to import.
    import torch

    row_a, row_b, col_a, col_b = cell_window
    n_rows, cols = row_b - row_a, col_b - col_a
    offset = (patch - step) // 2
    module = built.module.to(device)
    top, height = row_a * step - offset, (n_rows - 1) * step + patch
    left, width = col_a * step - offset, (cols - 1) * step + patch
    data, valid = read_normalised(src, built.bands, top, left, height, width, built.mean, built.std,
                                  encoder_scaling(built))
    inside = np.zeros((height, width), dtype=bool)  # the part of the strip within the raster
    inside[max(0, -top):src.height - top, max(0, -left):src.width - left] = True
    out = np.full((built.dim, n_rows, cols), np.nan, dtype="float32")
    with torch.inference_mode():
        patches = torch.from_numpy(data).unfold(1, patch, step).unfold(2, patch, step)  # C, rows, cols, p, p
        counts = [torch.from_numpy(m).float().unfold(0, patch, step).unfold(1, patch, step).sum(dim=(-2, -1))
                  for m in (valid, inside)]
        cells = torch.nonzero(counts[0] >= 0.5 * counts[1].clamp_min(1))
        for start in range(0, len(cells), batch_size):
            if check_cancel is not None:
                check_cancel()
            rr, cc = cells[start:start + batch_size].T
            batch = patches[:, rr, cc].permute(1, 0, 2, 3).contiguous().to(device)
            out[:, rr.numpy(), cc.numpy()] = module(batch).float().cpu().numpy().T
            if batch_done is not None:
                batch_done()
    return out


class _TileRowWriter:
    """Writes rows of a tiled GeoTIFF in whole rows of tiles only.

    GDAL compresses a tile each time part of it is written and appends it anew: strips that end inside a tile row
    would make it compress each tile several times and leave the dead copies in the file.
    """

    def __init__(self, dst: Any, tile_rows: int) -> None:
        self.dst, self.tile_rows = dst, tile_rows
        self.pending: list[np.ndarray] = []
        self.row = 0  # first output row not yet written

    def write(self, rows: np.ndarray) -> None:
        """Queue ``rows`` (bands, n, columns), the next rows of the raster; write the whole tile rows queued."""
        self.pending.append(rows)
        queued = sum(p.shape[1] for p in self.pending)
        if queued >= self.tile_rows:
            self._write(queued - queued % self.tile_rows)

    def flush(self) -> None:
        """Write what is still queued (the raster's last, partial tile row)."""
        self._write(sum(p.shape[1] for p in self.pending))

    def _write(self, n: int) -> None:
        if not n:
            return
        data = self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending, axis=1)
        self.dst.write(data[:, :n], window=Window(0, self.row, data.shape[2], n))
        self.pending = [data[:, n:]] if n < data.shape[1] else []
        self.row += n


def read_embedding_metadata(path: str | Path) -> dict[str, Any] | None:
    """The Landprobe metadata of an embedding raster, or ``None`` for another raster."""
    with open_raster(path) as src:
        text = src.tags().get(METADATA_KEY)
    return json.loads(text) if text else None
