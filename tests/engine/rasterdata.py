"""Small helpers that write seeded test rasters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio


def write_like(src_path: Path, dst_path: Path, data: np.ndarray, **overrides: object) -> Path:
    """Write ``data`` (bands, rows, cols) as a GeoTIFF with the georeferencing of ``src_path``."""
    with rasterio.open(src_path) as src:
        profile = src.profile | {"height": data.shape[1], "width": data.shape[2], "count": data.shape[0],
                                 "dtype": data.dtype.name, "tiled": True, "blockxsize": 256, "blockysize": 256}
    profile.update(overrides)
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(data)
    return dst_path
