"""Fixtures for the engine tests: the bundled sample scene and small seeded rasters made on the fly."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterdata import write_like

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "resources" / "sample"


@pytest.fixture(scope="session")
def sample_raster() -> Path:
    return SAMPLE / "LE70220491999322EDC01_stack.gtif"


@pytest.fixture(scope="session")
def sample_labels() -> Path:
    return SAMPLE / "training_data.shp"


@pytest.fixture(scope="session")
def sample_model(tmp_path_factory: pytest.TempPathFactory, sample_raster: Path, sample_labels: Path) -> Path:
    """A model of the default method trained once on the sample for the tests that only apply one."""
    from engine.jobs.train_classifier import train_classifier

    out = tmp_path_factory.mktemp("model") / "sample.lpmodel"
    train_classifier(str(sample_raster), str(sample_labels), "class", str(out))
    return out


@pytest.fixture(scope="session")
def large_raster(tmp_path_factory: pytest.TempPathFactory, sample_raster: Path) -> Path:
    """The sample tiled 12 x 12 (3000 x 3000 px): long enough to cancel in the middle."""
    with rasterio.open(sample_raster) as src:
        data = src.read()
    big = np.tile(data, (1, 12, 12))
    return write_like(sample_raster, tmp_path_factory.mktemp("large") / "large.tif", big)


@pytest.fixture()
def sample_copy(tmp_path: Path, sample_raster: Path) -> Path:
    """A writable copy of the sample raster."""
    return Path(shutil.copy(sample_raster, tmp_path / sample_raster.name))
