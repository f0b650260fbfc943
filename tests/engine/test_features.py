"""Feature recipes: band roles, spectral indices, and a model that carries its recipe to prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from engine.core.errors import InputError
from engine.embeddings.features import compute_features, detect_band_roles, make_recipe, parse_band_roles
from engine.jobs.classify_raster import classify_raster
from engine.jobs.train_classifier import train_classifier
from engine.probes.model_file import load_model

LANDSAT7_ROLES = "blue=1, green=2, red=3, nir=4, swir1=5, swir2=6"


@pytest.mark.parametrize(("names", "expected"), [
    (["Blue", "Green", "Red", "NIR", "SWIR 1", "SWIR 2"], dict(blue=1, green=2, red=3, nir=4, swir1=5, swir2=6)),
    (["B02", "B03", "B04", "B05", "B08", "B11", "B12"], dict(blue=1, green=2, red=3, nir=5, swir1=6, swir2=7)),
    (["red edge 1", "Near infrared", "red"], dict(nir=2, red=3)),
    (["band 3 reflectance", "band 4 reflectance"], {}),  # the role of 'band 4' depends on the sensor
    (["red", "Red"], {}),  # ambiguous: left out
])
def test_roles_recognised_from_band_names(names: list[str], expected: dict[str, int]) -> None:
    assert detect_band_roles(names) == expected


def test_band_roles_text_is_checked() -> None:
    assert parse_band_roles("red=3; NIR = 4", 8) == {"red": 3, "nir": 4}
    with pytest.raises(InputError, match="bands 1 to 8"):
        parse_band_roles("red=9", 8)
    with pytest.raises(InputError, match="role=band pairs"):
        parse_band_roles("infrared=4", 8)


def test_indices_without_roles_say_how_to_give_them() -> None:
    with pytest.raises(InputError, match="band roles"):
        make_recipe(["band 1", "band 2", "band 3"], indices=True)
    assert make_recipe(["band 1", "band 2"])["recipe"] == "raw_bands"


def test_indices_are_normalised_differences() -> None:
    recipe = make_recipe(["b1", "b2", "b3", "b4"], indices=True, band_roles="green=2, red=3, nir=4")
    assert set(recipe["indices"]) == {"NDVI", "NDWI"}
    x = np.array([[100, 300, 200, 600], [0, 0, 0, 0]], dtype="int16")
    features = compute_features(x, recipe)
    assert features.shape == (2, 6)
    assert np.allclose(features[0, 4:], [(600 - 200) / 800, (300 - 600) / 900])
    assert np.all(features[1, 4:] == 0)  # 0 / 0 gives 0, not NaN


def test_model_with_indices_classifies_the_sample(tmp_path: Path, sample_raster: Path, sample_labels: Path) -> None:
    model = tmp_path / "indices.lpmodel"
    result = train_classifier(str(sample_raster), str(sample_labels), "class", str(model), indices=True,
                              band_roles=LANDSAT7_ROLES)
    features = load_model(model).manifest["features"]
    assert features["recipe"] == "raw_bands+indices"
    assert features["names"][8:] == ["NDVI", "NDWI", "MNDWI", "NDBI", "NBR", "NDMI"]
    assert features["indices"]["NDVI"] == [4, 3]
    assert result.overall_accuracy > 0.6
    out = tmp_path / "classes.tif"
    classify_raster(str(sample_raster), str(model), str(out))
    with rasterio.open(out) as dst:
        classes = dst.read(1)
    assert set(np.unique(classes)) <= {1, 2, 3, 4, 5} and len(np.unique(classes)) >= 4
