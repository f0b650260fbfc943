"""Feature recipes: what a probe sees for each pixel. Recorded in the model so that prediction computes the same.

- ``raw_bands``: the raster's band values; as physical values (stored value x scale + offset) when the recipe has
  ``scales`` and ``offsets`` (one per input band, recorded at training from the bands' tags; older models have none
  and see the values as stored).
- ``raw_bands+indices``: the band values followed by normalised-difference spectral indices, for every index
  whose bands have a known role (blue, green, red, nir, swir1, swir2).
- ``embeddings``: the bands of an embedding raster, de-quantised when stored as integers (see
  :mod:`engine.embeddings.inputs`); the recipe records which embeddings they are.
- ``encoder``: embeddings that the engine computes from the raster's bands with an encoder stored in the model.

Band roles come from an explicit mapping (``"red=3,nir=4"``) or are recognised from band descriptions (``"Red"``,
``"NIR"``, ``"SWIR 1"``, Sentinel-2 ``"B04"``/``"B8"``/``"B11"``...). A plain ``"band 4"`` is not recognised: its
role depends on the sensor (red on Landsat 8, near infrared on Landsat 5 and 7), so give the mapping.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..core.errors import InputError
from ..core.numbers import band_assignments
from .inputs import dequantize

RECIPES = ("raw_bands", "raw_bands+indices", "embeddings", "encoder")
EMBEDDING_RECIPES = ("embeddings", "encoder")
ROLES = ("blue", "green", "red", "nir", "swir1", "swir2")

#: Normalised differences (a - b) / (a + b), by name: (role a, role b, what it shows).
INDICES: dict[str, tuple[str, str, str]] = {
    "NDVI": ("nir", "red", "vegetation (Rouse et al. 1974)"),
    "NDWI": ("green", "nir", "open water (McFeeters 1996)"),
    "MNDWI": ("green", "swir1", "open water, less confused with built-up land (Xu 2006)"),
    "NDBI": ("swir1", "nir", "built-up land (Zha et al. 2003)"),
    "NBR": ("nir", "swir2", "burnt areas and vegetation moisture (Key and Benson 2006)"),
    "NDMI": ("nir", "swir1", "vegetation water content (Gao 1996)"),
}

_NAME_PATTERNS = [  # (role, regular expression on a lower-case band description)
    ("blue", r"^(blue|b0?2)\b|\bblue\b"),
    ("green", r"^(green|b0?3)\b|\bgreen\b"),
    ("red", r"^(?!.*edge)(b0?4\b|.*\bred\b)"),
    ("nir", r"^(nir|b0?8)\b|\bnir\b|near[ -]?infra-?red"),
    ("swir1", r"^(b11)\b|\bswir[ _-]?(1|16)\b"),
    ("swir2", r"^(b12)\b|\bswir[ _-]?(2|22)\b"),
]


def parse_band_roles(text: str | None, band_count: int) -> dict[str, int]:
    """Parse ``"red=3, nir=4"`` into ``{"red": 3, "nir": 4}`` (1-based bands), checking roles and band numbers."""
    roles = {k.lower(): v for k, v in band_assignments(text, band_count, "Band roles", "red=3, nir=4").items()}
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise InputError(f"Band roles: unknown role {', '.join(unknown)}. Write role=band pairs such as "
                         f"'red=3, nir=4'; roles are {', '.join(ROLES)}.")
    return roles


def detect_band_roles(band_names: list[str]) -> dict[str, int]:
    """Roles recognised from band descriptions; a role matched by two bands is left out (ambiguous)."""
    found: dict[str, list[int]] = {}
    for band, name in enumerate(band_names, start=1):
        text = (name or "").strip().lower()
        for role, pattern in _NAME_PATTERNS:
            if re.search(pattern, text):
                found.setdefault(role, []).append(band)
                break
    return {role: bands[0] for role, bands in found.items() if len(bands) == 1}


def make_recipe(band_names: list[str], indices: bool = False, band_roles: str | None = None) -> dict[str, Any]:
    """The feature recipe for a raster: raw bands, plus the spectral indices its band roles allow when asked for.

    Raises:
        InputError: when indices are asked for but no index has both its bands' roles known; the message lists
            the roles found and how to give them.

    """
    recipe: dict[str, Any] = {"recipe": "raw_bands", "bands": list(range(1, len(band_names) + 1))}
    if not indices:
        return recipe
    roles = detect_band_roles(band_names) | parse_band_roles(band_roles, len(band_names))
    usable = {name: [roles[a], roles[b]] for name, (a, b, _) in INDICES.items() if a in roles and b in roles}
    if not usable:
        known = ", ".join(f"{r}={b}" for r, b in sorted(roles.items(), key=lambda kv: kv[1])) or "none"
        raise InputError(
            f"Spectral indices need the roles of at least two bands (for NDVI: red and nir); recognised: {known}. "
            "Give them as band roles, for example 'blue=1, green=2, red=3, nir=4, swir1=5, swir2=6' for Landsat 7."
        )
    return recipe | {"recipe": "raw_bands+indices", "roles": roles, "indices": usable}


def feature_names(recipe: dict[str, Any], band_names: list[str]) -> list[str]:
    """One name per feature column, in order."""
    return [band_names[b - 1] for b in recipe["bands"]] + list(recipe.get("indices", {}))


def compute_features(x: np.ndarray, recipe: dict[str, Any]) -> np.ndarray:
    """Features of pixels ``x`` (n, bands) following ``recipe``: float32, shape (n, features)."""
    if recipe["recipe"] in EMBEDDING_RECIPES:
        embedding = recipe.get("embedding", {})
        return dequantize(x, embedding.get("dequantize"), embedding.get("scales"), embedding.get("offsets"))
    raw = np.asarray(x, dtype="float32")[:, [b - 1 for b in recipe["bands"]]]
    if "scales" in recipe or "offsets" in recipe:  # physical values: indices need reflectances, not numbers stored
        n = x.shape[1]
        scales = np.asarray(recipe.get("scales") or [1.0] * n, dtype="float64")[[b - 1 for b in recipe["bands"]]]
        offsets = np.asarray(recipe.get("offsets") or [0.0] * n, dtype="float64")[[b - 1 for b in recipe["bands"]]]
        raw = (raw * scales.astype("float32") + offsets.astype("float32")).astype("float32")
    pairs = list(recipe.get("indices", {}).values())
    if not pairs:
        return raw
    a = raw[:, [p[0] - 1 for p in pairs]]
    b = raw[:, [p[1] - 1 for p in pairs]]
    total = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        index = np.where(total != 0, (a - b) / total, 0).astype("float32")
    return np.concatenate([raw, np.clip(index, -1, 1)], axis=1)
