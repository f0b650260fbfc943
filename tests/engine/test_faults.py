"""A table of faults a user can cause, each run through the worker as the plugin runs it.

For every case: the job ends with an ``error`` event of the expected kind (never ``internal``, the kind reserved for
bugs), one message that names the file, layer or field at fault, and no output or temporary file left behind.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from test_worker import run_worker

from engine.core.errors import InputError, MissingDependencyError, OutputError, user_fault
from engine.io.rasters import TMP_MARKER

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


def _truncated_class_map(tmp: Path, raster: Path, labels: Path, model: Path) -> tuple[str, dict[str, Any], str]:
    copy = tmp / "truncated_map.tif"
    with rasterio.open(raster) as src:
        codes = (src.read(1) % 5 + 1).astype("uint8")
        profile = src.profile | {"count": 1, "dtype": "uint8", "nodata": 0, "tiled": False, "compress": "none"}
    with rasterio.open(copy, "w", **profile) as dst:
        dst.write(codes, 1)
    with copy.open("r+b") as stream:
        stream.truncate(copy.stat().st_size // 2)
    return ("assess_accuracy", {"classified": str(copy), "reference": str(labels), "field": "class"},
            "truncated_map.tif")


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
                 "finetune": {"labels": str(labels), "field": "class", "epochs": 1},
                 "map_region": {"model": str(model), "workers": 1}}[operation]
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


def _probe_model_to_onnx(tmp: Path, raster: Path, labels: Path, model: Path) -> tuple[str, dict[str, Any], str]:
    return "export_onnx", {"model": str(model)}, model.name


def _truncated_model_to_onnx(tmp: Path, raster: Path, labels: Path, model: Path) -> tuple[str, dict[str, Any], str]:
    path = tmp / "cut.lpmodel"
    path.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    return "export_onnx", {"model": str(path)}, "cut.lpmodel"


def _mat(content: Any, named: str = "cube.mat") -> Case:
    """A MATLAB file holding ``content`` as its variable ``cube`` (``None``: bytes that are no MATLAB file)."""

    def case(tmp: Path, raster: Path, labels: Path, model: Path) -> tuple[str, dict[str, Any], str]:
        import os

        import scipy.io

        path = tmp / named
        if content is None:
            path.write_bytes(os.urandom(4096))
        else:
            scipy.io.savemat(path, {"cube": content})
        return "import_mat", {"mat": str(path)}, named

    return case


def _missing_tile(tmp: Path, raster: Path, labels: Path, model: Path) -> tuple[str, dict[str, Any], str]:
    missing = tmp / "tile_2.tif"
    return "map_region", {"raster": [str(raster), str(missing)], "model": str(model), "workers": 1}, str(missing)


CASES: dict[str, tuple[Case, str]] = {
    "truncated GeoTIFF": (_truncated_raster, "input"),
    "truncated GeoTIFF, train": (_as("train_classifier", _truncated_raster), "input"),
    "truncated map, assess accuracy": (_truncated_class_map, "input"),
    "truncated GeoTIFF, extract embeddings": (_as("extract_embeddings", _truncated_raster), "input"),
    "truncated ground truth, class raster to polygons": (_as("label_polygons", _truncated_raster), "input"),
    "truncated GeoTIFF, fine-tune": (_as("finetune", _truncated_raster), "input"),
    "truncated GeoTIFF, map region": (_as("map_region", _truncated_raster), "input"),
    "missing tile, map region": (_missing_tile, "input"),
    "zip bomb as the model": (_bomb, "model"),
    "labels whose CRS does not convert": (_labels_in_a_wrong_crs, "input"),
    "VRT whose source file is missing": (_vrt_without_its_source, "input"),
    "CSV table without geometry as labels": (_table_without_geometry, "input"),
    "line layer as labels": (_lines, "input"),
    "model manifest with a text band count": (_manifest_with_text_band_count, "model"),
    "probe model to ONNX": (_probe_model_to_onnx, "input"),
    "truncated model to ONNX": (_truncated_model_to_onnx, "model"),
    "MATLAB file that is not one": (_mat(None), "input"),
    "MATLAB cell array": (_mat(np.array([[np.zeros(3), "a"]], dtype=object)), "input"),
    "MATLAB 4-D array": (_mat(np.zeros((2, 2, 2, 2))), "input"),
    "MATLAB empty array": (_mat(np.zeros((0, 3, 2))), "input"),
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
                    "assess_accuracy": ("output_report", "r.json"), "export_onnx": ("output", "m.onnx"),
                    "label_polygons": ("output", "polygons.gpkg"),
                    "map_region": ("output_folder", "region")}.get(operation, ("output", "map.tif"))
    params[target] = str(outputs / name)
    code, events = run_worker({"operation": operation, "params": params})
    error = events[-1]
    assert code == 1 and error["event"] == "error", events[-3:]
    assert error["kind"] == kind, error
    print(f"\nFAULT | {case} | {error['kind']} | {error['message']}")  # the table, with pytest -s
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


def _run_on_a_small_disk(job: dict[str, Any], folder: Path, mount: str) -> tuple[int, list[dict[str, Any]], str]:
    """Run ``job`` in the worker with ``folder`` a tmpfs mounted with ``mount`` in a private mount namespace.

    Returns the exit code, the events and what the folder held after the job (listed inside the namespace).
    """
    script = ('d=$0; o=$1; shift; mount -t tmpfs -o "$o" landprobe-test "$d" || exit 99; "$@"; rc=$?; '
              'echo "LEFT:$(ls -A "$d" | tr "\\n" " ")" >&2; exit $rc')
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, str(folder), mount, sys.executable, "-m", "engine",
                           "worker"], input=json.dumps({"protocol": 1, **job}) + "\n", capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[2], timeout=300)
    if proc.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()[-200:]}")
    left = next(line for line in proc.stderr.splitlines() if line.startswith("LEFT:"))
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()], left.removeprefix("LEFT:").strip()


@pytest.mark.skipif(shutil.which("unshare") is None or not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root and unshare to mount a small or read-only disk")
@pytest.mark.parametrize(("operation", "mount", "expected"), [
    ("classify_raster", "size=16k", "is full"),
    ("classify_raster", "ro,size=1m", "not writable"),
    ("train_classifier", "ro,size=1m", "not writable"),
    ("import_mat", "size=16k", "is full"),
])
def test_a_full_or_read_only_disk_is_an_output_error_and_leaves_nothing(
        operation: str, mount: str, expected: str, tmp_path: Path, sample_raster: Path, sample_labels: Path,
        sample_model: Path) -> None:
    import scipy.io

    outputs = tmp_path / "out"
    outputs.mkdir()
    cube = tmp_path / "cube.mat"
    scipy.io.savemat(cube, {"cube": np.random.default_rng(0).random((64, 64, 8))})
    params = {"classify_raster": {"raster": str(sample_raster), "model": str(sample_model),
                                  "output": str(outputs / "map.tif"), "output_probability": str(outputs / "p.tif")},
              "train_classifier": {"raster": str(sample_raster), "labels": str(sample_labels), "field": "class",
                                   "method": "svm", "output_model": str(outputs / "m.lpmodel")},
              "import_mat": {"mat": str(cube), "output": str(outputs / "cube.tif")}}[operation]
    code, events, left = _run_on_a_small_disk({"operation": operation, "params": params}, outputs, mount)
    error = events[-1]
    assert code == 1 and error["event"] == "error" and error["kind"] == "output", error
    print(f"\nFAULT | {mount} disk, {operation} | {error['kind']} | {error['message']} | left: {left or 'nothing'}")
    assert expected in error["message"] and str(outputs) in error["message"]
    assert left == ""  # neither the output nor a temporary file on the full disk
