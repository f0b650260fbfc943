"""Where to label next (issue 21): the engine's *Suggest labels* rule against random labels, in simulated rounds.

Protocol:

- Scenes, each with a full reference (the reference map answers when a pixel is asked):
  (a) ``indian_pines``: the real Indian Pines ground truth (``--gt``, 145 x 145 px, 16 classes, 10,249 labelled
  pixels; read with ``engine.io.hsi.read_mat_array``) under the seeded synthetic cube
  ``engine.io.hsi.synthetic_cube(gt, n_bands=200, seed=<the run's seed>)``, as in ``bench_hsi.py``. Only the
  labelled pixels are a reference: the unlabelled background is never asked, scored or offered as a candidate.
  (b) ``land_cover``: ``scenes.land_cover_arrays(<the run's seed>)``, 150 x 150 px, six bands, eight classes
  (90 fields of a warped Voronoi tessellation; cropland, grassland and shrubland alike; the noise levels of
  ``bench_scenes``' ``pixel_polygons`` scene), every pixel labelled.
  (c) ``regression``: scene (b)'s cube with a known quantity at every pixel, ``100 / (1 + exp(-12 (NDVI - 0.45)))``
  (a vegetation-cover-like value from 0 to 100, NDVI from the 842 and 665 nm bands): a non-linear function of the
  bands, so the model can learn it and its map is known.
- Start: 3 labelled pixels per class, drawn at random from the reference (seeded), the same for every strategy;
  for (c) 10 random pixels.
- Candidates: per seed, a random 5,000 of the reference pixels (``--candidates``; the job draws its candidates at
  random from the raster too), the same for every strategy and every round.
- Rounds: each strategy adds N pixels per round from the candidates (N = 20 for Indian Pines, 10 for (b) and (c));
  after each round the model is fitted again on all its labels, whose class or value the reference gives. The
  engine's rule runs 8 rounds (``--rounds``: 48 -> 208, 24 -> 104 and 10 -> 90 labels); the random strategies run
  16 (``--random-rounds``: up to 368, 184 and 170 labels), to measure how many labels they need to catch up.
- Model: engine probes from ``engine.probes.registry.PROBES`` with fixed settings, each in its own run of the
  rounds (``--probes``; default ``logistic_regression`` and ``svm``, both at the probes' defaults: C = 1,
  ``class_weight`` balanced, the SVM's RBF gamma 1 / bands; not the automatic choice), fitted on the pixels' band
  values, which the probe standardises with its training pixels' mean and std as it does in a model file. The map
  is the probe's ``predict`` (for the SVM the one-vs-one vote, as the engine maps), the probabilities the rule
  reads are those of ``predict(..., proba=True)``, as the job reads them. (c): the engine's
  ``random_forest_regressor`` (``engine.probes.regressors``, 100 trees, min 2 samples per leaf, seeded, one thread).
- Strategies (contenders), all from the same start labels and candidates:
  ``margin`` and ``entropy``: the engine's rule, through ``engine.jobs.suggest_labels.rank_candidates`` (the code
  the job runs): the model's probabilities at the candidates, candidates within ``spacing`` px of a label left out,
  greedy picks among the 10 N most uncertain, spread over feature space (the band values) and at least ``spacing``
  px apart on the map. ``tree spread`` (c): the standard deviation of the forest's trees at the candidates
  (``predict_spread``) as the uncertainty, in the same greedy spread (``suggest_labels._spread_picks``; the job
  itself suggests for classifiers only). ``random``: N candidates drawn uniformly among those not yet labelled.
  ``random spread``: the candidates in random order, each kept when it lies at least ``spacing`` px from every
  label and every earlier pick of the round, until N are kept. ``spacing`` is 3 px for Indian Pines and 5 px for
  (b) and (c) (the job's default of 10 px would cover most of a 145 px scene after a few rounds).
- Scores: the model's map at every reference pixel not used as a label (so each strategy's test set is the
  reference minus its own labels), against the reference: overall accuracy (OA) and macro F1 over the classes
  (``engine.assess.metrics.accuracy_figures``); for (c) R² against the known quantity. Mean ± std over seeds
  0 .. ``--seeds`` - 1 (default 5); each seed has its own cube or scene, start labels and candidates. The
  differences of the engine's rule from each random strategy are paired by seed: mean ± std, and the seeds where
  the rule scored higher.
- Labels saved: the label count at which a random strategy's mean curve first reaches the score that the rule's
  mean curve reaches at its final count (linear interpolation between the counts measured), minus the rule's final
  count (positive: the rule saves labels); "not reached" when the random curve stays below it up to its own last
  count, so how many it needs is not measured.

Run: ``PYTHONPATH=. <engine python> benchmarks/bench_active_learning.py [--seeds 5] [--probes logistic_regression svm]
[--scenes indian_pines land_cover regression]``: one thread (``--threads``), 3 to 5 minutes with 5 seeds on a
2-core machine (170 s at a load of 1.3, 291 s at 2.5), most of it logistic regression on Indian Pines's 200 bands.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO, markdown_table

DEFAULT_GT = next((p for p in (REPO.parent / "shared" / "data" / "hsi_ground_truth" / "Indian_pines_gt.mat",
                               REPO / "tests" / "data" / "hsi" / "Indian_pines_gt.mat") if p.exists()),
                  REPO / "tests" / "data" / "hsi" / "Indian_pines_gt.mat")
RULES = ("margin", "entropy")


@dataclass
class Scenario:
    """A scene and its rounds: what the simulation is given."""

    key: str
    title: str
    load: Callable[[int], tuple[np.ndarray, np.ndarray, list[str]]]  # seed -> cube (r, c, b), reference (r, c), names
    per_round: int
    rounds: int
    spacing: int
    start_per_class: int = 3


def indian_pines(gt_path: Path, n_bands: int = 200) -> Callable[[int], tuple[np.ndarray, np.ndarray, list[str]]]:
    """The loader of scene (a): the synthetic cube on the Indian Pines ground truth; -1 marks no reference."""
    from engine.io.hsi import read_mat_array, synthetic_cube

    gt = read_mat_array(gt_path).astype("int64")

    def load(seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        return synthetic_cube(gt, n_bands=n_bands, seed=seed), gt - 1, [str(k) for k in range(1, int(gt.max()) + 1)]

    return load


def land_cover(seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The loader of scene (b): ``scenes.land_cover_arrays``."""
    from scenes import land_cover_arrays

    return land_cover_arrays(seed)


def scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[float, float]:
    """Overall accuracy and macro F1 (the engine's metrics)."""
    from engine.assess.metrics import accuracy_figures, confusion_matrix

    figures = accuracy_figures(confusion_matrix(y_true, y_pred, n_classes), [str(c) for c in range(n_classes)])
    return float(figures["overall_accuracy"]), float(figures["macro_f1"])


def near(points: np.ndarray, to: np.ndarray, spacing: int) -> np.ndarray:
    """Which of ``points`` (m, 2: row, col) lie less than ``spacing`` px from any of ``to`` (k, 2)."""
    from scipy.spatial import cKDTree

    if not len(to):
        return np.zeros(len(points), dtype=bool)
    distance, _ = cKDTree(to).query(points, k=1)
    return distance < spacing


Curve = list[tuple[float, ...]]  # (labels, score, ...) after the start and after each round
#: A strategy: (the fitted model, the free candidates, the labels so far, its random generator) -> the new labels.
Picker = Callable[[Any, np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


def random_picks(free: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``random``: ``n`` of the free candidates, uniformly."""
    return rng.choice(free, min(n, len(free)), replace=False)


def random_spread_picks(free: np.ndarray, labels: np.ndarray, position: np.ndarray, n: int, spacing: int,
                        rng: np.random.Generator) -> np.ndarray:
    """``random spread``: free candidates in random order, kept when ``spacing`` px from the labels and the kept."""
    order = rng.permutation(free[~near(position[free], position[labels], spacing)])
    kept: list[int] = []
    for index in order:
        if len(kept) == n:
            break
        if not kept or not near(position[[index]], position[kept], spacing)[0]:
            kept.append(int(index))
    return np.asarray(kept, dtype="int64")


def run_rounds(start: np.ndarray, candidates: np.ndarray, rounds: int, fit_score: Callable[[np.ndarray], tuple[
        Any, tuple[float, ...]]], pickers: dict[str, Picker], seed: int, random_rounds: int) -> dict[str, Curve]:
    """Every strategy's rounds from the same start labels and candidates: its scores after each fit.

    The strategies named ``random...`` run ``random_rounds`` rounds (to measure how many labels they need), the
    others ``rounds``.
    """
    curves: dict[str, Curve] = {}
    for s, (name, pick) in enumerate(pickers.items()):
        labels, curve = start.copy(), []
        last = random_rounds if name.startswith("random") else rounds
        for round_ in range(last + 1):
            model, figures = fit_score(labels)
            curve.append((len(labels), *figures))
            if round_ == last:
                break
            free = candidates[~np.isin(candidates, labels)]
            labels = np.concatenate([labels, pick(model, free, labels, np.random.default_rng([seed, s, round_]))])
        curves[name] = curve
    return curves


def grid_positions(n_rows: int, n_cols: int) -> np.ndarray:
    """(row, col) of every pixel in raster order, shape (n_rows * n_cols, 2)."""
    rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    return np.c_[rows, cols]


def simulate(scenario: Scenario, seed: int, probe_name: str, n_candidates: int, random_rounds: int
             ) -> dict[str, Curve]:
    """Every strategy's rounds on one seed of a classification scene: (labels, OA, macro F1) after each fit."""
    from engine.jobs.suggest_labels import rank_candidates
    from engine.probes.registry import PROBES

    cube, reference, names = scenario.load(seed)
    n_rows, n_cols, n_bands = cube.shape
    pixels = cube.reshape(-1, n_bands).astype("float32")
    y_all = reference.ravel()
    ref = np.flatnonzero(y_all >= 0)  # the pixels the reference answers for
    position = grid_positions(n_rows, n_cols)
    n_classes, n, spacing = len(names), scenario.per_round, scenario.spacing
    rng = np.random.default_rng([seed, 0])
    start = np.concatenate([rng.choice(ref[y_all[ref] == k], scenario.start_per_class, replace=False)
                            for k in range(n_classes)])
    candidates = np.sort(rng.choice(ref, min(n_candidates, len(ref)), replace=False))

    def fit_score(labels: np.ndarray) -> tuple[Any, tuple[float, ...]]:
        probe = PROBES[probe_name]().fit(pixels[labels], y_all[labels], n_classes)
        test = np.setdiff1d(ref, labels)
        return probe, scores(y_all[test], probe.predict(pixels[test], proba=False)[0], n_classes)

    def rule(name: str) -> Picker:
        def pick(probe: Any, free: np.ndarray, labels: np.ndarray, _: np.random.Generator) -> np.ndarray:
            taken = near(position[free], position[labels], spacing)
            _, proba = probe.predict(pixels[free], proba=True)  # as the job predicts its candidates
            assert proba is not None
            return free[rank_candidates(proba, pixels[free], position[free, 0], position[free, 1], n, name, spacing,
                                        taken)]
        return pick

    pickers: dict[str, Picker] = {name: rule(name) for name in RULES}
    pickers["random"] = lambda _, free, labels, g: random_picks(free, n, g)
    pickers["random spread"] = lambda _, free, labels, g: random_spread_picks(free, labels, position, n, spacing, g)
    return run_rounds(start, candidates, scenario.rounds, fit_score, pickers, seed, random_rounds)


def quantity_scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The regression scene: ``scenes.land_cover_arrays(seed)``'s cube and a vegetation-cover-like quantity of it.

    The quantity (0-100) is ``100 / (1 + exp(-12 (NDVI - 0.45)))`` with NDVI from the 842 and 665 nm bands: a
    known, non-linear function of the band values, so its map is known at every pixel.
    """
    cube, _, _ = land_cover(seed)
    nir, red = cube[..., 3].astype("float64"), cube[..., 2].astype("float64")
    ndvi = (nir - red) / np.where(nir + red > 0, nir + red, 1)
    return cube, 100 / (1 + np.exp(-12 * (ndvi - 0.45)))


def simulate_regression(seed: int, n_candidates: int, start_n: int, per_round: int, rounds: int, spacing: int,
                        random_rounds: int) -> dict[str, Curve]:
    """Every strategy's rounds on one seed of the regression scene: (labels, R²) after each fit."""
    from engine.jobs.suggest_labels import _spread_picks
    from engine.probes.regressors import REGRESSORS

    cube, truth = quantity_scene(seed)
    n_rows, n_cols, n_bands = cube.shape
    pixels = cube.reshape(-1, n_bands).astype("float32")
    y_all = truth.ravel()
    every = np.arange(len(y_all))
    position = grid_positions(n_rows, n_cols)
    rng = np.random.default_rng([seed, 0])
    start = rng.choice(every, start_n, replace=False)
    candidates = np.sort(rng.choice(every, min(n_candidates, len(every)), replace=False))

    def fit_score(labels: np.ndarray) -> tuple[Any, tuple[float, ...]]:
        model = REGRESSORS["random_forest_regressor"](seed=seed)
        model.fit_threads = 1
        model.fit_values(pixels[labels], y_all[labels])
        test = np.setdiff1d(every, labels)
        error = y_all[test] - model.predict_value(pixels[test])
        return model, (1 - float((error**2).sum() / ((y_all[test] - y_all[test].mean()) ** 2).sum()),)

    def tree_spread(model: Any, free: np.ndarray, labels: np.ndarray, _: np.random.Generator) -> np.ndarray:
        uncertainty = model.predict_spread(pixels[free]).astype("float64")
        uncertainty[near(position[free], position[labels], spacing)] = -np.inf
        return free[_spread_picks(uncertainty, pixels[free], position[free, 0], position[free, 1], per_round,
                                  spacing)]

    pickers: dict[str, Picker] = {
        "tree spread": tree_spread,
        "random": lambda _, free, labels, g: random_picks(free, per_round, g),
        "random spread": lambda _, free, labels, g: random_spread_picks(free, labels, position, per_round, spacing, g),
    }
    return run_rounds(start, candidates, rounds, fit_score, pickers, seed, random_rounds)


def mean_std(values: np.ndarray, scale: float = 100.0, signed: bool = False, decimals: int = 1) -> str:
    """``mean ± std`` of ``values`` times ``scale``."""
    sign = "+" if signed else ""
    return f"{scale * values.mean():{sign}.{decimals}f} ± {scale * values.std():.{decimals}f}"


def labels_needed(counts: np.ndarray, curve: np.ndarray, target: float) -> float | None:
    """The label count at which ``curve`` (a mean score per count) first reaches ``target``; ``None`` if never."""
    above = np.flatnonzero(curve >= target)
    if not len(above):
        return None
    i = int(above[0])
    if i == 0:
        return float(counts[0])
    c0, c1, m0, m1 = counts[i - 1], counts[i], curve[i - 1], curve[i]
    return float(c0 + (target - m0) / (m1 - m0) * (c1 - c0))


#: A score's name in the tables, the factor it is shown with and its decimals.
Score = tuple[str, float, int]
CLASS_SCORES: list[Score] = [("overall accuracy (%)", 100.0, 1), ("macro F1 (%)", 100.0, 1)]


def report(title: str, runs: list[dict[str, Curve]], rules: list[str], score_specs: list[Score], per_round: int,
           ) -> None:
    """Print a scene's tables: scores per label count, differences paired by seed, labels saved.

    ``rules`` are the engine's strategies (the first is set against each random one in the tables); every other
    strategy of ``runs`` is a random one, whose curves may go on past the rules' final count. Every score is better
    when higher.
    """
    strategies = list(runs[0])
    randoms = [s for s in strategies if s not in rules]
    data = {s: np.array([run[s] for run in runs]) for s in strategies}  # seeds x fits x (labels, scores...)
    first = rules[0]
    longest = max(strategies, key=lambda s: data[s].shape[1])
    counts = data[longest][0, :, 0].astype(int)
    final = data[first].shape[1] - 1  # the rules' last fit
    for s in strategies:
        planned = counts[0] + per_round * np.arange(data[s].shape[1])
        if not (data[s][:, :, 0] == planned).all():
            print(f"note: {s} did not always get {per_round} new labels per round (candidates ran out): its final "
                  f"counts {data[s][:, -1, 0].astype(int).tolist()}")
    print(f"\n## {title}\n")
    for column, (score, scale, decimals) in enumerate(score_specs, start=1):
        rows = []
        for r, count in enumerate(counts):
            row = [str(count)]
            row += [mean_std(data[s][:, r, column], scale, decimals=decimals) if r < data[s].shape[1] else "—"
                    for s in strategies]
            for other in randoms:
                if r > final:
                    row.append("—")
                    continue
                diff = data[first][:, r, column] - data[other][:, r, column]
                row.append(f"{mean_std(diff, scale, True, decimals)} ({int((diff > 0).sum())}/{len(diff)})")
            rows.append(row)
        print(f"{score}, mean ± std over seeds; the columns '{first} − ...': the difference paired by seed (in "
              f"brackets: the seeds where {first} is higher); the random strategies go on past the rules' "
              f"{counts[final]} labels to measure the labels they need\n")
        print(markdown_table(["labels", *strategies, *(f"{first} − {o}" for o in randoms)], rows))
        print()
    rows = []
    for rule in rules:
        for column, (score, scale, decimals) in enumerate(score_specs, start=1):
            target = data[rule][:, -1, column].mean()
            row = [rule, score, f"{scale * target:.{decimals}f} at {counts[final]}"]
            for other in randoms:
                curve = data[other][:, :, column].mean(axis=0)
                needed = labels_needed(counts[:len(curve)], curve, target)
                row.append(f"not reached by {counts[len(curve) - 1]} (best {scale * curve.max():.{decimals}f})"
                           if needed is None else f"{needed:.0f} ({needed - counts[final]:+.0f})")
            rows.append(row)
    print("labels saved: the labels each random strategy needs (its mean curve, interpolated) to reach the rule's "
          "mean score at the rule's final count; in brackets that number minus the rule's count (positive: the rule "
          "saves labels)\n")
    print(markdown_table(["rule", "score", "rule's mean at labels", *(f"{o} needs" for o in randoms)], rows))


def main() -> None:
    """Simulate the rounds on every scene and seed, and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. SEEDS-1")
    parser.add_argument("--probes", nargs="+", default=["logistic_regression", "svm"],
                        help="engine probes (PROBES) at their defaults, each run on its own")
    parser.add_argument("--scenes", nargs="+", default=["indian_pines", "land_cover", "regression"],
                        choices=["indian_pines", "land_cover", "regression"])
    parser.add_argument("--gt", type=Path, default=DEFAULT_GT, help="the Indian Pines ground truth (.mat)")
    parser.add_argument("--candidates", type=int, default=5000, help="candidate pixels per seed")
    parser.add_argument("--rounds", type=int, default=8, help="rounds of the engine's rules")
    parser.add_argument("--random-rounds", type=int, default=16,
                        help="rounds of the random strategies (more, to measure the labels they need)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads")
    args = parser.parse_args()
    if args.random_rounds < args.rounds:
        parser.error("--random-rounds must be at least --rounds")
    from threadpoolctl import threadpool_limits

    from engine.probes.registry import PROBES

    unknown = [p for p in args.probes if p not in PROBES]
    if unknown:
        raise SystemExit(f"unknown probe(s) {', '.join(unknown)}; choose among {', '.join(PROBES)}")
    threadpool_limits(args.threads)
    print(f"1-min load average at the start: {os.getloadavg()[0]:.2f}; {args.threads} thread(s); seeds "
          f"0..{args.seeds - 1}; {args.candidates} candidates; {args.rounds} rounds, random {args.random_rounds}")
    scenarios = {
        "indian_pines": lambda: Scenario("indian_pines", f"(a) Indian Pines ground truth ({args.gt.name}), synthetic "
                                         "200-band cube", indian_pines(args.gt), 20, args.rounds, 3),
        "land_cover": lambda: Scenario("land_cover", "(b) synthetic land cover, 150 x 150 px, 6 bands, 8 classes",
                                       land_cover, 10, args.rounds, 5),
    }
    total = time.perf_counter()
    for key in args.scenes:
        if key == "regression":
            start, runs = time.perf_counter(), []
            for seed in range(args.seeds):
                runs.append(simulate_regression(seed, args.candidates, 10, 10, args.rounds, 5, args.random_rounds))
                final = {s: f"{c[args.rounds][1]:.3f}" for s, c in runs[-1].items()}
                print(f"regression, seed {seed}: R² after {args.rounds} rounds {final} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
            report(f"(c) regression: vegetation-cover-like quantity on the land-cover scene, random forest regressor, "
                   f"{args.seeds} seeds, 10 labels a round, spacing 5 px ({time.perf_counter() - start:.0f} s)",
                   runs, ["tree spread"], [("R²", 1.0, 3)], 10)
            continue
        scenario = scenarios[key]()
        for probe in args.probes:
            start, runs = time.perf_counter(), []
            for seed in range(args.seeds):
                runs.append(simulate(scenario, seed, probe, args.candidates, args.random_rounds))
                final = {s: f"{100 * c[args.rounds][1]:.1f}" for s, c in runs[-1].items()}
                print(f"{key}, {probe}, seed {seed}: OA after {args.rounds} rounds {final} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
            report(f"{scenario.title}: {probe}, {args.seeds} seeds, {scenario.per_round} labels a round, spacing "
                   f"{scenario.spacing} px ({time.perf_counter() - start:.0f} s)", runs, list(RULES), CLASS_SCORES,
                   scenario.per_round)
    print(f"\ntotal {time.perf_counter() - total:.0f} s")


if __name__ == "__main__":
    main()
