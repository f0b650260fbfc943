"""Fixtures for the plugin tests: the repository installed as the ``landprobe`` plugin, data, engine, qgis_process.

pytest-qgis starts QGIS before this file is read, so headless runs need ``qgis_gui_enabled = false`` in the root
``pytest.ini`` (or ``--qgis_disable_gui``). The engine interpreter comes from ``LANDPROBE_PYTHON`` (or the record
written by ``make setup``); the tests that need it are skipped, with the reason, when there is none.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIRS = [REPO_ROOT / "resources" / "sample", Path("/work/shared/data/landsat7")]
SAMPLE_RASTER_NAME = "LE70220491999322EDC01_stack.gtif"
SAMPLE_LABELS_NAME = "training_data.shp"
MODEL3 = REPO_ROOT / "resources" / "models" / "raw_band_probe.model3"

# The repository is the plugin folder: make it importable as ``landprobe``, the way QGIS installs it.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Models left as temporary outputs go to the models folder: a temporary one, not the user's ~/Landprobe/models.
os.environ.setdefault("LANDPROBE_MODELS_FOLDER", tempfile.mkdtemp(prefix="landprobe-models-"))
PLUGINS_DIR = Path(tempfile.mkdtemp(prefix="landprobe-plugins-"))
(PLUGINS_DIR / "landprobe").symlink_to(REPO_ROOT, target_is_directory=True)
sys.path.insert(0, str(PLUGINS_DIR))
atexit.register(shutil.rmtree, PLUGINS_DIR, True)


def _find_sample(name: str) -> Path | None:
    for folder in SAMPLE_DIRS:
        if (folder / name).is_file():
            return folder / name
    return None


@pytest.fixture(scope="session")
def landprobe_plugin(qgis_processing: None) -> Iterator[Any]:
    """The plugin object, created through ``classFactory`` with its provider registered."""
    import landprobe

    plugin = landprobe.classFactory(None)
    plugin.initProcessing()
    yield plugin
    plugin.unload()


@pytest.fixture(scope="session")
def engine_python() -> str:
    """The engine interpreter; skips the test when none is configured."""
    from landprobe.plugin.engine_process import EngineNotFoundError, find_engine_python

    try:
        return find_engine_python(None)
    except EngineNotFoundError as exc:
        pytest.skip(f"no Landprobe engine environment (set LANDPROBE_PYTHON or run make setup): {exc}")


@pytest.fixture(scope="session")
def sample_raster() -> Path:
    """The bundled Landsat 7 sample scene (250 x 250, 6 bands)."""
    path = _find_sample(SAMPLE_RASTER_NAME)
    if path is None:
        pytest.skip(f"sample raster {SAMPLE_RASTER_NAME} not found in {', '.join(map(str, SAMPLE_DIRS))}")
    return path


@pytest.fixture(scope="session")
def sample_labels(sample_raster: Path) -> Path:
    """The sample's training polygons (text field ``class``, 5 classes)."""
    path = sample_raster.parent / SAMPLE_LABELS_NAME
    if not path.is_file():
        pytest.skip(f"sample labels {path} not found")
    return path


@pytest.fixture(scope="session")
def big_raster(sample_raster: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6000 x 6000 copy of the sample (nearest-neighbour upsampled), long enough to cancel mid-way."""
    from osgeo import gdal

    gdal.UseExceptions()
    path = tmp_path_factory.mktemp("big") / "big.tif"
    gdal.Translate(
        str(path),
        str(sample_raster),
        width=6000,
        height=6000,
        resampleAlg="near",
        creationOptions=["TILED=YES", "COMPRESS=LZW"],
    )
    return path


@pytest.fixture(scope="session")
def qgis_process_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for ``qgis_process.bin`` subprocesses: temporary profile and home, the plugin enabled."""
    root = tmp_path_factory.mktemp("qgis_process")
    config = root / "profile"
    ini = config / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[PythonPlugins]\nlandprobe=true\n", encoding="utf-8")
    home = root / "home"
    home.mkdir()
    env = dict(os.environ)
    env.pop("QGIS_OPTIONS_PATH", None)
    env.update(
        {
            "QT_QPA_PLATFORM": "offscreen",
            "QGIS_PLUGINPATH": str(PLUGINS_DIR),
            "QGIS_CUSTOM_CONFIG_PATH": str(config),
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(root),
        }
    )
    # Keep the engine findable although HOME moved: the set-up's record lives under the real home.
    if "LANDPROBE_PYTHON" not in env:
        from landprobe.plugin.engine_process import recorded_engine_python

        recorded = recorded_engine_python()
        if recorded:
            env["LANDPROBE_PYTHON"] = recorded
    return env


@pytest.fixture(scope="session")
def qgis_process_bin() -> str:
    """The ``qgis_process`` binary (the 3.22 ``qgis_process`` wrapper passes an option the binary rejects)."""
    for name in ("qgis_process.bin", "qgis_process"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("qgis_process is not installed")


def model_codes(model: Path) -> set[int]:
    """The class codes listed in a model file's manifest."""
    with zipfile.ZipFile(model) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    return {int(item["code"]) for item in manifest["classes"]}


def assert_classified(output: Path, raster: Path, model: Path) -> None:
    """``output`` is on ``raster``'s grid, has nodata, and only holds the model's class codes."""
    from osgeo import gdal, osr

    gdal.UseExceptions()
    source = gdal.Open(str(raster))
    result = gdal.Open(str(output))
    assert (result.RasterXSize, result.RasterYSize) == (source.RasterXSize, source.RasterYSize)
    assert result.RasterCount == 1
    assert result.GetGeoTransform() == pytest.approx(source.GetGeoTransform())
    assert osr.SpatialReference(result.GetProjection()).IsSame(osr.SpatialReference(source.GetProjection()))
    band = result.GetRasterBand(1)
    nodata = band.GetNoDataValue()
    assert nodata is not None
    values = band.ReadAsArray()
    present = {int(v) for v in set(values.ravel().tolist())} - {int(nodata)}
    codes = model_codes(model)
    assert present and present <= codes
    assert len(present) >= 3


@pytest.fixture(scope="session")
def check_classified() -> Callable[[Path, Path, Path], None]:
    """:func:`assert_classified`, for test modules (fixtures work with every pytest import mode)."""
    return assert_classified


@pytest.fixture(scope="session")
def model3() -> Path:
    """The shipped graphical model chaining trainclassifier and classifyraster."""
    return MODEL3
