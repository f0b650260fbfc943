"""Small helpers shared by every layer: standardisation and ``name=band`` lists."""

from __future__ import annotations

import numpy as np

from .errors import InputError


def mean_and_scale(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation along ``axis`` for standardising; a constant feature gets a scale of 1."""
    std = values.std(axis=axis)
    return values.mean(axis=axis), np.where(std > 0, std, 1).astype(std.dtype)


def band_assignments(text: str | None, band_count: int, what: str, example: str) -> dict[str, int]:
    """Parse ``"name=band, name=band"`` (commas or semicolons) into ``{name: band}``, bands checked 1..count."""
    pairs: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in (text or "").replace(";", ",").split(","))):
        name, sep, band = (s.strip() for s in item.partition("="))
        if not sep or not name or not band.isdigit():
            raise InputError(f"{what}: cannot read {item!r}. Write name=band pairs such as '{example}'.")
        if not 1 <= int(band) <= band_count:
            raise InputError(f"{what}: {name}={band}, but the raster has bands 1 to {band_count}.")
        pairs[name] = int(band)
    return pairs


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values``: the cut of their histogram that maximises the variance between the two sides.

    Hand-written (a dozen lines of numpy) rather than taken from scikit-image, which the engine does not otherwise
    need. The histogram spans the values up to their 99.9th percentile, so that a few extreme ones do not squeeze
    the rest into a handful of bins.
    """
    values = np.asarray(values, dtype="float64")
    values = values[np.isfinite(values)]
    if not len(values):
        raise ValueError("no finite value to threshold")
    top = float(np.percentile(values, 99.9))
    low = float(values.min())
    if top <= low:
        return low
    counts, edges = np.histogram(np.clip(values, low, top), bins=bins, range=(low, top))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)  # pixels at or below each bin
    total = weight[-1]
    mean_below = np.cumsum(counts * centres) / np.maximum(weight, 1)
    mean_above = (np.sum(counts * centres) - np.cumsum(counts * centres)) / np.maximum(total - weight, 1)
    between = weight * (total - weight) * (mean_below - mean_above) ** 2
    return float(edges[1:][int(np.argmax(between[:-1]))])
