"""The automatic method: a probe and its settings chosen by cross-validation on the training polygons.

``METHOD`` automatic (``method="auto"``) scores a small, documented grid of candidates (:data:`GRID`, each with
classes weighted or not) on the training samples only, and keeps the best under an explicit objective
(:data:`OBJECTIVES`). The folds never split a polygon; when polygons are tiny or touch each other (ground-truth
rasters turned into polygons, one pixel each), they are grouped into spatial blocks instead, so that a candidate is
never scored on the neighbours of its own training pixels (which would reward the model that overfits most).

The cost is bounded by successive halving: every candidate is scored on a subsample (at most
:data:`FIRST_ROUND_PER_CLASS` pixels per class, spread over the class's polygons; the random forest at
:data:`SCORING_TREES` trees in both rounds, XGBoost at as many boosting rounds in the first); only the best
:data:`FINALISTS` and the preferred candidate (the RBF SVM; the logistic regression on many features,
:data:`HIGH_DIMENSIONAL`) are scored again, on a larger one (:data:`FINAL_ROUND_PER_CLASS`), with
:data:`FINAL_REPEATS` k-fold splits drawn anew and pooled (on a few dozen polygons, which polygons share a fold
moves a score by more than the gaps between candidates). Every fold of every candidate of a round is fitted on one
pool of threads, one core each (:mod:`joblib`, as scikit-learn's ``cross_validate`` does). Scores on a subsample
capped per class are weighted back to the classes' real shares (otherwise an overall accuracy measured there would
and test pixels of a class that a fold's training side lacks (a class with a single polygon) are not scored in that
fold. The winner is the candidate listed first (:data:`GRID`'s order of preference) among those that trail the best
by no more than one standard error. The gap is measured fold by fold (all candidates of a round share their folds,
and the folds differ in difficulty far more than the candidates do), with the standard error corrected for folds
that share training samples (Nadeau and Bengio 2003). So a candidate that is consistently better wins even by a
little, while a gap that comes and goes with the folds is noise: choosing the noisiest maximum among many candidates
would overfit the choice itself (the "one standard error" rule of Breiman et al. 1984, applied to a preference order
instead of model size).

The same mechanism chooses the class weighting of a single method (``class_weight="auto"``): the method's default
settings with and without inverse-frequency class weights.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.devices import cpu_threads
from ..core.errors import InputError, MissingDependencyError
from ..core.feedback import Feedback
from ..probes.base import CLASS_WEIGHTS, Probe
from ..probes.registry import PROBES, get_probe
from ..samples.validation import cap_per_class, make_folds
from .metrics import accuracy_figures, confusion_matrix

logger = logging.getLogger(__name__)

AUTO = "auto"
#: What the automatic choice maximises.
OBJECTIVES = {
    "overall_accuracy": "overall accuracy (the share of pixels, and so of the map's area, classified correctly)",
    "balanced_accuracy": "balanced accuracy (the mean of the classes' producer's accuracies: rare classes count "
    "as much as common ones)",
    "macro_f1": "macro F1 (the mean F1 of the classes: rare classes count as much as common ones)",
}
DEFAULT_OBJECTIVE = "overall_accuracy"
#: Class weighting: chosen by cross-validation, or fixed.
CLASS_WEIGHT_CHOICES = (AUTO, *CLASS_WEIGHTS)

#: The settings tried for each method. Their order is the order of preference when candidates cannot be told apart
#: (:func:`choose`): the RBF SVM first, a robust default on many sensors (Mountrakis et al. 2011), then the linear
#: model, the tree ensembles and k-NN; each with classes balanced first. Every probe's own defaults are in the grid,
#: so the automatic choice can always fall back on any single method as it is. This order decides whenever cross-
#: validation on a few dozen polygons cannot separate the candidates, which is often. Two other orders were measured
#: with ``benchmarks/bench_scenes.py`` (5 splits, 7 scenes; mean held-out overall accuracy): simplest first (logistic
#: regression from C = 0.1, then the SVM from C = 1; unweighted first) met the target on 4 scenes as this order does,
#: but lost 0.10 on the Landsat 7 sample (0.786 against 0.887) and 0.08 on one-pixel polygons; this order with
#: unweighted first lost 0.12 on the Landsat 7 sample (0.772) for at most 0.011 gained elsewhere (5 scenes run).
#: Why the preference matters on that sample, and why no rule that trusts the scores more has kept it (measured with
#: the candidates' inner scores beside their held-out ones, 5 splits): its class ``urban`` has two polygons (57 and
#: 8 px); when the split holds out the large one, every model learns urban from 8 pixels, and the held-out accuracy
#: hinges on that class. The inner cross-validation cannot score a class that has a single training polygon, so it
#: scores the random forest and the balanced SVM alike (0.910 and 0.904) while held out they reach 0.680 and 0.894.
#: Scoring such a class on the two halves of its polygon (trained on one, tested on the other) was measured in stop
#: 29 with ``bench_scenes.py --choice-seeds 3`` and not kept: Sentinel-2 0.904 -> 0.913 and this sample 0.868 ->
#: 0.872 on average, but on the split of ``make demo`` (urban learnt from its 57 px polygon, the 8 px one held out)
#: it chose the unweighted SVM (held out 0.795) over the balanced one (0.939): halves of one polygon reward the
#: model that fits that polygon tightly, while a new polygon needs the class stretched.
GRID: dict[str, list[dict[str, Any]]] = {
    "svm": [{"c": 1.0}, {"c": 10.0}, {"c": 100.0}],
    "logistic_regression": [{"c": 1.0}, {"c": 0.1}, {"c": 10.0}],
    "random_forest": [{}],
    "xgboost": [{}],
    "knn": [{}],
}
#: Features above which the linear model comes first in the order of preference, before the RBF SVM: hyperspectral
#: cubes and embedding rasters (64 to 128 dimensions, made for linear probes). With many correlated features and few
#: polygons a linear model generalises where an RBF kernel or trees overfit (the Hughes phenomenon; the scaled
#: logistic regression won the 224-band trap scene of issue 15), and the inner cross-validation rarely separates them.
#: Measured with ``bench_scenes.py`` (5 splits): on the 224-band scene the automatic method's held-out overall
#: accuracy went from 0.740 (the SVM preferred) to 0.829 (the best baseline, a scaled logistic regression: 0.821);
#: the 240-band scene keeps 0.812; the scenes of 6 to 8 bands do not reach this rule.
HIGH_DIMENSIONAL = 50
#: Share of the training pixels above which one class dominates: with the objective overall accuracy, each setting's
#: unweighted candidate then comes before its balanced one in the order of preference. Inverse-frequency weights
#: count a rare-class pixel 10 times and more against the dominant class's; that raises the rare classes and lowers
#: the map's overall accuracy, which is what the objective asks for (Olofsson et al. 2014 correct the areas either
#: way). Measured with ``bench_scenes.py`` (5 splits) on the scene where one class covers 78 %: held-out overall
#: accuracy 0.886 -> 0.897 (best baseline 0.918: still short); no other scene there has such a class.
DOMINANT_SHARE = 0.75
#: Methods whose votes take no class weights.
UNWEIGHTED_METHODS = ("knn",)
#: Tree ensembles, whose cost grows with their number of trees (boosting rounds for XGBoost).
TREE_METHODS = ("random_forest", "xgboost")
#: Trees of the random forests while they are scored, in both rounds (the model then fitted has its default 100):
#: a forest's accuracy is close to its plateau at a few dozen trees (Probst and Boulesteix 2017), so the score is at
#: most slightly pessimistic, and the forests' folds cost a third. Measured with ``benchmarks/bench_scenes.py``
#: (7 scenes, 5 splits): the finalists scored with 30, 50 or 100 trees gave the same mean held-out overall accuracy
#: on 6 scenes and 0.659 to 0.662 on the seventh; ``train_classifier`` on the Landsat 7 sample took 3.8 s with 100,
#: 2.6 s with 50 and 2.2 s with 30 (medians of 3). XGBoost's boosting rounds are stopped at this number in the first
#: round only, which just prunes: 30 rounds at learning rate 0.3 are another model than its 100, so a finalist is
#: scored with all of them (cheap: about 30 ms a fit on the sample).
SCORING_TREES = 30
#: Ensembles scored with :data:`SCORING_TREES` trees in the second round too.
FOREST_METHODS = ("random_forest",)
#: Samples per class in the first round, where every candidate is scored. Scoring the whole training set instead
#: (up to 4,000 pixels) was measured with ``bench_scenes.py --choice-seeds 3`` (5 scenes): no scene gained, and the
#: scene where one class covers 78 % lost 0.014 (0.884 against 0.898), with a wider spread between choice seeds.
FIRST_ROUND_PER_CLASS = 200
#: Samples per class in the second round, where the finalists are scored again.
FINAL_ROUND_PER_CLASS = 2000
#: Candidates kept for the second round.
FINALISTS = 5
#: Times the second round draws its folds anew (pooled): which polygons share a fold moves a score by more than
#: the gaps between candidates on a few dozen polygons. More repeats do not help the choice: with every candidate
#: scored on 6 repeats (30 folds) instead of 2, on the splits of ``benchmarks/bench_scenes.py`` (5 scenes x 5 splits:
#: the Landsat 7 sample, Sentinel-2, empty bands, mixed files, one dominant class), this rule, the plain argmax and a
#: choice among each method's best setting each met the target on at most 2 of the 5 scenes, as with 2 repeats: the
#: inner scores disagree with the held-out polygons by more than their fold-to-fold noise (Spearman correlation of the
#: candidates' inner and held-out accuracies per split: -0.29 to 0.45 on the Landsat 7 sample, 0.13 to 0.69 with one
#: class over 75 %; measured in stop 28 with a throwaway script, not kept).
FINAL_REPEATS = 2
#: Folds of the inner cross-validation.
N_FOLDS = 5
#: Polygons of at most this many sampled pixels (median) are "tiny": their neighbours would leak into the folds.
TINY_POLYGON_PIXELS = 4
#: Share of polygons touching a polygon of another id above which folds are made of spatial blocks.
TOUCHING_SHARE = 0.5


@dataclass(frozen=True)
class Candidate:
    """A probe, its settings and its class weighting."""

    method: str
    params: tuple[tuple[str, Any], ...] = ()
    class_weight: str = "balanced"

    def build(self, trees: int | None = None, fit_threads: int | None = None) -> Probe:
        """A fresh, unfitted probe (a tree ensemble with ``trees`` trees, if given; fitting on ``fit_threads``)."""
        probe_class = get_probe(self.method)
        kwargs = dict(self.params)
        if self.method not in UNWEIGHTED_METHODS:
            kwargs["class_weight"] = self.class_weight
        if trees is not None and self.method in TREE_METHODS:
            kwargs["n_estimators"] = trees
        probe = probe_class(**kwargs)
        probe.fit_threads = fit_threads
        return probe

    @property
    def name(self) -> str:
        """A short name for reports, e.g. ``svm (C=10), unweighted``."""
        settings = ", ".join(f"{'C' if k == 'c' else k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in self.params)
        weighting = "" if self.method in UNWEIGHTED_METHODS else (
            ", classes balanced" if self.class_weight == "balanced" else ", unweighted")
        return f"{self.method}{f' ({settings})' if settings else ''}{weighting}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able description."""
        return {"name": self.name, "method": self.method, "params": dict(self.params),
                "class_weight": "none" if self.method in UNWEIGHTED_METHODS else self.class_weight}


