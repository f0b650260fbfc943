"""Whole-raster prediction throughput, peak memory and training time: Landprobe against naive and external tools.

Protocol:

- Raster: the Landsat 7 sample tiled into a ``--size`` x ``--size`` px (default 8000) GeoTIFF (uncompressed,
  512 px tiles), built once in ``--workdir`` (default /tmp/landprobe-bench) and reused, in one of two layouts
  (``--layout``): ``int16x7`` (default; bands 1-7 as stored, 0.9 GB at 8000 px) or ``float32x12`` (the issue's
  layout: bands 1-7 plus five normalised-difference indices, see ``common.INDEX_BANDS``, as float32, 3.1 GB).
  Remotior Sensus also gets it as single-band files.
- Every contender runs as its own process tree; figures are the whole process: start-up, reading, predicting and
  writing (megapixels per second = pixels / wall time) and the peak resident memory, i.e. the largest sum of RSS
  over the process and all its descendants, polled every 0.2 s from /proc (GB = 1e9 bytes).
- Contenders: ``python -m engine classify`` with models from ``python -m engine train --method X`` on the sample
  (trained beforehand, not timed); a naive baseline (scikit-learn logistic regression, XGBoost, scikit-learn random
  forest with n_estimators=100 fitted on the sample's 718 labelled pixels inside the timed process, then the whole
  raster read into memory, predicted in one call, written); ``otbcli_ImageClassifier`` with an OTB random forest
  trained beforehand; Remotior Sensus random forest (the timed process also trains on the ROIs, ~1 s). Every
  model is trained on the sample in the same layout (7 or 12 features).
- Training time: 100,000 samples drawn with replacement from the sample's labelled pixels plus Gaussian noise
  (1 % of each band's std, seed 0); wall time of ``fit`` alone, in this process.
- Concurrent CPU load on the machine distorts every figure: run it on an idle machine.

Run: ``PYTHONPATH=. <engine python> benchmarks/bench_predict.py [--layout float32x12] [--size 2000] [--workdir DIR]
[--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from common import (
    FIELD,
    LABELS,
    engine_env,
    markdown_table,
    otb_commands,
    remotior_command,
    run_measured,
    seven_band_copy,
    single_band_files,
    tool_missing,
    twelve_band_copy,
)

NAIVE = ("logistic_regression", "xgboost", "random_forest")


def naive_model(method: str):
    """The hand-written scikit-learn / XGBoost classifier with library defaults."""
    if method == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=2000)
    if method == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier()
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100, n_jobs=-1, random_state=0)


def naive_worker(method: str, sample: Path, raster: Path, output: Path) -> None:
    """The naive baseline: fit on the sample, read the whole raster into memory, predict it at once, write it."""
    import rasterio

    from engine.io.labels import sample_pixels

    samples = sample_pixels(str(sample), str(LABELS), FIELD)
    model = naive_model(method).fit(samples.x, samples.y)
    with rasterio.open(raster) as src:
        data = src.read()
        profile = src.profile | {"count": 1, "dtype": "uint8", "nodata": 0, "compress": "deflate"}
    bands, height, width = data.shape
    pred = model.predict(data.reshape(bands, -1).T.astype("float32")).astype("uint8") + 1
    with rasterio.open(output, "w", **profile) as dst:
        dst.write(pred.reshape(height, width), 1)


LAYOUTS = {"int16x7": "7 bands int16", "float32x12": "12 bands float32 (bands 1-7 + 5 indices)"}


def layout_sample(work: Path, layout: str) -> Path:
    """The 250 x 250 px sample in ``layout``: what models are trained on and what the big raster tiles."""
    return seven_band_copy(work) if layout == "int16x7" else twelve_band_copy(work)


def build_raster(work: Path, size: int, layout: str = "int16x7") -> Path:
    """The sample in ``layout`` tiled to ``size`` x ``size`` px, built once."""
    import rasterio
    from rasterio.windows import Window

    out = work / (f"tiled_{size}.tif" if layout == "int16x7" else f"tiled_{layout}_{size}.tif")
    if out.exists():
        return out
    with rasterio.open(layout_sample(work, layout)) as src:
        tile = src.read()
        profile = src.profile | {"width": size, "height": size, "tiled": True, "blockxsize": 512,
                                 "blockysize": 512, "BIGTIFF": "IF_SAFER", "interleave": "pixel"}
    th, tw = tile.shape[1:]
    big = np.tile(tile, (1, -(-512 // th) + 1, -(-512 // tw) + 1))  # any 512 px window, at any offset
    partial = out.with_suffix(".part.tif")
    with rasterio.open(partial, "w", **profile) as dst:
        for row in range(0, size, 512):
            for col in range(0, size, 512):
                h, w = min(512, size - row), min(512, size - col)
                r0, c0 = row % th, col % tw  # keep the tiling seamless
                dst.write(big[:, r0:r0 + h, c0:c0 + w], window=Window(col, row, w, h))
    partial.rename(out)
    return out


def training_times(sample: Path, methods: list[str]) -> list[list[str]]:
    """Seconds to fit each engine probe and each naive model on 100k noisy resampled pixels."""
    from engine.io.labels import sample_pixels
    from engine.probes.registry import get_probe

    samples = sample_pixels(str(sample), str(LABELS), FIELD)
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(samples.y), 100_000)
    x = samples.x[pick] + rng.normal(0, 0.01, (len(pick), samples.x.shape[1])) * samples.x.std(axis=0)
    x, y = x.astype("float32"), samples.y[pick]
    rows = []
    for name in methods:
        kind, method = name.split(":")
        start = time.perf_counter()
        if kind == "engine":
            get_probe(method)().fit(x, y, len(samples.classes))
        else:
            naive_model(method).fit(x, y)
        rows.append([f"{kind} {method}", f"{time.perf_counter() - start:.2f}"])
    return rows


def main() -> None:
    """Build the raster, run every contender, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8000, help="raster width and height in px (default 8000)")
    parser.add_argument("--layout", choices=list(LAYOUTS), default="int16x7",
                        help="bands and data type of the raster (default int16x7; float32x12 is the issue's)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/landprobe-bench"))
    parser.add_argument("--only", nargs="*", help="contender names (e.g. engine:knn naive:xgboost otb remotior_rf)")
    parser.add_argument("--no-training", action="store_true", help="skip the 100k-sample training times")
    parser.add_argument("--naive-worker", nargs=4, metavar=("METHOD", "SAMPLE", "RASTER", "OUTPUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_worker:
        method, *paths = args.naive_worker
        naive_worker(method, *map(Path, paths))
        return
    from engine.probes.registry import PROBES

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    print(f"WARNING: concurrent CPU load distorts these figures (1-min load average now {load:.2f} on "
          f"{os.cpu_count()} cores).", flush=True)
    layout = args.layout
    sample = layout_sample(work, layout)
    start = time.perf_counter()
    raster = build_raster(work, args.size, layout)
    print(f"raster {raster} ({args.size} x {args.size} px, {LAYOUTS[layout]}) ready in "
          f"{time.perf_counter() - start:.1f} s", flush=True)
    tag = "" if layout == "int16x7" else f"{layout}_"
    contenders = [f"engine:{m}" for m in PROBES] + [f"naive:{m}" for m in NAIVE] + ["otb", "remotior_rf"]
    if args.only:
        contenders = [c for c in contenders if c in args.only]
    mpx = args.size * args.size / 1e6
    py, env = sys.executable, engine_env()
    rows = []
    for name in contenders:
        out = work / f"out_{tag}{args.size}_{name.replace(':', '_')}.tif"
        out.unlink(missing_ok=True)
        kind, _, method = name.partition(":")
        note = ""
        if kind == "engine":
            model = work / f"model_{tag}{method}.lpmodel"
            if not model.exists():
                done = run_measured([py, "-m", "engine", "train", "--raster", str(sample), "--labels", str(LABELS),
                                     "--field", FIELD, "--method", method, "--output-model", str(model)], env=env)
                if done["rc"]:
                    rows.append([name, "-", "-", "-", f"training failed: {done['output'][-200:]}"])
                    continue
            cmd = [py, "-m", "engine", "classify", "--raster", str(raster), "--model", str(model), "--output", str(out)]
        elif kind == "naive":
            cmd = [py, __file__, "--naive-worker", method, str(sample), str(raster), str(out)]
            note = "includes fitting on 718 px"
        elif kind == "otb":
            if why := tool_missing("otb"):
                rows.append([name, "-", "-", "-", f"skipped: {why}"])
                continue
            shp = work / "train_all.shp"
            if not shp.exists():
                from bench_accuracy import write_split_vectors

                write_split_vectors(sample, np.array([], dtype="int32"), work)
                (work / "train.shp").rename(shp)
                for ext in (".shx", ".dbf", ".prj", ".cpg"):
                    (work / f"train{ext}").rename(shp.with_suffix(ext))
            otb_model = work / f"otb_model{'_' + layout if tag else ''}.txt"
            if not otb_model.exists():
                run_measured(otb_commands(sample, shp, otb_model, out)[0], env=env)
            cmd = otb_commands(raster, shp, otb_model, out)[1]
            note = "model trained beforehand"
        else:
            if why := tool_missing("remotior"):
                rows.append([name, "-", "-", "-", f"skipped: {why}"])
                continue
            if not (work / "train.gpkg").exists():
                from bench_accuracy import write_split_vectors

                write_split_vectors(sample, np.array([], dtype="int32"), work)
            bands = single_band_files(raster, work, f"tiled_{tag}{args.size}")
            cmd = remotior_command(bands, work / "train.gpkg", "random forest", out)
        print(f"running {name} ...", flush=True)
        done = run_measured(cmd, env=env)
        if done["rc"] or not out.exists():
            rows.append([name, "-", f"{done['wall_s']:.1f}", "-", f"failed rc {done['rc']}: "
                         + " / ".join(done["output"].strip().splitlines()[-2:])[-250:]])
            continue
        if kind == "remotior_rf":
            stages = json.loads(done["output"].strip().splitlines()[-1])
            note = f"training + classification; band_classification {stages['classification_s']:.1f} s"
        rows.append([name, f"{mpx / done['wall_s']:.2f}", f"{done['wall_s']:.1f}",
                     f"{done['peak_rss'] / 1e9:.2f}", note])
        print(f"  {rows[-1]}", flush=True)
    print(f"\n## Prediction, {args.size} x {args.size} px x {LAYOUTS[layout]} ({mpx:.1f} Mpx), "
          f"{os.cpu_count()} cores\n")
    print(markdown_table(["contender", "Mpx/s", "wall s", "peak RSS GB", "note"], rows))
    if not args.no_training:
        methods = [f"engine:{m}" for m in PROBES] + [f"naive:{m}" for m in NAIVE]
        rows = training_times(sample, methods)
        rows += [["otb", "n/a: trains from image + polygons only, no sample-matrix input"],
                 ["remotior_rf", "n/a: not measured (trains from ROIs on a band set)"]]
        print(f"\n## Training time, 100,000 samples x {12 if tag else 7} features\n")
        print(markdown_table(["method", "fit s"], rows))


if __name__ == "__main__":
    main()
