"""Accuracy of Landprobe's probes against hand-written and external classifiers on the Landsat 7 sample.

Protocol:

- Raster: bands 1-7 of ``resources/sample/LE70220491999322EDC01_stack.gtif`` (band 8 is all zero), copied once into
  the work folder as int16 (and as float32 for one Remotior Sensus variant). Labels: ``training_data.shp``, field
  ``class`` (text; codes 1..n in name order, as the engine assigns them, written as an integer field ``code``).
- Splits: the pixels under the polygons come from ``engine.io.labels.sample_pixels`` (capped like
  ``engine.jobs.train_classifier``); for seeds 0..4
  ``engine.samples.validation.polygon_group_split(test_fraction=0.3)`` holds out about
  30 % of each class's polygons. Every contender uses the same split: the train and test polygons are also written
  as separate shapefiles for the external tools.
- Score: overall accuracy, Cohen's kappa and macro F1 (``engine.assess.metrics``) on the test-polygon pixels, i.e.
  exactly
  the pixels ``sample_pixels`` returns for the test polygons; an external map is read at those pixels. Mean ± std
  (population std) over the 5 seeds.
- Contenders: the engine probes (``engine.probes.registry.PROBES``, fitted on the train-polygon pixels as
  ``engine.jobs.train_classifier.validate`` does); the default probe (SVM) with the six spectral indices of
  ``engine.embeddings.features`` added (Landsat 7 band roles); scikit-learn ``RandomForestClassifier(n_estimators=100)``
  otherwise default;
  Orfeo ToolBox random forest (``otbcli_TrainImagesClassifier ... -classifier rf`` with OTB's defaults, then
  ``otbcli_ImageClassifier``); Remotior Sensus random forest and multi-layer perceptron (``band_classification``
  defaults, ROIs = the train polygons) on int16 bands, and random forest on float32 bands.
  A contender whose tool is missing or fails is reported with the reason.

Run: ``PYTHONPATH=. <engine python> benchmarks/bench_accuracy.py [--workdir DIR] [--seeds 5] [--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from common import (
    FIELD,
    LABELS,
    N_BANDS,
    markdown_table,
    otb_commands,
    remotior_command,
    scores,
    seven_band_copy,
    single_band_files,
    tool_missing,
)

LANDSAT7_ROLES = "blue=1, green=2, red=3, nir=4, swir1=5, swir2=6"
REMOTIOR = {"remotior_rf": ("random forest", False), "remotior_mlp": ("multi-layer perceptron", False),
            "remotior_rf_float32": ("random forest", True)}


def load_samples(raster: Path):
    """Pixel samples under the labels, capped as ``engine.training.train_classifier`` does."""
    from engine.io.labels import sample_pixels
    from engine.samples.validation import cap_per_class

    samples = sample_pixels(str(raster), str(LABELS), FIELD)
    keep = cap_per_class(samples.y, samples.groups, 20_000, 0)
    return replace(samples, x=samples.x[keep], y=samples.y[keep], groups=samples.groups[keep],
                   rows=samples.rows[keep], cols=samples.cols[keep])


def write_split_vectors(raster: Path, test_groups: np.ndarray, folder: Path) -> tuple[Path, Path]:
    """The train and test polygons as shapefiles with the integer field ``code`` (GeoPackage too, for Remotior)."""
    import rasterio

    from engine.io.labels import read_labels

    with rasterio.open(raster) as src:
        gdf, classes = read_labels(str(LABELS), FIELD, src.crs.to_wkt())
    gdf["code"] = np.array([c.code for c in classes], dtype="int32")[gdf["_class"].to_numpy()]
    gdf = gdf[[FIELD, "code", "_group", gdf.geometry.name]]
    test = gdf["_group"].isin(test_groups)
    paths = folder / "train.shp", folder / "test.shp"
    gdf[~test].to_file(paths[0])
    gdf[test].to_file(paths[1])
    gdf[~test].to_file(folder / "train.gpkg", layer="train")
    return paths


def read_at(path: Path, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Class codes of a classified raster at the given pixels."""
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)[rows, cols].astype("int64")


def run_external(name: str, image: Path, bands: dict[bool, list[Path]], folder: Path, seed: int) -> Path:
    """Run an external contender for one split; return its classified raster (raise with the reason)."""
    out = folder / f"{name}.tif"
    if name == "otb":
        cmds = otb_commands(image, folder / "train.shp", folder / "otb_model.txt", out, seed)
    else:
        algorithm, float32 = REMOTIOR[name]
        cmds = [remotior_command(bands[float32], folder / "train.gpkg", algorithm, out)]
    for cmd in cmds:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=folder)
        if done.returncode or not out.parent.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"{Path(cmd[0]).name} exited {done.returncode}: {' / '.join(tail)}")
    if not out.exists():
        raise RuntimeError(f"{name} wrote no {out.name}")
    return out