@dataclass
class Choice:
    """The chosen candidate and the report of how it was chosen."""

    candidate: Candidate
    report: dict[str, Any] = field(default_factory=dict)


def check_options(method: str, objective: str, class_weight: str) -> None:
    """Refuse an unknown method, objective or class weighting, naming the choices.

    Raises:
        InputError: for an unknown value.

    """
    if method != AUTO and method not in PROBES:
        raise InputError(f"Unknown method {method!r}; choose one of: {AUTO}, {', '.join(PROBES)}.")
    if objective not in OBJECTIVES:
        raise InputError(f"Unknown objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}.")
    if class_weight not in CLASS_WEIGHT_CHOICES:
        raise InputError(f"Unknown class weighting {class_weight!r}; choose one of: "
                         f"{', '.join(CLASS_WEIGHT_CHOICES)}.")


def candidates(method: str, class_weight: str, n_features: int | None = None,
               unweighted_first: bool = False) -> list[Candidate]:
    """The candidates for ``method`` (a probe name or ``auto``) and ``class_weight`` (``auto`` tries both).

    Their order is the order of preference (see :data:`GRID`); with more than :data:`HIGH_DIMENSIONAL` features the
    logistic regression comes before the SVM; ``unweighted_first`` puts each setting's unweighted candidate before
    its balanced one (:data:`DOMINANT_SHARE`).
    """
    methods = list(GRID) if method == AUTO else [method]
    if method == AUTO and n_features is not None and n_features > HIGH_DIMENSIONAL:
        methods.remove("logistic_regression")
        methods.insert(0, "logistic_regression")
    weights = CLASS_WEIGHTS if class_weight == AUTO else (class_weight,)
    if unweighted_first:
        weights = tuple(sorted(weights, key=lambda w: w != "none"))
    found: list[Candidate] = []
    for name in methods:
        settings = GRID.get(name, [{}]) if method == AUTO else [{}]  # a single method keeps its defaults
        for params in settings:
            for weight in (("none",) if name in UNWEIGHTED_METHODS else weights):
                candidate = Candidate(name, tuple(sorted(params.items())), weight)
                if candidate not in found:
                    found.append(candidate)
    return found


