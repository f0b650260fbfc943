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
