"""A table of faults a user can cause, each run through the worker as the plugin runs it.

For every case: the job ends with an ``error`` event of the expected kind (never ``internal``, the kind reserved for
bugs), one message that names the file, layer or field at fault, and no output or temporary file left behind.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import rasterio
from test_worker import run_worker

from engine.errors import InputError, MissingDependencyError, OutputError, user_fault
from engine.rasters import TMP_MARKER

Case = Callable[[Path, Path, Path, Path], tuple[str, dict[str, Any], str]]


def _truncated_raster(tmp: Path, raster: Path, labels: Path, model: Path) -> tuple[str, dict[str, Any], str]:
    copy = tmp / "truncated.tif"
    with rasterio.open(raster) as src:
        profile = src.profile | {"tiled": False, "compress": "none"}
        with rasterio.open(copy, "w", **profile) as dst:
            dst.write(src.read())
    size = copy.stat().st_size
    with copy.open("r+b") as stream:
        stream.truncate(size // 2)
    return "classify_raster", {"raster": str(copy), "model": str(model)}, "truncated.tif"


def _vrt_without_its_source(tmp: Path, raster: Path, labels: Path, model: Path) -> tuple[str, dict[str, Any], str]:
    source = tmp / "source.tif"
    shutil.copy(raster, source)
    vrt = tmp / "stack.vrt"
    subprocess.run(["gdalbuildvrt", "-q", str(vrt), str(source)], check=True)
    source.unlink()
    return "classify_raster", {"raster": str(vrt), "model": str(model)}, "source.tif"


def _table_without_geometry(tmp: Path, raster: Path, labels: Path, model: Path) -> tuple[str, dict[str, Any], str]:
    table = tmp / "labels.csv"
    table.write_text("id,class\n1,forest\n2,water\n")
    return ("train_classifier", {"raster": str(raster), "labels": str(table), "field": "class", "method": "svm"},
            "labels.csv")


def _lines(tmp: Path, raster: Path, labels: Path, model: Path) -> tuple[str, dict[str, Any], str]:
    gdf = gpd.read_file(labels)
    path = tmp / "roads.gpkg"
    gdf.set_geometry(gdf.geometry.boundary).to_file(path)
    return ("train_classifier", {"raster": str(raster), "labels": str(path), "field": "class", "method": "svm"},
            "roads.gpkg")


def _manifest_with_text_band_count(tmp: Path, raster: Path, labels: Path, model: Path
                                   ) -> tuple[str, dict[str, Any], str]:
    path = tmp / "damaged.lpmodel"
    with zipfile.ZipFile(model) as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "manifest.json":
                manifest = json.loads(data)
                manifest["input"]["band_count"] = "8"
                data = json.dumps(manifest).encode()
            dst.writestr(name, data)
    return "classify_raster", {"raster": str(raster), "model": str(path)}, "damaged.lpmodel"


def _as(operation: str, make: Case, key: str = "raster") -> Case:
    """``make``'s faulty raster given to ``operation`` (as its parameter ``key``)."""

    def case(tmp: Path, raster: Path, labels: Path, model: Path) -> tuple[str, dict[str, Any], str]:
        _, params, named = make(tmp, raster, labels, model)
        extra = {"train_classifier": {"labels": str(labels), "field": "class", "method": "svm"},
                 "assess_accuracy": {"reference": str(labels), "field": "class"},
                 "extract_embeddings": {}, "label_polygons": {},
                 "finetune": {"labels": str(labels), "field": "class", "epochs": 1}}[operation]
        return operation, {key: params["raster"], **extra}, named

    return case


def _bomb(tmp: Path, raster: Path, labels: Path, model: Path) -> tuple[str, dict[str, Any], str]:
    path = tmp / "bomb.lpmodel"
    with zipfile.ZipFile(model) as src, zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            if name != "arrays.npz":
                dst.writestr(name, src.read(name))
        dst.writestr("arrays.npz", bytes(2**27))  # 128 MiB of zeros in about 130 kB
    return "classify_raster", {"raster": str(raster), "model": str(path)}, "bomb.lpmodel"


