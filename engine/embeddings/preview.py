"""A false-colour view of an embedding raster: its first three principal components as red, green and blue.

Embeddings have tens to hundreds of bands that mean nothing one by one; projected on their three main directions
of variation and stretched, similar cells get similar colours, so the structure the encoder sees shows at a glance.
The components are fitted on at most ``max_cells`` valid cells of a decimated read; the raster is then projected
window by window (bounded memory) into a Byte GeoTIFF on the same grid, 0 being nodata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from ..core.feedback import Feedback
from ..io.rasters import atomic_output, band_nodata, iter_windows, open_raster, read_block, valid_mask


def _fit(src: Any, max_cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, the three components, and the 2nd and 98th percentiles of the projected sample."""
    scale = max(1, int(np.ceil(np.sqrt(src.width * src.height / max_cells))))
    data = read_block(src, out_shape=(src.count, max(1, src.height // scale), max(1, src.width // scale)))
    cells = data[:, valid_mask(data, band_nodata(src))].T.astype("float64")
    if len(cells) < 3:
        raise ValueError("too few valid cells for a preview")
    mean = cells.mean(axis=0)
    _, _, vt = np.linalg.svd(cells - mean, full_matrices=False)
    components = vt[:3]
    components *= np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])[:, None]
    projected = (cells - mean) @ components.T
    low, high = np.percentile(projected, [2, 98], axis=0)
    return mean, components, low, np.where(high > low, high, low + 1)


def write_embedding_preview(embedding: str | Path, output: str | Path, max_cells: int = 20_000,
                            feedback: Feedback | None = None) -> Path | None:
    """Write the three-component false-colour view of ``embedding`` at ``output``; ``None`` when it cannot."""
    feedback = feedback or Feedback()
    with open_raster(embedding) as src:
        try:
            mean, components, low, high = _fit(src, max_cells)
        except (ValueError, np.linalg.LinAlgError):
            return None
        k = len(components)
        profile = {"driver": "GTiff", "width": src.width, "height": src.height, "count": 3, "dtype": "uint8",
                   "nodata": 0, "crs": src.crs, "transform": src.transform, "tiled": True, "blockxsize": 256,
                   "blockysize": 256, "compress": "deflate", "photometric": "RGB"}
        windows = list(iter_windows(src.width, src.height, 512))
        with atomic_output(output) as tmp, rasterio.open(tmp, "w", **profile) as dst:
            for i, window in enumerate(windows):
                feedback.check_cancel()
                data = read_block(src, window)
                ok = valid_mask(data, band_nodata(src))
                rgb = np.zeros((3, *ok.shape), dtype="uint8")
                projected = (data[:, ok].T.astype("float64") - mean) @ components.T
                stretched = np.clip((projected - low) / (high - low), 0, 1) * 254 + 1
                rgb[:k, ok] = np.round(stretched.T).astype("uint8")
                dst.write(rgb, window=window)
                feedback.progress((i + 1) / len(windows), "Drawing the embedding preview")
            for band, name in enumerate(("principal component 1", "principal component 2",
                                         "principal component 3"), start=1):
                dst.set_band_description(band, name)
    return Path(output)
