"""Helpers shared by the benchmark scripts: inputs, external tools, process-tree memory, metrics and tables."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "resources" / "sample" / "LE70220491999322EDC01_stack.gtif"
LABELS = REPO / "resources" / "sample" / "training_data.shp"
FIELD = "class"
N_BANDS = 7  # band 8 of the sample is all zero
REMOTIOR_PYTHON = os.environ.get("REMOTIOR_PYTHON", "/opt/rs-venv/bin/python")
REMOTIOR_WORKER = Path(__file__).resolve().parent / "remotior_worker.py"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def engine_env() -> dict[str, str]:
    """The environment for ``python -m engine`` subprocesses (repository on ``PYTHONPATH``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def seven_band_copy(workdir: Path, float32: bool = False) -> Path:
    """Bands 1-7 of the sample as a GeoTIFF (int16 as stored, or float32), written once into ``workdir``."""
    import rasterio

    out = workdir / ("sample7_f32.tif" if float32 else "sample7.tif")
    if not out.exists():
        with rasterio.open(SAMPLE) as src:
            data = src.read(list(range(1, N_BANDS + 1)))
            profile = src.profile | {"count": N_BANDS, "dtype": "float32" if float32 else src.dtypes[0],
                                     "interleave": "pixel", "tiled": False}
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(data.astype(profile["dtype"]))
    return out


# Normalised differences added to bands 1-7 for the 12-band float32 layout: (name, band a, band b) = (a-b)/(a+b).
INDEX_BANDS = (("NDVI", 4, 3), ("NDWI", 2, 4), ("NDBI", 5, 4), ("NBR", 4, 7), ("MNDWI", 2, 5))


def twelve_band_copy(workdir: Path) -> Path:
    """Bands 1-7 of the sample plus the five :data:`INDEX_BANDS`, as float32, written once into ``workdir``.

    This is the issue's throughput layout (12 float32 bands): a band stack with spectral indices, as analysts
    build before classifying.
    """
    import numpy as np
    import rasterio

    out = workdir / "sample12_f32.tif"
    if not out.exists():
        with rasterio.open(SAMPLE) as src:
            data = src.read(list(range(1, N_BANDS + 1))).astype("float32")
            profile = src.profile | {"count": N_BANDS + len(INDEX_BANDS), "dtype": "float32",
                                     "interleave": "pixel", "tiled": False}
        indices = []
        for _, a, b in INDEX_BANDS:
            total = data[a - 1] + data[b - 1]
            indices.append(np.where(total != 0, (data[a - 1] - data[b - 1]) / np.where(total != 0, total, 1), 0))
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(np.concatenate([data, np.stack(indices).astype("float32")]))
    return out


def single_band_files(raster: Path, workdir: Path, tag: str, dtype: str | None = None) -> list[Path]:
    """One file per band of ``raster`` (Remotior Sensus builds band sets from single-band files)."""
    import rasterio

    with rasterio.open(raster) as src:
        count = src.count
    paths = [workdir / f"{tag}_b{b}.tif" for b in range(1, count + 1)]
    if all(p.exists() for p in paths):
        return paths
    with rasterio.open(raster) as src:
        profile = src.profile | {"count": 1, "dtype": dtype or src.dtypes[0]}
        if profile.get("tiled"):
            profile |= {"blockxsize": 512, "blockysize": 512}
        for b, path in enumerate(paths, start=1):
            with rasterio.open(path, "w", **profile) as dst:
                for _, win in src.block_windows(1):
                    dst.write(src.read(b, window=win).astype(profile["dtype"]), 1, window=win)
    return paths


def tool_missing(name: str) -> str | None:
    """Why the external contender ``name`` ('otb' or 'remotior') cannot run, or ``None`` when it can."""
    if name == "otb":
        for exe in ("otbcli_TrainImagesClassifier", "otbcli_ImageClassifier"):
            if shutil.which(exe) is None:
                return f"{exe} not on PATH (apt-get install otb-bin)"
        return None
    if not Path(REMOTIOR_PYTHON).exists():
        return f"no Remotior Sensus venv at {REMOTIOR_PYTHON} (set REMOTIOR_PYTHON; see benchmarks/README.md)"
    probe = subprocess.run([REMOTIOR_PYTHON, "-c", "import remotior_sensus, osgeo, sklearn"], capture_output=True,
                           text=True, check=False)
    if probe.returncode:
        return f"{REMOTIOR_PYTHON} cannot import remotior_sensus/osgeo/sklearn: {probe.stderr.strip()[-200:]}"
    return None


def otb_commands(image: Path, train_vector: Path, model: Path, output: Path, seed: int = 0,
                 classifier: str = "rf") -> list[list[str]]:
    """Orfeo ToolBox ``classifier`` (``rf`` or ``libsvm``) with its defaults: train on image + polygons, classify.

    Random forest by default.
    """
    return [
        ["otbcli_TrainImagesClassifier", "-io.il", str(image), "-io.vd", str(train_vector), "-sample.vfn", "code",
         "-classifier", classifier, "-io.out", str(model), "-rand", str(seed)],
        ["otbcli_ImageClassifier", "-in", str(image), "-model", str(model), "-out", str(output), "uint8"],
    ]


def remotior_command(bands: list[Path], roi: Path, algorithm: str, output: Path) -> list[str]:
    """A Remotior Sensus classification in its own venv (see ``remotior_worker.py``)."""
    return [REMOTIOR_PYTHON, str(REMOTIOR_WORKER), "--bands", *map(str, bands), "--roi", str(roi),
            "--algorithm", algorithm, "--output", str(output), "--no-signature-stats"]


def _tree_rss(root: int) -> int:
    """Resident memory in bytes of ``root`` and all its descendants (read from /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            parents[int(entry.name)] = int(fields[1])
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(rss.get(p, 0) for p in tree)


def run_measured(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
                 interval: float = 0.2) -> dict[str, Any]:
    """Run ``cmd``; wall time and peak resident memory of its process tree (polled sum, bytes)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    while proc.poll() is None:
        peak[0] = max(peak[0], _tree_rss(proc.pid))
        time.sleep(interval)
    reader.join()
    return {"rc": proc.returncode, "wall_s": time.perf_counter() - start, "peak_rss": peak[0],
            "output": "".join(chunks)}


def scores(y_true: Any, y_pred: Any, class_names: list[str]) -> tuple[float, float, float]:
    """Overall accuracy, kappa and macro F1 from the engine's own metrics (``y_pred`` -1 counts as wrong)."""
    import numpy as np

    from engine.assess.metrics import accuracy_figures, confusion_matrix

    n = len(class_names)
    wrong = (y_pred < 0) | (y_pred >= n)
    pred = np.where(wrong, (y_true + 1) % n, y_pred)  # an invalid prediction is scored as some other class
    figures = accuracy_figures(confusion_matrix(y_true, pred, n), class_names)
    return float(figures["overall_accuracy"]), float(figures["kappa"]), float(figures["macro_f1"] or 0.0)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
