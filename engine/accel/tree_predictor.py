"""Maps from tree ensembles: the trees as trees with a vector of class values in each leaf, compiled or walked.

Maps from tree ensembles cost one walk from root to leaf per tree and pixel. In memory only (model files keep
their own format):

- a random forest becomes one vector-leaf tree per tree: the leaf holds the class frequencies / number of trees;
- a multi-class booster becomes one vector-leaf tree per boosting round: the round's per-class trees are grafted
  into one tree (splits decided by the path are dropped), whose leaf holds every class's margin. A round whose
  grafted tree would exceed a node budget keeps its trees apart (one-class leaf vectors).

These trees are compiled to machine code (:mod:`engine.accel.tree_compiler`, with llvmlite: about 5x scikit-learn's and
XGBoost's walks), or else walked by XGBoost's predictor (about 1.4x). Both give the same numbers: scikit-learn
sends ``x <= t`` left, XGBoost ``x < c``; with ``c`` the float32 just above the largest float32 not above ``t``, the
two agree for every float32 ``x``. :func:`build` checks the result against the original on rows placed on and
around every threshold and returns ``None`` (the caller keeps its own path) on any difference or failure, e.g. a
future XGBoost with another model schema.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np

from . import tree_compiler
from .llvm_jit import split_rows

if TYPE_CHECKING:
    from collections.abc import Callable


from . import enabled
from .vector_tree import VectorTree

logger = logging.getLogger(__name__)


class _Threaded(Protocol):
    def set_threads(self, n: int) -> None: ...


P = TypeVar("P", bound=_Threaded)

MAX_GRAFT_NODES = 4096  # largest tree one boosting round may become for XGBoost's walker
COMPILED_GRAFT_NODES = 1024  # the same for compiled trees: as fast, with a fifth of the nodes to compile
MAX_COMPILED_NODES = 200_000  # larger ensembles go through XGBoost's walker: compiling takes about 0.1 ms a node
MAX_TOTAL_NODES = 500_000  # larger ensembles keep the original walk: building takes about 10 us a node
MIN_ROWS = 65_536  # smaller predictions (validation, learning curves) keep the original predictor: no build cost
TOLERANCE = 1e-5


def _breadth_first(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Node ids in breadth-first order (XGBoost's predictor expects children after their parents, level by level)."""
    order, i = [0], 0
    while i < len(order):
        node = order[i]
        i += 1
        if left[node] != -1:
            order += [int(left[node]), int(right[node])]
    return np.array(order)


