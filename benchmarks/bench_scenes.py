"""The automatic method and every probe against scikit-learn, XGBoost and OTB baselines on real and trap scenes.

Real scenes, and synthetic scenes that reproduce the traps users meet. Protocol:

- Scenes (``--only-scenes``):

  - ``landsat7``: the Landsat 7 sample ``../shared/data/landsat7/LE70220491999322EDC01_stack.gtif`` as it is (8
    bands, band 8 all zero), labels ``training_data.shp``, field ``class`` (30 polygons, 5 classes).
  - ``sentinel2``: ``../shared/data/rcr_sentinel2/rcr_s2b_l1c_20181013_8band_crop.tif`` (Sentinel-2 L1C, 8 bands
    stretched to 8 bits, EPSG:4326) with ``rcr_landcover.gpkg`` (23 polygons of 6 classes in UTM 18N, reprojected
    by the engine), field ``Classname``. Its one ``Subtidal Haline`` polygon always trains and is never tested.
  - Five seeded synthetic scenes written by ``benchmarks/scenes.py`` (see its docstring for how they are drawn) as
    GeoTIFF files and label GeoPackages in the work folder: (a) ``empty_bands``, a 224-band cube whose six
    water-absorption bands are NaN everywhere; (b) ``mixed_files``, seven per-band files (six Float32 with nodata
    -9999, one Int16 with nodata -32768) given as a list; (c) ``dominant_class``, one class over 75 % of the
    labelled pixels; (d) ``linear_bands``, 240 correlated bands, few labels, each class along its own weak linear
    direction; (e) ``pixel_polygons``, a ground-truth raster turned into one square polygon per labelled pixel.

- Features: the pixels under the labels, read by the engine's loader
  (``engine.embeddings.sources.load_raw_bands``, raw bands, no indices) and capped with
  ``engine.samples.validation.cap_per_class(y, groups, 20000, seed)`` as training does. If the engine's loader fails
  on a
  scene, the error is printed and every contender runs on what a user would give instead (the scene's
  ``fallback_raster``: the non-empty bands, or the files stacked as Float32); the automatic method then does not
  meet the target on that scene. The baselines get the same pixels with all-NaN columns dropped.

- Splits: for seeds 0..4 (``--seeds``), ``engine.samples.validation.polygon_group_split(y, groups, 0.3, seed)`` holds
  out
  about 30 % of each class's polygons; every contender gets the same split. Scene (e) would leak the neighbours of
  every test pixel into training, so its samples are grouped into 40 px spatial blocks
  (``engine.samples.validation.spatial_block_ids``) and the blocks are split by ``polygon_group_split``, stratified by
  each
  block's majority class.

- Contenders, all fitted on the training part of the split only:

  - ``auto``: ``engine.assess.selection.select_probe(..., method="auto", objective="overall_accuracy",
    class_weight="auto", seed=seed)`` on the training samples (with their polygons and pixel positions); what it
    picked is printed per seed. With ``--choice-seeds N`` the choice is made N times per split, with seeds
    ``seed + 100 j`` (its inner folds and subsamples are drawn anew; the split stays), and its figures are the mean
    over splits and draws; the summary adds the mean of each draw. On a few dozen polygons which polygons share an
    inner fold moves the choice, and one draw per split can pass or fail a scene by luck.
  - every engine probe, ``engine.probes.registry.PROBES[name]()`` with its defaults;
  - hand-written baselines with library defaults: ``RandomForestClassifier(random_state=seed)``,
    ``make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))``,
    ``make_pipeline(StandardScaler(), SVC())`` (RBF), ``xgboost.XGBClassifier()``;
  - Orfeo ToolBox random forest and libsvm with OTB's defaults (``otbcli_TrainImagesClassifier -classifier rf`` or
    ``libsvm``, which is a linear kernel with C = 1 on unscaled values, then ``otbcli_ImageClassifier``), trained on
    the train polygons written as a shapefile in the raster's CRS (integer field ``code``) and read back at the test
    pixels. OTB gets one image: the scene's raster, or its VRT stack for (a) and (b).

- Scores: overall accuracy, Cohen's kappa and macro F1 (``engine.assess.metrics``) on the test pixels, mean ± std
  (population) over the seeds; fit seconds are the mean time of the fit alone (for ``auto``, the whole selection and
  the final fit; for OTB, ``TrainImagesClassifier``). Target: on every scene the automatic method's mean overall
  accuracy is at least the best baseline's (scikit-learn, XGBoost, OTB; not the engine's own probes) minus 0.01.
- Threads: the script sets ``OMP_WAIT_POLICY=PASSIVE`` (unless set) before any OpenMP runtime loads, so that
  idle OpenMP threads sleep: with other processes on the machine, spinning threads made one XGBoost fit 6 times
  slower (5.1 s instead of 0.8 s at load 3 on 2 cores). It changes no result, and little on an idle machine.
- Training time: ``engine.jobs.train_classifier.train_classifier`` on the Landsat 7 sample with ``method="auto"``
  and with ``method="svm"`` (default validation), one warm-up run of each, then 3 interleaved rounds (the order
  turned each round): the medians side by side and their ratio, with the mean fit times from the scene's table.

Run: ``PYTHONPATH=. <engine python> benchmarks/bench_scenes.py [--only-scenes NAME ...] [--seeds 5] [--workdir DIR]
[--only CONTENDER ...] [--choice-seeds 3]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import scenes
from common import REPO, markdown_table, otb_commands, scores, tool_missing

DATA = REPO.parent / "shared" / "data"
REAL = {
    "landsat7": scenes.Scene(
        "landsat7", "Landsat 7 sample (8 bands, 30 polygons)",
        str(DATA / "landsat7" / "LE70220491999322EDC01_stack.gtif"), str(DATA / "landsat7" / "training_data.shp"),
        "class", str(DATA / "landsat7" / "LE70220491999322EDC01_stack.gtif")),
    "sentinel2": scenes.Scene(
        "sentinel2", "Sentinel-2 L1C, Rachel Carson Reserve (8 bands, 8 bits, EPSG:4326; labels in UTM)",
        str(DATA / "rcr_sentinel2" / "rcr_s2b_l1c_20181013_8band_crop.tif"),
        str(DATA / "rcr_sentinel2" / "rcr_landcover.gpkg"), "Classname",
        str(DATA / "rcr_sentinel2" / "rcr_s2b_l1c_20181013_8band_crop.tif")),
}
SCENES = [*REAL, *scenes.SYNTHETIC]
BASELINES = ["sklearn_rf", "sklearn_logreg", "sklearn_svm", "xgboost_default", "otb_rf", "otb_libsvm"]
OTB = {"otb_rf": "rf", "otb_libsvm": "libsvm"}
#: ``--choice-seeds``: the automatic choice of split ``s`` is made with seeds ``s + CHOICE_SEED_STEP * j``.
CHOICE_SEED_STEP = 100


def load(scene: scenes.Scene) -> tuple[Any, str | None]:
    """The scene's labelled pixels from the engine's loader, or (with the error) from the fallback raster."""
    from engine.core.feedback import Feedback
    from engine.embeddings.sources import load_raw_bands
    from engine.jobs.train_classifier import drop_empty_classes

    def read(raster: str | list[str]) -> Any:
        loaded = load_raw_bands(raster, scene.labels, scene.field, indices=False, band_roles=None,
                                feedback=Feedback(), class_colors=None)
        return drop_empty_classes(loaded.samples)

    try:
        return read(scene.raster), None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
        if scene.fallback_raster is None:
            raise
        return read(scene.fallback_raster), error


def split(scene: scenes.Scene, samples: Any, seed: int) -> np.ndarray:
    """Test mask: whole polygons, or for one-pixel polygons whole spatial blocks (stratified by majority class)."""
    from engine.samples.validation import polygon_group_split, spatial_block_ids

    names = [c.name for c in samples.classes]
    if scene.split != "blocks":
        return polygon_group_split(samples.y, samples.groups, 0.3, seed, names)
    blocks = spatial_block_ids(samples.groups, samples.rows, samples.cols, scene.block_size)
    ids, inverse = np.unique(blocks, return_inverse=True)
    counts = np.zeros((len(ids), len(names)), dtype="int64")
    np.add.at(counts, (inverse, samples.y), 1)
    majority = counts.argmax(axis=1)[inverse]
    return polygon_group_split(majority, blocks, 0.3, seed)


def write_train_vector(scene: scenes.Scene, names: list[str], train_groups: np.ndarray, folder: Path) -> Path:
    """The training polygons as a shapefile in the OTB image's CRS, with ``code`` = class index + 1."""
    import rasterio

    from engine.io.labels import read_labels

    with rasterio.open(scene.otb_image) as src:
        gdf, classes = read_labels(scene.labels, scene.field, src.crs.to_wkt())
    index = {n: i for i, n in enumerate(names)}
    gdf["code"] = np.array([index.get(c.name, -1) + 1 for c in classes], dtype="int32")[gdf["_class"].to_numpy()]
    gdf = gdf[gdf["_group"].isin(train_groups) & (gdf["code"] > 0)]
    path = folder / "train.shp"
    gdf[["code", gdf.geometry.name]].to_file(path)
    return path