def objective_score(cm: np.ndarray, objective: str) -> float:
    """The objective from a confusion matrix, as :func:`.metrics.accuracy_figures` computes it (0 if empty).

    Class means (balanced accuracy, macro F1) are taken over the classes present in the reference.
    """
    return _figures(cm)[objective] or 0.0


def _figures(cm: np.ndarray) -> dict[str, Any]:
    """:func:`engine.assess.metrics.accuracy_figures` with the class indices as names."""
    return accuracy_figures(cm, [str(i) for i in range(len(cm))])


def fold_scheme(groups: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[str, str]:
    """``group_kfold`` (whole polygons) or ``spatial_blocks`` when polygons are tiny or touch; and why."""
    _, sizes = np.unique(groups, return_counts=True)
    median = float(np.median(sizes))
    touching = touching_share(groups, rows, cols)
    if median <= TINY_POLYGON_PIXELS or touching >= TOUCHING_SHARE:
        what = (f"the polygons are tiny (median {median:g} px)" if median <= TINY_POLYGON_PIXELS
                else f"{touching:.0%} of the polygons touch another one")
        return "spatial_blocks", (f"Folds of spatial blocks, not of polygons: {what}, so a candidate scored on "
                                  "polygon folds would be tested on the neighbours of its training pixels.")
    return "group_kfold", (f"Folds of whole polygons (median {median:g} px each, {touching:.0%} touching another): "
                           "the pixels of one polygon are never on both sides.")


def touching_share(groups: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    """Share of polygons with a sampled pixel next to (4-neighbourhood) a sampled pixel of another polygon."""
    if len(groups) == 0:
        return 0.0
    rows, cols = rows.astype("int64") - rows.min(), cols.astype("int64") - cols.min()
    width = int(cols.max()) + 2
    keys = rows * width + cols
    order = np.argsort(keys)
    sorted_keys, sorted_groups = keys[order], groups[order]
    touching: set[int] = set()
    for step in (1, width):  # the pixel on the right and the one below
        where = np.searchsorted(sorted_keys, keys + step)
        found = where < len(sorted_keys)
        found[found] = sorted_keys[where[found]] == keys[found] + step
        other = np.zeros(len(keys), dtype=bool)
        other[found] = sorted_groups[where[found]] != groups[found]
        touching.update(groups[other].tolist())
        touching.update(sorted_groups[where[other]].tolist())
    return len(touching) / len(np.unique(groups))


def _folds(y: np.ndarray, groups: np.ndarray, rows: np.ndarray, cols: np.ndarray, scheme: str,
           seed: int) -> list[np.ndarray]:
    """Folds of ``scheme`` (whole polygons if too few blocks hold labels) whose training side has two classes."""
    with warnings.catch_warnings():  # a class with fewer polygons than folds is expected here, and harmless
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        folds = make_folds(scheme, y, groups, rows, cols, n_folds=N_FOLDS, seed=seed)
        if len(folds) < 2 and scheme != "group_kfold":  # too few blocks hold labels: whole polygons instead
            folds = make_folds("group_kfold", y, groups, rows, cols, n_folds=N_FOLDS, seed=seed)
    return [test for test in folds if len(np.unique(y[~test])) >= 2]


def _workers(n_tasks: int) -> int:
    """Folds fitted at once: one per core (``LANDPROBE_THREADS`` caps it), never more than there are to fit."""
    return max(1, min(n_tasks, cpu_threads()))


#: Errors that mean a candidate cannot be fitted on these samples (it is reported as failed, not raised).
FIT_ERRORS = (ValueError, ArithmeticError, MemoryError, MissingDependencyError)


def _fold_matrix(candidate: Candidate, x: np.ndarray, y: np.ndarray, test: np.ndarray, n_classes: int,
                 class_weights: np.ndarray | None, trees: int | None, threads: int, feedback: Feedback
                 ) -> tuple[np.ndarray | None, float]:
    """One fold: fit on the rest, the confusion matrix of the learnable test pixels (``None`` if none); seconds.

    ``threads`` is the number of fold threads at work: above 1, the probe fits and predicts on one core.
    """
    feedback.check_cancel()
    start = time.perf_counter()
    learnable = test & np.isin(y, np.unique(y[~test]))
    if not learnable.any():  # only classes this fold cannot learn: nothing to score
        return None, 0.0
    probe = candidate.build(trees, 1 if threads > 1 else None).fit(x[~test], y[~test], n_classes)
    probe.set_threads(1 if threads > 1 else cpu_threads())
    cm = confusion_matrix(y[learnable], probe.predict(x[learnable], proba=False)[0], n_classes).astype(float)
    return (cm if class_weights is None else cm * class_weights[:, None]), time.perf_counter() - start


def _summary(candidate: Candidate, matrices: list[np.ndarray | None], n_classes: int, objective: str,
             seconds: float) -> dict[str, Any]:
    """A candidate's row: its score pooled over the folds' matrices, the spread of the fold scores, its seconds."""
    pooled = np.zeros((n_classes, n_classes))
    fold_scores = []
    for cm in matrices:
        if cm is not None:
            pooled += cm
            fold_scores.append(objective_score(cm, objective))
    figures = _figures(pooled)
    return {**candidate.as_dict(), "score": figures[objective] or 0.0,
            "score_std": float(np.std(fold_scores, ddof=1)) if len(fold_scores) > 1 else 0.0,
            "fold_scores": fold_scores, "overall_accuracy": figures["overall_accuracy"] or 0.0,
            "balanced_accuracy": figures["balanced_accuracy"] or 0.0,
            "seconds": round(seconds, 3), "status": "scored", "note": None}


def score_pool(pool: list[Candidate], x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], n_classes: int,
               objective: str, feedback: Feedback, class_weights: np.ndarray | None = None,
               trees: int | None = None, tree_methods: tuple[str, ...] = TREE_METHODS) -> list[dict[str, Any]]:
    """Cross-validated scores of every candidate of ``pool``: pooled over the folds, with the fold scores' spread.

    Test pixels of a class that the fold's training side lacks are not scored: no candidate can learn them there.
    ``class_weights`` (one per class) scale the rows of every confusion matrix: with a subsample capped per class,
    ``full count / subsample count`` gives back the scores at the classes' real shares (an overall accuracy measured
    on a class-balanced subsample would otherwise be a balanced accuracy, and favour weighted classes). ``folds``
    may hold several repeats of a k-fold split: the pooled matrix sums them. ``trees`` stops the ensembles of
    ``tree_methods`` early. A candidate that cannot be fitted here (:data:`FIT_ERRORS`) gets a ``failed`` row.

    Every fold of every candidate goes to one pool of threads, one core each (a pool per candidate left a core idle
    at the end of each): scikit-learn's ``Parallel`` (joblib's, with the library's configuration passed on to the
    threads: with joblib's own, the forests fitted inside the fold threads warned once per tree that their
    configuration could not be propagated), with no BLAS threads on top. A row's ``seconds`` are its folds' fit
    times summed (more than the wall time when folds run side by side).
    """
    # Lazy: only the parallel folds need them.
    from sklearn.utils.parallel import Parallel, delayed
    from threadpoolctl import threadpool_limits

    tasks = [(candidate, test) for candidate in pool for test in folds]
    workers = _workers(len(tasks))

    def task(i: int) -> tuple[int, Any]:
        candidate, test = tasks[i]
        stop = trees if candidate.method in tree_methods else None
        try:
            return i, _fold_matrix(candidate, x, y, test, n_classes, class_weights, stop, workers, feedback)
        except FIT_ERRORS as exc:  # this candidate cannot be fitted here
            return i, exc

    outcomes: list[Any] = [None] * len(tasks)
    message = f"Cross-validating {len(pool)} candidate{'s' if len(pool) > 1 else ''}, {len(folds)} folds each"
    with threadpool_limits(1 if workers > 1 else None):
        parallel = Parallel(n_jobs=workers, prefer="threads", return_as="generator_unordered")
        for done, (i, outcome) in enumerate(parallel(delayed(task)(i) for i in range(len(tasks)))):
            outcomes[i] = outcome
            # One text per call, the bar moving per fold: QGIS logs every new progress text.
            feedback.progress((done + 1) / len(tasks), message)
    rows = []
    for c, candidate in enumerate(pool):
        mine = outcomes[c * len(folds):(c + 1) * len(folds)]
        failure = next((m for m in mine if isinstance(m, BaseException)), None)
        if failure is not None:
            logger.info("Candidate %s failed: %s", candidate.name, failure)
            rows.append({**candidate.as_dict(), "score": None, "score_std": None, "seconds": 0.0,
                         "status": "failed", "note": str(failure)})
        else:
            rows.append(_summary(candidate, [cm for cm, _ in mine], n_classes, objective, sum(t for _, t in mine)))
    return rows


def _round(pool: list[Candidate], keep: np.ndarray, x: np.ndarray, y: np.ndarray, groups: np.ndarray,
           rows: np.ndarray, cols: np.ndarray, n_classes: int, objective: str, scheme: str, seed: int,
           feedback: Feedback, repeats: int = 1, trees: int | None = None,
           tree_methods: tuple[str, ...] = TREE_METHODS) -> tuple[list[dict[str, Any]], int]:
    """Score every candidate of ``pool`` on the samples ``keep`` (``repeats`` k-fold splits drawn anew, pooled).

    ``trees`` stops the ensembles of ``tree_methods`` early (see :func:`score_pool`).

    Returns the rows and the number of folds of one split.
    """
    folds: list[np.ndarray] = []
    n_folds = 0
    for r in range(repeats):
        split = _folds(y[keep], groups[keep], rows[keep], cols[keep], scheme, seed + 1000 * r)
        if len(split) < 2:
            return [], 0
        folds += split
        n_folds = len(split)
    full, kept = np.bincount(y, minlength=n_classes), np.bincount(y[keep], minlength=n_classes)
    weights = np.divide(full, kept, out=np.ones(n_classes), where=kept > 0) if len(keep) < len(y) else None
    results = score_pool(pool, x[keep], y[keep], folds, n_classes, objective, feedback, weights, trees, tree_methods)
    feedback.progress(1.0, "Cross-validation done")
    return results, n_folds


def choose(x: np.ndarray, y: np.ndarray, groups: np.ndarray, rows: np.ndarray, cols: np.ndarray, n_classes: int,
           method: str = AUTO, objective: str = DEFAULT_OBJECTIVE, class_weight: str = AUTO, seed: int = 0,
           feedback: Feedback | None = None) -> Choice:
    """Choose a candidate by cross-validation on these samples (the training polygons: never the held-out ones).

    Returns:
        The winner and a report: the objective, the fold scheme and why, every candidate with its score, spread,
        time and status, the winner and why it won, and the class weighting used and why.

    Raises:
        InputError: for an unknown method, objective or class weighting.
        CancelledError: when the feedback is cancelled.

    """
    check_options(method, objective, class_weight)
    feedback = feedback or Feedback()
    start = time.perf_counter()
    shares = np.bincount(y, minlength=n_classes) / max(len(y), 1)
    dominated = objective == "overall_accuracy" and float(shares.max()) > DOMINANT_SHARE
    pool = candidates(method, class_weight, x.shape[1] if x.ndim == 2 else None, dominated)
    base = {"objective": objective, "objective_label": OBJECTIVES[objective], "method": method,
            "class_weight_option": class_weight, "n_samples": len(y), "grid": {k: v for k, v in GRID.items()
                                                                                   if method in (AUTO, k)}}
    if len(pool) == 1:
        return Choice(pool[0], {**base, "candidates": [{**pool[0].as_dict(), "status": "only candidate"}],
                                "winner": pool[0].name, "reason": "The only candidate for these options.",
                                "scheme": None, "scheme_reason": None, "n_folds": 0, "seconds": 0.0})
    scheme, scheme_reason = fold_scheme(groups, rows, cols)
    small = cap_per_class(y, groups, FIRST_ROUND_PER_CLASS, seed)
    large = cap_per_class(y, groups, FINAL_ROUND_PER_CLASS, seed)
    results, n_folds = _round(pool, small, x, y, groups, rows, cols, n_classes, objective, scheme, seed,
                              feedback.stage(0.0, 0.5), trees=SCORING_TREES)
    if n_folds:
        ranked = sorted((r for r in results if r["score"] is not None), key=lambda r: -r["score"])
        names = {r["name"] for r in ranked[:FINALISTS]} | {pool[0].name}  # the preferred one stays in
        finalists = [c for c in pool if c.name in names]
        for r in results:
            if r["status"] == "scored" and r["name"] not in names:
                early = f" with {SCORING_TREES} trees" if r["method"] in TREE_METHODS else ""
                r.update(status="pruned", note=f"{_fmt(r['score'], objective)} on {len(small)} samples{early}, "
                                               f"not among the best {FINALISTS}")
        final, n_final = _round(finalists, large, x, y, groups, rows, cols, n_classes, objective, scheme,
                                seed + 1, feedback.stage(0.5, 1.0), FINAL_REPEATS, SCORING_TREES,
                                FOREST_METHODS)
        n_folds = n_final or n_folds
        by_name = {r["name"]: r for r in results} | {r["name"]: r for r in final}
        results = [by_name[r["name"]] for r in results]
    scored = [r for r in results if r["status"] == "scored"]
    if not n_folds or not scored:
        fallback = pool[0]  # the first in the order of preference, with the weighting asked for
        why = ("no candidate could be cross-validated" if n_folds else
               f"too few polygons ({len(np.unique(groups))}) to make {N_FOLDS} folds")
        logger.warning("The method could not be chosen by cross-validation (%s): using %s.", why, fallback.name)
        return Choice(fallback, {**base, "candidates": results, "winner": fallback.name, "scheme": scheme,
                                 "scheme_reason": scheme_reason, "n_folds": n_folds,
                                 "reason": f"Not chosen by the data: {why}; {fallback.name} is the fallback.",
                                 "seconds": round(time.perf_counter() - start, 2)})
    best = max(scored, key=lambda r: r["score"])
    for r in scored:
        r["gap"], r["gap_se"] = _paired_gap(best, r, n_folds)
    eligible = [r for r in scored if r is best or r["gap"] <= r["gap_se"]]  # in the order of preference
    tolerance = eligible[0]["gap_se"]
    ranked = sorted(scored, key=lambda r: -r["score"])
    winner = next(c for c in pool if c.name == eligible[0]["name"])
    report = {**base, "candidates": results, "winner": winner.name, "scheme": scheme, "scheme_reason": scheme_reason,
              "n_folds": n_folds, "reason": _why(eligible[0], ranked, objective, n_folds, tolerance),
              "tolerance": tolerance,
              "class_weight": _weighting(eligible[0], ranked, y, n_classes, class_weight, objective),
              "seconds": round(time.perf_counter() - start, 2)}
    logger.info("Chosen by %d-fold cross-validation on %d training samples (%s): %s.", n_folds, len(large),
                objective.replace("_", " "), report["reason"])
    return Choice(winner, report)


def _paired_gap(best: dict[str, Any], other: dict[str, Any], n_folds: int = N_FOLDS) -> tuple[float, float]:
    """How far ``other`` trails ``best``, fold by fold: the mean difference and its standard error.

    Both were scored on the same folds, and the folds differ in difficulty far more than the candidates do; the
    differences on each fold cancel that out (a paired comparison). The standard error is the corrected resampled
    one (Nadeau and Bengio 2003; Bouckaert and Frank 2004), as cross-validation folds overlap in training samples.
    """
    a, b = np.asarray(best["fold_scores"]), np.asarray(other["fold_scores"])
    if other is best:
        return 0.0, 0.0
    if len(a) != len(b) or len(a) < 2:  # not on the same folds: the scores' own spread
        return float(best["score"] - other["score"]), float(best["score_std"] / max(len(a), 1) ** 0.5)
    diff = a - b
    # Nadeau and Bengio's (2003) correction: fold results share training samples, so their differences are not
    # independent; the variance of the mean is sigma^2 (1 / J + n_test / n_train), not sigma^2 / J.
    test_over_train = 1 / max(n_folds - 1, 1)  # k-fold: each test fold is 1 / (k - 1) of its training side
    return float(diff.mean()), float(diff.std(ddof=1) * (1 / len(diff) + test_over_train) ** 0.5)


def _fmt(value: float, objective: str) -> str:
    """A score as users read it: accuracies in percent, F1 as a 0..1 score."""
    return f"{value:.3f}" if objective == "macro_f1" else f"{100 * value:.1f} %"


def _why(winner: dict[str, Any], ranked: list[dict[str, Any]], objective: str, n_folds: int,
         tolerance: float) -> str:
    """One sentence: why the winner won."""
    best = ranked[0]
    label = objective.replace("_", " ")
    if winner["name"] != best["name"]:
        return (f"{winner['name']} scored {_fmt(winner['score'], objective)} ({label}, {n_folds}-fold "
                f"cross-validation), {_fmt(winner['gap'], objective)} a fold below the best, {best['name']} "
                f"({_fmt(best['score'], objective)}), on average: within one standard error of that gap "
                f"({_fmt(tolerance, objective)}), so the gap is noise and the candidate first in the order of "
                "preference is kept.")
    text = (f"{best['name']} had the highest cross-validated {label}, {_fmt(best['score'], objective)} "
            f"(± {_fmt(best['score_std'], objective)} over the folds)")
    if len(ranked) > 1:
        runner = ranked[1]
        text += (f", {_fmt(best['score'] - runner['score'], objective)} above the runner-up, {runner['name']} "
                 f"({_fmt(runner['score'], objective)})")
    return text + "."


def _weighting(winner: dict[str, Any], ranked: list[dict[str, Any]], y: np.ndarray, n_classes: int, option: str,
               objective: str) -> dict[str, Any]:
    """Which class weighting the winner uses, and why, in words."""
    used = winner["class_weight"]
    shares = np.bincount(y, minlength=n_classes) / max(len(y), 1)
    dominant = float(shares.max())
    best = {w: next((r for r in ranked if r["class_weight"] == w), None) for w in CLASS_WEIGHTS}
    if winner["method"] in UNWEIGHTED_METHODS:
        why = "k-nearest neighbours vote without class weights."
    elif option != AUTO:
        why = f"Set by the user ({option})."
    elif best["balanced"] and best["none"]:
        why = (f"Chosen by cross-validation: the best balanced candidate scored "
               f"{_fmt(best['balanced']['score'], objective)}, the best unweighted one "
               f"{_fmt(best['none']['score'], objective)}.")
        if objective == "overall_accuracy" and dominant > DOMINANT_SHARE:
            why += (f" One class holds more than {DOMINANT_SHARE:.0%} of the pixels and the objective is overall "
                    "accuracy: where the scores could not tell them apart, unweighted candidates came first.")
    else:
        why = "The winner takes no class weights."
    why += (f" The largest class holds {dominant:.0%} of the training pixels: weighting classes by inverse frequency "
            "raises the rare classes' accuracy and lowers the overall accuracy when one class dominates; "
            "Classify raster logs the map's class shares adjusted by the held-out confusion matrix, and Assess "
            "accuracy's area-adjusted estimates (Olofsson et al. 2014) correct the mapped areas for either.")
    return {"used": used, "why": why, "largest_class_share": dominant}


def select_probe(x: np.ndarray, y: np.ndarray, groups: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                 n_classes: int, method: str = AUTO, objective: str = DEFAULT_OBJECTIVE, class_weight: str = AUTO,
                 seed: int = 0, feedback: Feedback | None = None) -> tuple[Probe, dict[str, Any]]:
    """:func:`choose` on these samples, then fit the winner on all of them; returns the probe and the report."""
    choice = choose(x, y, groups, rows, cols, n_classes, method, objective, class_weight, seed, feedback)
    return choice.candidate.build().fit(x, y, n_classes), choice.report