def _relabel(order: np.ndarray, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    new = np.empty(len(left), dtype="int64")
    new[order] = np.arange(len(order))
    leaf = left[order] == -1
    return (np.where(leaf, -1, new[np.maximum(left[order], 0)]), np.where(leaf, -1, new[np.maximum(right[order], 0)]))


def less_than_bound(threshold: np.ndarray) -> np.ndarray:
    """``c`` (float32) such that ``x < c`` exactly when ``x <= threshold`` for every float32 ``x``."""
    t32 = threshold.astype("float32")
    over = t32.astype("float64") > threshold
    t32[over] = np.nextafter(t32[over], np.float32(-np.inf))
    return np.nextafter(t32, np.float32(np.inf))


def from_sklearn(tree: Any, leaf_values: np.ndarray) -> VectorTree:
    """A scikit-learn ``Tree`` with per-node output vectors ``leaf_values`` (nodes, outputs)."""
    order = _breadth_first(tree.children_left, tree.children_right)
    left, right = _relabel(order, tree.children_left, tree.children_right)
    leaf = left == -1
    return VectorTree(left, right, np.where(leaf, 0, tree.feature[order]),
                      np.where(leaf, np.float32(0), less_than_bound(tree.threshold[order])).astype("float32"),
                      leaf_values[order])


def _nested(tree: dict[str, Any], output: int, n_outputs: int) -> tuple:
    """An XGBoost JSON tree as nested tuples: ("leaf", vector) or ("split", feature, cond, left, right)."""
    left, right, cond, feature = (tree[k] for k in ("left_children", "right_children", "split_conditions",
                                                    "split_indices"))

    def walk(n: int) -> tuple:
        if left[n] == -1:
            vector = np.zeros(n_outputs, dtype="float32")
            vector[output] = cond[n]  # XGBoost keeps a leaf's value in split_conditions
            return ("leaf", vector)
        return ("split", int(feature[n]), np.float32(cond[n]), walk(left[n]), walk(right[n]))

    return walk(0)


def _graft(a: tuple, b: tuple, lo: dict[int, float], hi: dict[int, float], budget: list[int]) -> tuple:
    """``a`` with ``b`` added under each leaf; ``lo <= x < hi`` holds on the path, so decided splits of ``b`` drop."""
    if budget[0] < 0:
        raise OverflowError
    if a[0] == "leaf":
        return _add(b, a[1], lo, hi, budget)
    _, f, c, left, right = a
    budget[0] -= 1
    return ("split", f, c, _graft(left, b, lo, {**hi, f: min(hi.get(f, float("inf")), c)}, budget),
            _graft(right, b, {**lo, f: max(lo.get(f, float("-inf")), c)}, hi, budget))


def _add(b: tuple, vector: np.ndarray, lo: dict[int, float], hi: dict[int, float], budget: list[int]) -> tuple:
    budget[0] -= 1
    if budget[0] < 0:
        raise OverflowError
    if b[0] == "leaf":
        return ("leaf", vector + b[1])
    _, f, c, left, right = b
    if hi.get(f, float("inf")) <= c:  # every x on this path is below c
        return _add(left, vector, lo, hi, budget)
    if lo.get(f, float("-inf")) >= c:
        return _add(right, vector, lo, hi, budget)
    return ("split", f, c, _add(left, vector, lo, {**hi, f: min(hi.get(f, float("inf")), c)}, budget),
            _add(right, vector, {**lo, f: max(lo.get(f, float("-inf")), c)}, hi, budget))


def _flatten(root: tuple, n_outputs: int) -> VectorTree:
    nodes, i = [root], 0
    while i < len(nodes):
        if nodes[i][0] == "split":
            nodes += [nodes[i][3], nodes[i][4]]
        i += 1
    position = {id(n): j for j, n in enumerate(nodes)}
    left = np.array([position[id(n[3])] if n[0] == "split" else -1 for n in nodes])
    right = np.array([position[id(n[4])] if n[0] == "split" else -1 for n in nodes])
    feature = np.array([n[1] if n[0] == "split" else 0 for n in nodes])
    cond = np.array([n[2] if n[0] == "split" else 0 for n in nodes], dtype="float32")
    value = np.array([n[1] if n[0] == "leaf" else np.zeros(n_outputs, "float32") for n in nodes], dtype="float32")
    return VectorTree(left, right, feature, cond, value)


def from_softprob_booster(booster: Any, n_classes: int,
                          max_graft_nodes: int | None = None) -> tuple[list[VectorTree], np.ndarray]:
    """A ``multi:softprob`` booster's rounds as grafted vector-leaf trees, and its base margin per class.

    A round whose grafted tree would exceed ``max_graft_nodes`` (default :data:`MAX_GRAFT_NODES`) keeps its
    per-class trees apart.
    """
    learner = json.loads(booster.save_raw(raw_format="json"))["learner"]
    model = learner["gradient_booster"]["model"]
    base = np.array(json.loads(learner["learner_model_param"]["base_score"]), dtype="float32").reshape(-1)
    base = np.broadcast_to(base, (n_classes,)).astype("float32")
    trees, info, indptr = model["trees"], model["tree_info"], model["iteration_indptr"]
    out = []
    for start, stop in itertools.pairwise(indptr):
        group = [_nested(trees[i], int(info[i]), n_classes) for i in range(start, stop)]
        grafted = group[0]
        try:
            for tree in group[1:]:
                grafted = _graft(grafted, tree, {}, {}, [max_graft_nodes or MAX_GRAFT_NODES])
            out.append(_flatten(grafted, n_classes))
        except (OverflowError, RecursionError):
            out += [_flatten(tree, n_classes) for tree in group]
    return out, base


def _model_json(trees: list[VectorTree], n_features: int, n_outputs: int) -> bytes:
    """An XGBoost (3.x) JSON model: vector-leaf trees summed, no transformation (``reg:squarederror``, base 0)."""
    def tree_json(i: int, t: VectorTree) -> dict[str, Any]:
        n = t.size
        leaf = t.left == -1
        parents = np.full(n, -1)
        parents[t.left[~leaf]] = np.flatnonzero(~leaf)
        parents[t.right[~leaf]] = np.flatnonzero(~leaf)
        values = np.where(leaf[:, None], t.value, 0).astype("float32")
        return {
            "base_weights": values.ravel().tolist(), "categories": [], "categories_nodes": [],
            "categories_segments": [], "categories_sizes": [], "default_left": [0] * n, "id": i,
            "leaf_weights": values[leaf].ravel().tolist(), "left_children": t.left.tolist(),
            "loss_changes": [0.0] * n, "parents": parents.tolist(),
            "right_children": np.where(leaf, np.cumsum(leaf) - 1, t.right).tolist(),  # a leaf: its vector's index
            "split_conditions": np.where(leaf, np.float32(0), t.cond).astype("float64").tolist(),
            "split_indices": t.feature.tolist(), "split_type": [0] * n, "sum_hessian": [1.0] * n,
            "tree_param": {"num_deleted": "0", "num_feature": str(n_features), "num_nodes": str(n),
                           "size_leaf_vector": str(n_outputs)},
        }

    booster = {"name": "gbtree", "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": str(len(trees))},
               "model": {"cats": {"enc": [], "feature_segments": [], "sorted_idx": []},
                         "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": str(len(trees))},
                         "iteration_indptr": list(range(len(trees) + 1)), "tree_info": [0] * len(trees),
                         "trees": [tree_json(i, t) for i, t in enumerate(trees)]}}
    learner = {"attributes": {}, "feature_names": [], "feature_types": [], "gradient_booster": booster,
               "learner_model_param": {"base_score": "[" + ",".join(["0E0"] * n_outputs) + "]",
                                       "boost_from_average": "0", "num_class": "0", "num_feature": str(n_features),
                                       "num_target": str(n_outputs)},
               "objective": {"name": "reg:squarederror", "reg_loss_param": {"scale_pos_weight": "1"}}}
    return json.dumps({"learner": learner, "version": [3, 2, 0]}).encode()


