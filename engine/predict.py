"""Whole-raster prediction, window by window, with bounded memory, into a GeoTIFF written atomically."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelFileError
from .feedback import Feedback
from .model_file import load_model
from .rasters import atomic_output, iter_windows, open_raster, valid_mask

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


@dataclass
class ClassifyResult:
    """Where the map went and how many pixels each class got."""

    output: str
    width: int
    height: int
    class_pixels: dict[str, int]
    nodata_pixels: int


def output_encoding(codes: list[int]) -> tuple[str, int]:
    """The smallest data type for class ``codes`` and a nodata value that is not one of them."""
    low, high = min(codes), max(codes)
    if low >= 1 and high <= 255:
        return "uint8", 0
    if low >= 0 and high <= 254:
        return "uint8", 255
    if low >= 1 and high <= 65535:
        return "uint16", 0
    return "int32", -(2**31)


def _hex_to_rgba(color: str) -> tuple[int, int, int, int]:
    color = color.lstrip("#")
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16), 255


def check_compatible(manifest: dict[str, Any], src: Any, raster: str) -> None:
    """Refuse a raster whose band count differs from the model's, saying what differs."""
    expected = manifest["input"]["band_count"]
    if src.count != expected:
        names = ", ".join(manifest["input"].get("band_names", []))
        raise ModelFileError(
            f"The model was trained on {expected} bands ({names}) but raster {raster} has {src.count}. "
            "Apply it to a raster with the same bands in the same order."
        )


def classify_raster(raster: str, model: str, output: str, feedback: Feedback | None = None,
                    block: int = 512) -> ClassifyResult:
    """Apply a model file to every valid pixel of ``raster`` and write class codes to ``output`` (GeoTIFF).

    The output has the input's grid and CRS; pixels that are nodata in any input band are nodata in the output.
    """
    import numpy as np
    import rasterio

    feedback = feedback or Feedback()
    loaded = load_model(model)
    manifest = loaded.manifest
    classes = manifest["classes"]
    codes = np.array([c["code"] for c in classes])
    dtype, nodata = output_encoding(codes.tolist())
    counts = np.zeros(len(classes), dtype="int64")
    nodata_pixels = 0
    with open_raster(raster) as src:
        check_compatible(manifest, src, raster)
        profile = {"driver": "GTiff", "width": src.width, "height": src.height, "count": 1, "dtype": dtype,
                   "nodata": nodata, "crs": src.crs, "transform": src.transform, "tiled": True,
                   "blockxsize": 256, "blockysize": 256, "compress": "deflate", "BIGTIFF": "IF_SAFER"}
        windows = list(iter_windows(src.width, src.height, block))
        with atomic_output(output) as tmp, rasterio.open(tmp, "w", **profile) as dst:
            if dtype != "int32":  # the colour table must be set before any pixel is written
                dst.write_colormap(1, {c["code"]: _hex_to_rgba(c["color"]) for c in classes})
            for i, win in enumerate(windows):
                feedback.check_cancel()
                data = src.read(window=win)
                valid = valid_mask(data, src.nodata)
                out = np.full(valid.shape, nodata, dtype=dtype)
                if valid.any():
                    x = data[:, valid].T.astype("float32", copy=False)
                    index = loaded.probe.predict_proba(x).argmax(axis=1)
                    out[valid] = codes[index]
                    counts += np.bincount(index, minlength=len(classes))
                nodata_pixels += int((~valid).sum())
                dst.write(out, 1, window=win)
                feedback.progress((i + 1) / len(windows), f"Classifying window {i + 1} of {len(windows)}")
            dst.update_tags(1, **{f"CLASS_{c['code']}": c["name"] for c in classes})
            dst.set_band_description(1, f"class ({manifest.get('field', 'class')})")
    result = ClassifyResult(output=str(Path(output)), width=profile["width"], height=profile["height"],
                            class_pixels={c["name"]: int(n) for c, n in zip(classes, counts, strict=True)},
                            nodata_pixels=nodata_pixels)
    logger.info("Wrote %s: %s.", output, ", ".join(f"{k} {v} px" for k, v in result.class_pixels.items()))
    return result