def run_otb(classifier: str, image: str, vector: Path, folder: Path, seed: int) -> tuple[Path, float]:
    """Train and apply an OTB classifier; the classified raster and the training seconds (raise with the reason)."""
    out = folder / f"otb_{classifier}.tif"
    train_seconds = 0.0
    for i, cmd in enumerate(otb_commands(Path(image), vector, folder / f"otb_{classifier}.model", out, seed,
                                         classifier)):
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=folder)
        if i == 0:
            train_seconds = time.perf_counter() - start
        if done.returncode:
            tail = [line for line in (done.stderr + done.stdout).strip().splitlines() if line.strip()][-2:]
            raise RuntimeError(f"{Path(cmd[0]).name} exited {done.returncode}: {' / '.join(tail)}")
    if not out.exists():
        raise RuntimeError(f"OTB wrote no {out.name}")
    return out, train_seconds


def read_at(path: Path, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Class codes of a classified raster at the given pixels."""
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)[rows, cols].astype("int64")


def baseline(name: str, seed: int) -> Any:
    """A hand-written scikit-learn / XGBoost classifier with library defaults."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if name == "sklearn_rf":
        return RandomForestClassifier(random_state=seed)
    if name == "sklearn_logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    if name == "sklearn_svm":
        return make_pipeline(StandardScaler(), SVC())
    import xgboost

    return xgboost.XGBClassifier()


def run_scene(scene: scenes.Scene, contenders: list[str], seeds: int, work: Path, skipped: dict[str, str],
              choice_seeds: int = 1) -> dict[str, Any]:
    """Every contender on every split of one scene; the figures, fit times, errors and the automatic choices."""
    from engine.probes.registry import PROBES
    from engine.samples.validation import cap_per_class

    start = time.perf_counter()
    samples, loader_error = load(scene)
    names = [c.name for c in samples.classes]
    x_base_cols = ~np.isnan(samples.x).all(axis=0)
    shares = np.bincount(samples.y, minlength=len(names)) / len(samples.y)
    print(f"\n# {scene.key}: {scene.title}\n", flush=True)
    print(f"{len(samples.y)} labelled pixels of {len(np.unique(samples.groups))} polygons, {samples.x.shape[1]} "
          f"features, {len(names)} classes ({', '.join(f'{n} {s:.0%}' for n, s in zip(names, shares, strict=True))})"
          f"; loaded in {time.perf_counter() - start:.1f} s.", flush=True)
    for note in scene.notes:
        print(f"Note: {note}.")
    if loader_error:
        print(f"ENGINE LOADER FAILED: {loader_error}\nAll contenders run on the workaround raster "
              f"{Path(scene.fallback_raster or '').name}.")
    if (~x_base_cols).any():
        print(f"Baselines: {int((~x_base_cols).sum())} all-NaN columns dropped by hand.")
    results: dict[str, list[tuple[float, float, float]]] = {n: [] for n in contenders}
    seconds: dict[str, list[float]] = {n: [] for n in contenders}
    errors = dict(skipped)
    picks: list[str] = []

    def record(name: str, label: str, truth: np.ndarray, pred: np.ndarray, fit_s: float) -> None:
        """Keep and print one contender's figures on one split."""
        seconds[name].append(fit_s)
        results[name].append(scores(truth, pred, names))
        oa, kappa, f1 = results[name][-1]
        print(f"  {name}{label}: OA {oa:.3f} kappa {kappa:.3f} macro F1 {f1:.3f} ({fit_s:.2f} s)", flush=True)

    for seed in range(seeds):
        keep = cap_per_class(samples.y, samples.groups, 20_000, seed)
        s = replace(samples, x=samples.x[keep], y=samples.y[keep], groups=samples.groups[keep],
                    rows=samples.rows[keep], cols=samples.cols[keep])
        test = split(scene, s, seed)
        train = ~test
        x_train, y_train, x_test, y_test = s.x[train], s.y[train], s.x[test], s.y[test]
        xb_train, xb_test = x_train[:, x_base_cols], x_test[:, x_base_cols]
        folder = work / scene.key / f"split{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        vector = None
        print(f"seed {seed}: {len(np.unique(s.groups[train]))} train / {len(np.unique(s.groups[test]))} test "
              f"polygons, {len(y_train)} / {len(y_test)} pixels", flush=True)

        for name in contenders:
            if name in errors:
                continue
            try:
                t0 = time.perf_counter()
                if name == "auto":
                    from engine.assess.selection import select_probe

                    draws = []
                    for draw in range(choice_seeds):  # the choice's own seed: its folds and subsamples
                        t0 = time.perf_counter()
                        probe, report = select_probe(x_train, y_train, s.groups[train], s.rows[train],
                                                     s.cols[train], len(names), method="auto",
                                                     objective="overall_accuracy", class_weight="auto",
                                                     seed=seed + CHOICE_SEED_STEP * draw)
                        drawn = f", choice seed {seed + CHOICE_SEED_STEP * draw}" if choice_seeds > 1 else ""
                        draws.append((time.perf_counter() - t0, probe.predict(x_test)[0], drawn,
                                      f"seed {seed}{drawn}: {report.get('winner')} ({report.get('scheme')} folds; "
                                      f"{report.get('seconds', float('nan')):.1f} s choosing)"))
                    for fit_s, pred, drawn, pick in draws:  # recorded once every draw of the split is done
                        picks.append(pick)
                        record(name, drawn, y_test, pred, fit_s)
                    continue
                elif name in PROBES:
                    probe = PROBES[name]().fit(x_train, y_train, len(names))
                    fit_s = time.perf_counter() - t0
                    pred = probe.predict(x_test)[0]
                elif name in OTB:
                    vector = vector or write_train_vector(scene, names, np.unique(s.groups[train]), folder)
                    out, fit_s = run_otb(OTB[name], scene.otb_image, vector, folder, seed)
                    pred = read_at(out, s.rows[test], s.cols[test]) - 1
                else:
                    present = np.unique(y_train)  # classes present in training, as 0..m-1 for XGBoost
                    model = baseline(name, seed)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        model.fit(xb_train, np.searchsorted(present, y_train))
                    fit_s = time.perf_counter() - t0
                    pred = present[np.asarray(model.predict(xb_test)).astype("int64")]
            except Exception as exc:
                errors[name] = f"failed (seed {seed}): {type(exc).__name__}: {exc}"[:300]
                print(f"  {name}: {errors[name]}", flush=True)
                continue
            record(name, "", y_test, pred, fit_s)
    return {"scene": scene, "results": results, "seconds": seconds, "errors": errors, "picks": picks,
            "loader_error": loader_error, "wall_s": time.perf_counter() - start, "choice_seeds": choice_seeds}


def mean_std(values: list[float]) -> str:
    """``mean ± std`` with three decimals."""
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def print_scene(run: dict[str, Any], contenders: list[str]) -> None:
    """The scene's table and the automatic choice per seed."""
    rows = []
    for name in contenders:
        figs = run["results"][name]
        error = run["errors"].get(name)
        if not figs or error:
            rows.append([name, "-", "-", "-", "-", error or "no result"])
            continue
        arr = np.array(figs)
        draws = run["choice_seeds"] if name == "auto" else 1
        note = (f"{len(figs) // draws} splits" + (f" x {draws} choice seeds" if draws > 1 else "")
                + (", baseline" if name in BASELINES else ""))
        if run["loader_error"] and name not in BASELINES:
            note += ", on the workaround raster"
        rows.append([name, *(mean_std(list(arr[:, i])) for i in range(3)), f"{np.mean(run['seconds'][name]):.2f}",
                     note])
    scene = run["scene"]
    print(f"\n## {scene.key}: {scene.title}\n")
    for note in scene.notes:
        print(f"Note: {note}.")
    if run["loader_error"]:
        print(f"Engine loader: {run['loader_error']}")
    if scene.notes or run["loader_error"]:
        print()
    print(markdown_table(["contender", "OA mean ± std", "kappa mean ± std", "macro F1 mean ± std",
                          "fit seconds (mean)", "note"], rows))
    print()
    for pick in run["picks"]:
        print(f"auto picked: {pick}")
    print(f"(scene wall time {run['wall_s']:.0f} s)")


def summary_row(run: dict[str, Any]) -> list[str]:
    """One summary row: scene, auto OA, best baseline, auto - best, target met, auto macro F1."""
    res, errors = run["results"], run["errors"]
    done = {n: np.array(f) for n, f in res.items() if f and n not in errors}
    best = max((n for n in BASELINES if n in done), key=lambda n: done[n][:, 0].mean(), default=None)
    if "auto" not in done:
        return [run["scene"].key, errors.get("auto", "-")[:80], "-", "-", "no", "-"]
    auto_oa = done["auto"][:, 0].mean()
    draws = run["choice_seeds"]
    shown = f"{auto_oa:.3f}" + (" (" + ", ".join(f"{done['auto'][d::draws, 0].mean():.3f}" for d in range(draws))
                                + ")" if draws > 1 else "")
    if best is None:
        return [run["scene"].key, shown, "no baseline ran", "-", "-", f"{done['auto'][:, 2].mean():.3f}"]
    best_oa = done[best][:, 0].mean()
    target = "yes" if auto_oa >= best_oa - 0.01 else "**no**"
    if run["loader_error"]:
        target = "**no** (engine loader failed)"
    return [run["scene"].key, shown, f"{best} {best_oa:.3f}", f"{auto_oa - best_oa:+.3f}", target,
            f"{done['auto'][:, 2].mean():.3f}"]


def training_time(work: Path, runs: dict[str, dict[str, Any]], rounds: int = 3) -> None:
    """``train_classifier`` wall time on the Landsat 7 sample, method auto against svm; and their mean fit times.

    One untimed run of each first (imports, libraries' first calls), then ``rounds`` interleaved rounds, the order
    turned each round; the medians are compared. A single cold run of each charged the first one with every import.
    """
    from engine.jobs.train_classifier import train_classifier

    scene = REAL["landsat7"]
    walls: dict[str, list[float]] = {"auto": [], "svm": []}
    errors: dict[str, str] = {}
    for r in range(rounds + 1):
        for method in (("auto", "svm") if r % 2 else ("svm", "auto")):
            start = time.perf_counter()
            try:
                train_classifier(scene.raster, scene.labels, scene.field, str(work / f"landsat7_{method}.lpmodel"),
                                 method=method)
            except Exception as exc:
                errors[method] = f"failed: {type(exc).__name__}: {exc}"[:200]
                continue
            if r:  # round 0 warms up
                walls[method].append(time.perf_counter() - start)
    shown = {m: errors.get(m) or f"{np.median(w):.2f} (" + ", ".join(f"{v:.2f}" for v in w) + ")"
             for m, w in walls.items()}
    ratio = (f"{np.median(walls['auto']) / np.median(walls['svm']):.1f}x" if walls["auto"] and walls["svm"]
             else "n/a")
    run = runs.get("landsat7")
    fits = {m: (f"{np.mean(run['seconds'][m]):.2f}" if run and run["seconds"].get(m) else "n/a") for m in
            ("auto", "svm")}
    print("\n## Training time of the automatic method against one method (Landsat 7 sample)\n")
    print(markdown_table(
        ["measure", "auto", "svm"],
        [["fit on the same training polygons (s, mean over the splits above)", fits["auto"], fits["svm"]],
         [f"`train_classifier` wall time (s): load, validate, fit, save; median of {rounds} interleaved rounds "
          f"after a warm-up (each round)", shown["auto"], shown["svm"]],
         ["ratio of the medians", ratio, ""]]))


def positive(text: str) -> int:
    """A whole number of at least 1 (argparse type)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def main() -> None:
    """Run every contender on every scene and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only-scenes", nargs="*", choices=SCENES, help="scenes to run (default: all)")
    parser.add_argument("--seeds", type=int, default=5, help="polygon splits (seeds 0..N-1)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep scenes and outputs here (default: temp)")
    parser.add_argument("--only", nargs="*", help="contender names to run (default: all)")
    parser.add_argument("--no-training-time", action="store_true", help="skip the train_classifier timing")
    parser.add_argument("--choice-seeds", type=positive, default=1,
                        help=f"automatic choices per split, with seeds split + {CHOICE_SEED_STEP} x 0..N-1")
    args = parser.parse_args()
    # Before any OpenMP runtime loads: idle threads sleep instead of spinning. On a busy machine spinning threads
    # multiply XGBoost's times (one fit: 5.1 s instead of 0.8 s at load 3 on 2 cores); idle, it changes little.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.ERROR)
    from engine.probes.registry import PROBES

    start = time.perf_counter()
    print(f"1-min load average at the start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (timings are only "
          "meaningful on an idle machine)", flush=True)
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="landprobe-scenes-")
        args.workdir = Path(tmp.name)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    contenders = ["auto", *PROBES, *BASELINES]
    if args.only:
        contenders = [c for c in contenders if c in args.only]
    skipped = {n: f"skipped: {why}" for n in OTB if n in contenders and (why := tool_missing("otb"))}
    runs: dict[str, dict[str, Any]] = {}
    for key in args.only_scenes or SCENES:
        try:
            scene = REAL[key] if key in REAL else scenes.make_scene(key, work / "scenes")
            runs[key] = run_scene(scene, contenders, args.seeds, work, skipped, args.choice_seeds)
        except Exception as exc:
            print(f"\n## {key}\n\nfailed: {type(exc).__name__}: {exc}"[:400], flush=True)
            runs[key] = {"failed": f"{type(exc).__name__}: {exc}"[:120]}
            continue
        print_scene(runs[key], contenders)
    if not args.no_training_time and ("auto" in contenders or "svm" in contenders):
        training_time(work, runs)
    print("\n## Summary: the automatic method against the best baseline (scikit-learn, XGBoost, OTB)\n")
    rows = [summary_row(run) if "failed" not in run else [key, f"failed: {run['failed']}", "-", "-", "no", "-"]
            for key, run in runs.items()]
    auto_head = "auto OA" + (" (per choice seed)" if args.choice_seeds > 1 else "")
    print(markdown_table(["scene", auto_head, "best baseline (name, OA)", "auto − best", "target met (auto ≥ best "
                          "− 0.01)", "auto macro F1"], rows))
    print(f"\nTotal run time {time.perf_counter() - start:.0f} s; 1-min load average at the end "
          f"{os.getloadavg()[0]:.2f}.")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