def _labels_in_a_wrong_crs(tmp: Path, raster: Path, labels: Path, model: Path) -> tuple[str, dict[str, Any], str]:
    path = tmp / "degrees.gpkg"
    gpd.read_file(labels).set_crs("EPSG:4326", allow_override=True).to_file(path)  # metres declared as degrees
    return ("train_classifier", {"raster": str(raster), "labels": str(path), "field": "class", "method": "svm"},
            "degrees.gpkg")


CASES: dict[str, tuple[Case, str]] = {
    "truncated GeoTIFF": (_truncated_raster, "input"),
    "truncated GeoTIFF, train": (_as("train_classifier", _truncated_raster), "input"),
    "truncated map, assess accuracy": (_as("assess_accuracy", _truncated_raster, "classified"), "input"),
    "truncated GeoTIFF, extract embeddings": (_as("extract_embeddings", _truncated_raster), "input"),
    "truncated ground truth, class raster to polygons": (_as("label_polygons", _truncated_raster), "input"),
    "truncated GeoTIFF, fine-tune": (_as("finetune", _truncated_raster), "input"),
    "zip bomb as the model": (_bomb, "model"),
    "labels whose CRS does not convert": (_labels_in_a_wrong_crs, "input"),
    "VRT whose source file is missing": (_vrt_without_its_source, "input"),
    "CSV table without geometry as labels": (_table_without_geometry, "input"),
    "line layer as labels": (_lines, "input"),
    "model manifest with a text band count": (_manifest_with_text_band_count, "model"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_user_fault_is_one_sentence_and_leaves_nothing(case: str, tmp_path: Path, sample_raster: Path,
                                                         sample_labels: Path, sample_model: Path) -> None:
    make, kind = CASES[case]
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    operation, params, named = make(inputs, sample_raster, sample_labels, sample_model)
    target, name = {"train_classifier": ("output_model", "m.lpmodel"), "finetune": ("output_model", "d.lpmodel"),
                    "assess_accuracy": ("output_report", "r.json"),
                    "label_polygons": ("output", "polygons.gpkg")}.get(operation, ("output", "map.tif"))
    params[target] = str(outputs / name)
    code, events = run_worker({"operation": operation, "params": params})
    error = events[-1]
    assert code == 1 and error["event"] == "error", events[-3:]
    assert error["kind"] == kind, error
    assert named in error["message"] and "Unexpected" not in error["message"]
    assert not list(outputs.iterdir())  # neither the output nor a temporary file
    assert not [p for p in inputs.iterdir() if TMP_MARKER in p.name]


def test_an_engine_python_without_the_engines_packages_says_what_to_do(tmp_path: Path, sample_raster: Path,
                                                                     sample_model: Path) -> None:
    system = Path("/usr/bin/python3")
    probe = subprocess.run([str(system), "-c", "import rasterio"], capture_output=True) if system.exists() else None
    if probe is None or probe.returncode == 0:
        pytest.skip("needs a Python without rasterio")
    job = json.dumps({"protocol": 1, "operation": "classify_raster",
                      "params": {"raster": str(sample_raster), "model": str(sample_model),
                                 "output": str(tmp_path / "o.tif")}})
    out = subprocess.run([str(system), "-m", "engine", "worker"], input=job + "\n", capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=60).stdout
    error = json.loads(out.splitlines()[-1])
    assert error["kind"] == "dependency" and "lacks the package 'rasterio'" in error["message"]
    assert "Install engine" in error["message"] and str(system) in error["message"]


def test_library_exceptions_behind_user_faults_are_translated() -> None:
    full = user_fault(OSError(errno.ENOSPC, "No space left on device", "/data/map.tif"))
    assert isinstance(full, OutputError) and "disk is full (/data/map.tif)" in str(full)
    denied = user_fault(PermissionError(errno.EACCES, "Permission denied", "/data/map.tif"))
    assert isinstance(denied, OutputError) and "/data/map.tif" in str(denied)
    from rasterio.errors import RasterioIOError

    assert isinstance(user_fault(RasterioIOError("Write failed. See previous exception")), OutputError)
    assert isinstance(user_fault(RasterioIOError("Read failed. See previous exception")), InputError)
    missing = ModuleNotFoundError("No module named 'xgboost'", name="xgboost")
    assert isinstance(user_fault(missing), MissingDependencyError)
    assert user_fault(KeyError("a bug")) is None  # genuine bugs stay bugs
    assert user_fault(ModuleNotFoundError("No module named 'mine'", name="mine")) is None