def main() -> None:
    """Run every contender on every split and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="keep inputs and outputs here (default: temp)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="contender names to run (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from sklearn.ensemble import RandomForestClassifier

    from engine.embeddings.features import compute_features, make_recipe
    from engine.probes.registry import PROBES, get_probe
    from engine.samples.validation import polygon_group_split

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="landprobe-acc-")
        args.workdir = Path(tmp.name)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    image = seven_band_copy(work)
    bands = {False: single_band_files(image, work, "i16"), True: single_band_files(image, work, "f32", "float32")}
    samples = load_samples(image)
    names = [c.name for c in samples.classes]
    code_to_index = {c.code: i for i, c in enumerate(samples.classes)}
    contenders = [*PROBES, "svm+indices", "sklearn_rf", "otb", *REMOTIOR]
    recipe = make_recipe([f"band {b}" for b in range(1, N_BANDS + 1)], indices=True, band_roles=LANDSAT7_ROLES)
    with_indices = compute_features(samples.x, recipe)
    if args.only:
        contenders = [c for c in contenders if c in args.only]
    skipped = {}
    for name in contenders:
        tool = "otb" if name == "otb" else "remotior" if name.startswith("remotior") else None
        if tool and (why := tool_missing(tool)):
            skipped[name] = f"skipped: {why}"
    print(f"{len(samples.y)} labelled pixels of {len(np.unique(samples.groups))} polygons, {N_BANDS} bands, "
          f"classes {', '.join(names)}; {args.seeds} polygon splits (test_fraction 0.3).", flush=True)
    results: dict[str, list[tuple[float, float, float]]] = {n: [] for n in contenders}
    seconds: dict[str, float] = dict.fromkeys(contenders, 0.0)
    for seed in range(args.seeds):
        test = polygon_group_split(samples.y, samples.groups, 0.3, seed, names)
        folder = work / f"split{seed}"
        folder.mkdir(exist_ok=True)
        write_split_vectors(image, np.unique(samples.groups[test]), folder)
        x_train, y_train = samples.x[~test], samples.y[~test]
        y_test, rows, cols = samples.y[test], samples.rows[test], samples.cols[test]
        print(f"seed {seed}: {len(np.unique(samples.groups[~test]))} train / {len(np.unique(samples.groups[test]))}"
              f" test polygons, {len(y_train)} / {len(y_test)} pixels", flush=True)
        for name in contenders:
            if name in skipped:
                continue
            start = time.perf_counter()
            try:
                if name in PROBES:
                    probe = get_probe(name)().fit(x_train, y_train, len(names))
                    pred = probe.predict(samples.x[test])[0]
                elif name == "svm+indices":
                    probe = get_probe("svm")().fit(with_indices[~test], y_train, len(names))
                    pred = probe.predict(with_indices[test])[0]
                elif name == "sklearn_rf":
                    model = RandomForestClassifier(n_estimators=100, random_state=seed).fit(x_train, y_train)
                    pred = model.predict(samples.x[test])
                else:
                    codes = read_at(run_external(name, image, bands, folder, seed), rows, cols)
                    pred = np.array([code_to_index.get(int(c), -1) for c in codes])
            except Exception as exc:
                skipped[name] = f"failed (seed {seed}): {exc}"[:300]
                print(f"  {name}: {skipped[name]}", flush=True)
                continue
            seconds[name] += time.perf_counter() - start
            results[name].append(scores(y_test, pred, names))
            print(f"  {name}: OA {results[name][-1][0]:.3f} kappa {results[name][-1][1]:.3f}", flush=True)
    rows_out = []
    for name in contenders:
        if name in skipped:
            rows_out.append([name, "-", "-", "-", "-", skipped[name]])
            continue
        figs = np.array(results[name])
        cells = [f"{figs[:, i].mean():.3f} ± {figs[:, i].std():.3f}" for i in range(3)]
        rows_out.append([name, *cells, f"{seconds[name] / len(figs):.2f}", f"{len(figs)} splits"])
    print("\n## Accuracy on held-out polygons (Landsat 7 sample, bands 1-7)\n")
    print(markdown_table(["contender", "overall accuracy", "kappa", "macro F1", "s per split", "note"], rows_out))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