class _BoosterSums:
    """XGBoost's predictor over a booster of vector-leaf trees: the sums as float32."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def set_threads(self, n: int) -> None:
        self.booster.set_param({"nthread": n})

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.booster.inplace_predict(np.ascontiguousarray(x, dtype="float32"))
        return np.asarray(out, dtype="float32").reshape(len(x), -1)


class _CompiledSums:
    """Trees compiled by :mod:`.tree_compiler`; rows split over ``threads`` threads (calls release the GIL)."""

    def __init__(self, compiled: Any) -> None:
        self.compiled, self.threads = compiled, 1

    def set_threads(self, n: int) -> None:
        self.threads = n

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return split_rows(self.compiled, x, self.threads, 2 * MIN_ROWS)


class TreePredictor:
    """Sums of vector-leaf trees, compiled or through XGBoost's predictor, plus a base, optionally a softmax."""

    def __init__(self, sums: Callable[[np.ndarray], np.ndarray], base: np.ndarray | None, softmax: bool,
                 kind: str) -> None:
        """Keep the sums' function; ``base`` is added before the optional softmax; ``kind`` names the walker."""
        self.sums, self.base, self.softmax, self.kind = sums, base, softmax, kind

    def set_threads(self, n: int) -> None:
        """Threads of one prediction call."""
        self.sums.set_threads(max(1, n))  # type: ignore[attr-defined]

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Sums plus base, before the softmax (which keeps their order): the output to take the largest of."""
        out = self.sums(x)
        return out if self.base is None else out + self.base

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Outputs for float32 rows ``x`` (n, features): (n, outputs) float32."""
        out = self.scores(x)
        if self.softmax:
            out = out - out.max(axis=1, keepdims=True)
            np.exp(out, out=out)
            out /= out.sum(axis=1, keepdims=True)
        return np.asarray(out, dtype="float32")


def check_rows(trees: list[VectorTree], n_features: int, seed: int = 0) -> np.ndarray:
    """Rows that sit on, just below and just above the ensemble's thresholds (where a wrong comparison shows)."""
    rng = np.random.default_rng(seed)
    columns = []
    for f in range(n_features):
        conds = np.unique(np.concatenate([t.cond[(t.left != -1) & (t.feature == f)] for t in trees]))
        if not len(conds):
            conds = np.zeros(1, dtype="float32")
        below = np.nextafter(conds, np.float32(-np.inf))
        columns.append(rng.choice(np.concatenate([conds, below, np.nextafter(below, np.float32(-np.inf))]), 3000))
    return np.stack(columns, axis=1).astype("float32")


def _compiled(trees: list[VectorTree], n_features: int, n_outputs: int) -> _CompiledSums:
    nodes = sum(t.size for t in trees)
    if nodes > MAX_COMPILED_NODES:
        raise ValueError(f"more than {MAX_COMPILED_NODES} nodes to compile")
    if nodes > 20_000:  # seconds: say so before the map's first window waits for it
        logger.info("Compiling the %d trees (%d nodes) for this CPU, about %.0f s.", len(trees), nodes, nodes * 1e-4)
    start = time.perf_counter()
    compiled = tree_compiler.compile_trees(trees, n_features, n_outputs)
    logger.info("Compiled the %d trees (%d nodes) for this CPU in %.1f s.", len(trees), nodes,
                time.perf_counter() - start)
    return _CompiledSums(compiled)


def _walker(trees: list[VectorTree], n_features: int, n_outputs: int) -> _BoosterSums:
    # Lazy: optional: a missing XGBoost is reported when this method runs.
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(bytearray(_model_json(trees, n_features, n_outputs)))
    return _BoosterSums(booster)


def build(trees: list[VectorTree], n_features: int, n_outputs: int, reference: Callable[[np.ndarray], np.ndarray],
          base: np.ndarray | None = None, softmax: bool = False,
          walker_trees: Callable[[], list[VectorTree]] | None = None) -> TreePredictor | None:
    """A :class:`TreePredictor` that agrees with ``reference`` on :func:`check_rows`, else ``None``.

    It runs ``trees`` compiled (:mod:`engine.accel.tree_compiler`), or, without llvmlite or on any failure or
    difference, ``walker_trees()`` (default ``trees``) through XGBoost's predictor.
    """
    if sum(t.size for t in trees) > MAX_TOTAL_NODES:
        return None
    for kind, make in (("compiled", _compiled), ("xgboost", _walker)):
        if kind == "compiled" and not enabled():  # LANDPROBE_NO_JIT: the library's walker or the original
            continue
        try:
            if kind == "xgboost" and walker_trees is not None:
                trees = walker_trees()
            predictor = TreePredictor(make(trees, n_features, n_outputs), base, softmax, kind)
            rows = check_rows(trees, n_features)
            difference = float(np.abs(predictor(rows) - reference(rows)).max())
        except Exception as exc:  # any failure: the next way, at last the original predictor
            logger.debug("Vector-leaf trees (%s) not used: %s", kind, exc)
            continue
        if difference <= TOLERANCE:
            return predictor
        logger.debug("Vector-leaf trees (%s) not used: they differ by %s from the original.", kind, difference)
    return None


class LazyPredictor(Generic[P]):
    """A predictor built by ``make`` when first needed (thread-safe), or ``None`` if it cannot be.

    Anything with ``set_threads``: a :class:`TreePredictor`, or the k-NN search of :mod:`engine.accel.knn_blocks`.
    """

    def __init__(self, make: Callable[[], P | None], threads: int) -> None:
        """Keep the builder and the thread count to give the predictor."""
        self._make, self._threads = make, threads
        self._lock = threading.Lock()
        self._built = False
        self._value: P | None = None

    def get(self, n_rows: int) -> P | None:
        """The predictor for a call on ``n_rows`` rows: built on the first call of :data:`MIN_ROWS` or more."""
        with self._lock:
            if not self._built and n_rows >= MIN_ROWS:
                self._value, self._built = self._make(), True
                if self._value is not None:
                    self._value.set_threads(self._threads)
            return self._value

    def set_threads(self, n: int) -> None:
        """Threads of one prediction call, now or once built."""
        with self._lock:
            self._threads = max(1, n)
            if self._value is not None:
                self._value.set_threads(self._threads)
