"""The engine's hand-written kernels against the libraries' own prediction routes, side by side in one run.

Protocol:

- Threads: ``--threads`` (default 2) everywhere. ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
  ``OPENBLAS_NUM_THREADS``, ``BLIS_NUM_THREADS`` and ``NUMEXPR_NUM_THREADS`` are set before numpy loads, and
  ``threadpoolctl.threadpool_limits`` caps the BLAS/OpenMP pools; each route also gets its own option:
  scikit-learn ``n_jobs``, XGBoost ``nthread``, SciPy ``workers``, ``faiss.omp_set_num_threads``, onnxruntime
  ``intra_op_num_threads`` (``inter_op_num_threads=1``) and the engine's ``set_threads``.
- Training data: bands 1-7 of the Landsat 7 sample (``resources/sample/LE70220491999322EDC01_stack.gtif``; band 8
  is all zero) under ``training_data.shp`` (718 labelled pixels, 5 classes) read by
  ``engine.io.labels.sample_pixels``, resampled with replacement to ``--train-per-class`` pixels per class (default
  2000, i.e. 10,000 pixels: the most the compiled k-NN search takes, ``COMPILED_KNN_MAX_SAMPLES``) plus Gaussian
  noise of 1 % of each band's std (seed 0), as ``bench_predict.py`` builds its training set.
  ``--train-per-class 0`` keeps the 718 labelled pixels as they are.
- Rows predicted: every pixel of the sample raster (250 x 250 px, bands 1-7 as float32) in raster order (neighbouring
  pixels alike, as in a map), the raster repeated to ``--rows`` rows (default 1,000,000; ``--knn-rows`` sets another
  count for k-NN, where faiss's exhaustive search is the slowest route). Every route of a method gets the same
  array.
- Models: the engine's probes with their defaults (``RandomForestProbe()``: 100 trees, min_samples_leaf 1,
  balanced_subsample; ``XGBoostProbe()``: 100 rounds, depth 6, eta 0.3, hist, softprob;
  ``KNearestNeighborsProbe()``: k 7, 1/distance votes on standardised features), fitted with ``fit_threads`` =
  ``--threads``.
- Routes, per method (``reference``: the library's own route, what every speed and agreement is set against):

  - Random forest: scikit-learn ``predict_proba`` (``n_jobs``; reference); the probe's chunked ``tree.apply`` walk
    (its last fallback, ``RandomForestProbe._chunked_proba``); the compiled kernel (``TreePredictor`` kind
    ``compiled``, built by ``RandomForestProbe._build_fast``); the same trees through XGBoost's walker (kind
    ``xgboost``, built the same way with ``LANDPROBE_NO_JIT=1``); onnxruntime on the forest converted by skl2onnx
    (``zipmap`` off).
  - XGBoost: ``Booster.inplace_predict`` (reference, what the probe falls back to); ``Booster.predict`` on a
    ``DMatrix`` built in the timed call; the compiled kernel (each round's per-class trees grafted, kind
    ``compiled``); the grafted trees through XGBoost's walker (kind ``xgboost``); onnxruntime on the booster
    converted by onnxmltools.
  - k-NN (10,000 or 718 reference rows, k = 7): SciPy ``cKDTree.query`` (``workers``) with the probe's votes
    (reference: what the probe falls back to, ``LANDPROBE_NO_JIT=1`` or over 10,000 samples);
    scikit-learn ``KNeighborsClassifier(n_neighbors=k, weights="distance", n_jobs)`` on the probe's standardised
    reference set (algorithm ``auto``; the one it picked is printed); faiss ``IndexFlatL2`` (exact, float32,
    squared distances through BLAS) with the probe's votes on the square roots; the probe's ``predict_proba``
    with its compiled ``BlockNeighbours`` built (the few pixels it cannot confirm go to the k-d tree, as
    shipped). Every route standardises the raw pixels inside the timed call.

- Throughput: rows / median wall time of 3 calls (``--repeats``) on the whole array, after one warm-up call on its
  first 131,072 rows. A route whose warm-up predicts more than ``--slow-s`` (60 s) per call is timed once.
- One-off cost ("build s"): what the route needs before its first prediction and after the model is fitted:
  compiling and checking the kernel (``_build_fast``, ``blocks_.get``: exactly what the probe pays on its first
  map), building the walker's booster, converting to ONNX plus creating the ``InferenceSession``, building the
  k-d tree, fitting ``KNeighborsClassifier`` or filling the faiss index.
- Agreement with the reference: the largest absolute difference of any class probability (max ``|Δp|``) and the
  share of rows whose most probable class is the same (argmax agreement, %); the note counts the rows that differ
  and how many of them are ties in the reference (top two classes within 1e-5), which float rounding decides.
- Verdict per method: the fastest route, and the compiled kernel's speed against the fastest route that needs no
  hand-written kernel (every other row).
- Missing optional extras (skl2onnx, onnxmltools, faiss-cpu: not engine dependencies) skip their row with a note;
  install them into a side folder, see ``benchmarks/README.md``.
- Concurrent CPU load distorts every figure: run it on an idle machine. About 2 minutes on 2 cores with the
  defaults (well under the 10 minutes aimed at; faiss's k-NN search is a third of it).

Run: ``PYTHONPATH=.:<extras folder> <engine python> benchmarks/bench_kernels.py [--threads 2] [--rows 1000000]
[--knn-rows N] [--train-per-class 2000] [--only random_forest xgboost knn]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common import FIELD, LABELS, N_BANDS, SAMPLE, markdown_table

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
METHODS = ("random_forest", "xgboost", "knn")
LABEL = {"random_forest": "Random forest", "xgboost": "XGBoost", "knn": "k-NN"}
WARM_ROWS = 131_072
EXTRAS = "pip install --no-deps --target <folder> skl2onnx onnxmltools faiss-cpu; PYTHONPATH=.:<folder>"
NO_JIT = "LANDPROBE_NO_JIT"


@dataclass
class Row:
    """One route's figures (``skipped`` holds the reason when it could not run)."""

    method: str
    route: str
    kind: str  # reference, library, kernel
    rate: float = 0.0
    build_s: float | None = None
    size: str = ""
    dp: float | None = None
    agree: float | None = None
    note: str = ""
    skipped: str = ""


class Bench:
    """Runs the routes of one method on one array and keeps their rows."""

    def __init__(self, method: str, x: Any, repeats: int, slow_s: float) -> None:
        self.method, self.x, self.repeats, self.slow_s = method, x, repeats, slow_s
        self.rows: list[Row] = []
        self.reference: Any = None

    def skip(self, route: str, kind: str, why: str) -> None:
        """A row for a route that could not run, with the reason."""
        print(f"  {route}: skipped: {why}", flush=True)
        self.rows.append(Row(self.method, route, kind, skipped=why))

    def time(self, route: str, kind: str, fn: Callable[[Any], Any], build_s: float | None = None,
             size: str = "", note: str = "") -> Any:
        """Warm up, time ``fn`` on the whole array, compare with the reference; the output of the last call."""
        import numpy as np

        x = self.x
        print(f"  {route} ...", end="", flush=True)
        try:
            start = time.perf_counter()
            fn(x[:WARM_ROWS])
            estimate = (time.perf_counter() - start) * len(x) / min(len(x), WARM_ROWS)
            repeats = 1 if estimate > self.slow_s else self.repeats
            if repeats < self.repeats:
                note = "; ".join(filter(None, [note, f"timed once (about {estimate:.0f} s a call)"]))
            times, out = [], None
            for _ in range(repeats):
                start = time.perf_counter()
                out = fn(x)
                times.append(time.perf_counter() - start)
        except Exception as exc:  # a route that fails gets a row with its error; the others run
            print(f" failed: {exc!r}", flush=True)
            self.rows.append(Row(self.method, route, kind, build_s=build_s, size=size,
                                 skipped=f"failed: {type(exc).__name__}: {str(exc)[:160]}"))
            return None
        out = np.asarray(out, dtype="float64").reshape(len(x), -1)
        if kind == "reference":
            self.reference = out
        dp = agree = None
        if self.reference is not None:
            dp = float(np.abs(out - self.reference).max())
            differ = out.argmax(axis=1) != self.reference.argmax(axis=1)
            agree = float(100 - differ.mean() * 100)
            if differ.any():  # a tie in the reference (two classes equally probable) may go either way
                top2 = np.sort(self.reference[differ], axis=1)[:, -2:]
                ties = int((top2[:, 1] - top2[:, 0] <= 1e-5).sum())
                note = "; ".join(filter(None, [note, f"{int(differ.sum())} rows differ, {ties} of them ties "
                                                     "(top two classes within 1e-5 in the reference)"]))
        row = Row(self.method, route, kind, len(x) / statistics.median(times), build_s, size, dp, agree, note)
        self.rows.append(row)
        print(f" {row.rate / 1e6:.3f} Mrows/s (calls {', '.join(f'{t:.2f}' for t in times)} s)"
              + (f", build {build_s:.2f} s" if build_s is not None else ""), flush=True)
        return out


def timed(make: Callable[[], Any]) -> tuple[Any, float]:
    """``make()`` and its wall time in seconds."""
    start = time.perf_counter()
    value = make()
    return value, time.perf_counter() - start


def mb(n_bytes: int) -> str:
    """A size in MB (1e6 bytes)."""
    return f"{n_bytes / 1e6:.2f} MB"


def no_jit_build(make: Callable[[], Any]) -> Any:
    """``make()`` with ``LANDPROBE_NO_JIT=1``: the probe builds XGBoost's walker instead of the compiled kernel."""
    before = os.environ.get(NO_JIT)
    os.environ[NO_JIT] = "1"
    try:
        return make()
    finally:
        if before is None:
            del os.environ[NO_JIT]
        else:
            os.environ[NO_JIT] = before


def jit_disabled() -> str | None:
    """Why the compiled kernels cannot be measured, or ``None``."""
    from engine.accel import enabled

    if not enabled():
        return f"{NO_JIT} is set"
    try:
        import llvmlite  # noqa: F401
    except ImportError:
        return "llvmlite is not installed"
    return None


def ort_session(model_bytes: bytes, threads: int) -> Any:
    """An onnxruntime CPU session on ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def ort_proba(session: Any) -> Callable[[Any], Any]:
    """The session's probability output for float32 rows."""
    outputs = [o.name for o in session.get_outputs()]
    name = next((o for o in outputs if "prob" in o.lower()), outputs[-1])
    feed = session.get_inputs()[0].name
    return lambda x: session.run([name], {feed: x})[0]


def missing(module: str) -> str | None:
    """Why the optional extra ``module`` cannot be imported, or ``None``."""
    try:
        __import__(module)
    except ImportError as exc:
        return f"{module} not importable ({exc}); install the extras: {EXTRAS}"
    return None


def training_set(per_class: int) -> tuple[Any, Any, int, str]:
    """Bands 1-7 under the sample's labels, resampled to ``per_class`` pixels per class with 1 % noise."""
    import numpy as np

    from engine.io.labels import sample_pixels

    samples = sample_pixels(str(SAMPLE), str(LABELS), FIELD)
    x, y = samples.x[:, :N_BANDS].astype("float32"), samples.y
    n_classes = len(samples.classes)
    if per_class <= 0:
        return x, y, n_classes, f"the sample's {len(y)} labelled pixels as they are"
    rng = np.random.default_rng(0)
    pick = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class) for c in range(n_classes)])
    noisy = x[pick] + rng.normal(0, 0.01, (len(pick), x.shape[1])) * x.std(axis=0)
    return (noisy.astype("float32"), y[pick], n_classes,
            f"{per_class} per class drawn from the sample's {len(y)} labelled pixels + 1 % noise (seed 0)")


def raster_rows(n_rows: int) -> Any:
    """The sample raster's pixels (bands 1-7, float32) in raster order, repeated to ``n_rows`` rows."""
    import numpy as np
    import rasterio

    with rasterio.open(SAMPLE) as src:
        data = src.read(list(range(1, N_BANDS + 1))).astype("float32")
    pixels = data.reshape(N_BANDS, -1).T
    return np.ascontiguousarray(np.tile(pixels, (-(-n_rows // len(pixels)), 1))[:n_rows])


def bench_forest(x_train: Any, y_train: Any, n_classes: int, x: Any, args: argparse.Namespace) -> list[Row]:
    """Random forest routes."""
    from engine.probes.registry import RandomForestProbe

    threads = args.threads
    probe = RandomForestProbe()
    probe.fit_threads = threads
    _, fit_s = timed(lambda: probe.fit(x_train, y_train, n_classes))
    probe.set_threads(threads)
    model = probe.model_
    model.n_jobs = threads
    nodes = sum(t.node_count for t in probe.trees_)
    print(f"\nRandom forest: {len(probe.trees_)} trees, {nodes:,} nodes, depth up to "
          f"{max(e.get_depth() for e in model.estimators_)}, fit {fit_s:.1f} s; {len(x):,} rows", flush=True)
    bench = Bench("random_forest", x, args.repeats, args.slow_s)
    bench.time(f"scikit-learn predict_proba (n_jobs={threads})", "reference", model.predict_proba,
               size=mb(len(pickle.dumps(model))) + " pickle")
    bench.time("probe's chunked tree.apply walk (its last fallback)", "library", probe._chunked_proba)
    if why := jit_disabled():
        bench.skip("compiled kernel (TreePredictor 'compiled')", "kernel", why)
    else:
        predictor, build_s = timed(probe._build_fast)
        if predictor is None or predictor.kind != "compiled":
            bench.skip("compiled kernel (TreePredictor 'compiled')", "kernel",
                       f"the probe built {getattr(predictor, 'kind', None)!r} instead")
        else:
            predictor.set_threads(threads)
            bench.time("compiled kernel (TreePredictor 'compiled')", "kernel", predictor, build_s, f"{nodes:,} nodes")
    walker, build_s = timed(lambda: no_jit_build(probe._build_fast))
    if walker is None:
        bench.skip("XGBoost walker (TreePredictor 'xgboost')", "library", "not built (no xgboost, or a difference)")
    else:
        walker.set_threads(threads)
        bench.time(f"XGBoost walker (TreePredictor 'xgboost', nthread={threads})", "library", walker, build_s,
                   mb(len(walker.sums.booster.save_raw(raw_format="ubj"))) + " ubj")
    route = f"onnxruntime via skl2onnx (intra_op={threads})"
    if why := missing("skl2onnx"):
        bench.skip(route, "library", why)
    else:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        def convert() -> tuple[bytes, Any]:
            onx = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
                                  options={id(model): {"zipmap": False}})
            raw = onx.SerializeToString()
            return raw, ort_session(raw, threads)

        try:
            (raw, session), build_s = timed(convert)
            bench.time(route, "library", ort_proba(session), build_s, mb(len(raw)) + " onnx")
        except Exception as exc:
            bench.skip(route, "library", f"conversion failed: {type(exc).__name__}: {str(exc)[:160]}")
    return bench.rows


def bench_xgboost(x_train: Any, y_train: Any, n_classes: int, x: Any, args: argparse.Namespace) -> list[Row]:
    """XGBoost routes."""
    import numpy as np
    import xgboost

    from engine.accel import tree_predictor
    from engine.probes.registry import XGBoostProbe

    threads = args.threads
    probe = XGBoostProbe()
    probe.fit_threads = threads
    _, fit_s = timed(lambda: probe.fit(x_train, y_train, n_classes))
    probe.set_threads(threads)
    booster = probe.booster_
    booster.set_param({"nthread": threads})
    grafted, graft_s = timed(lambda: tree_predictor.from_softprob_booster(booster, n_classes,
                                                                          tree_predictor.COMPILED_GRAFT_NODES)[0])
    nodes = sum(t.size for t in grafted)
    print(f"\nXGBoost: {booster.num_boosted_rounds()} rounds x {n_classes} classes; grafted for the kernel: "
          f"{len(grafted)} trees, {nodes:,} nodes ({graft_s:.1f} s); fit {fit_s:.1f} s; {len(x):,} rows", flush=True)
    bench = Bench("xgboost", x, args.repeats, args.slow_s)
    ubj = mb(len(booster.save_raw(raw_format="ubj"))) + " ubj"
    bench.time(f"XGBoost inplace_predict (nthread={threads})", "reference",
               lambda rows: np.asarray(booster.inplace_predict(rows)).reshape(len(rows), n_classes), size=ubj)
    bench.time(f"XGBoost predict on a DMatrix (nthread={threads})", "library",
               lambda rows: booster.predict(xgboost.DMatrix(rows, nthread=threads)).reshape(len(rows), n_classes))
    if why := jit_disabled():
        bench.skip("compiled kernel (TreePredictor 'compiled')", "kernel", why)
    else:
        predictor, build_s = timed(probe._build_fast)
        if predictor is None or predictor.kind != "compiled":
            bench.skip("compiled kernel (TreePredictor 'compiled')", "kernel",
                       f"the probe built {getattr(predictor, 'kind', None)!r} instead")
        else:
            predictor.set_threads(threads)
            bench.time("compiled kernel (TreePredictor 'compiled')", "kernel", predictor, build_s,
                       f"{nodes:,} nodes")
    walker, build_s = timed(lambda: no_jit_build(probe._build_fast))
    if walker is None:
        bench.skip("XGBoost walker on grafted trees (TreePredictor 'xgboost')", "library", "not built")
    else:
        walker.set_threads(threads)
        bench.time(f"XGBoost walker on grafted trees (TreePredictor 'xgboost', nthread={threads})", "library",
                   walker, build_s, mb(len(walker.sums.booster.save_raw(raw_format="ubj"))) + " ubj")
    route = f"onnxruntime via onnxmltools (intra_op={threads})"
    if why := missing("onnxmltools"):
        bench.skip(route, "library", why)
    else:
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        def convert() -> tuple[bytes, Any]:
            onx = convert_xgboost(booster, initial_types=[("input", FloatTensorType([None, x.shape[1]]))])
            raw = onx.SerializeToString()
            return raw, ort_session(raw, threads)

        try:
            (raw, session), build_s = timed(convert)
            bench.time(route, "library", ort_proba(session), build_s, mb(len(raw)) + " onnx")
        except Exception as exc:
            bench.skip(route, "library", f"conversion failed: {type(exc).__name__}: {str(exc)[:160]}")
    return bench.rows


def bench_knn(x_train: Any, y_train: Any, n_classes: int, x: Any, args: argparse.Namespace) -> list[Row]:
    """k-NN routes."""
    import numpy as np
    from scipy.spatial import cKDTree
    from sklearn.neighbors import KNeighborsClassifier

    from engine.accel.tree_predictor import MIN_ROWS
    from engine.probes.knn import COMPILED_KNN_MAX_SAMPLES, KNearestNeighborsProbe

    threads = args.threads
    probe = KNearestNeighborsProbe()
    _, fit_s = timed(lambda: probe.fit(x_train, y_train, n_classes))
    probe.set_threads(threads)
    k = min(probe.k, len(probe.y_))
    reference_set = mb(probe.x_.nbytes) + f" ({len(probe.y_):,} x {probe.x_.shape[1]} float32)"
    print(f"\nk-NN: k={k}, {len(probe.y_):,} reference rows (standardised), fit {fit_s:.2f} s; {len(x):,} rows",
          flush=True)
    bench = Bench("knn", x, args.repeats, args.slow_s)
    probe.tree_, build_s = timed(lambda: cKDTree(probe.x_))
    bench.time(f"SciPy cKDTree + probe's votes (workers={threads})", "reference",
               lambda rows: probe._votes(*probe._neighbours(probe._standardise(rows), k)), build_s, reference_set)
    classifier, build_s = timed(lambda: KNeighborsClassifier(n_neighbors=k, weights="distance",
                                                             n_jobs=threads).fit(probe.x_, probe.y_))
    bench.time(f"scikit-learn KNeighborsClassifier ({classifier._fit_method}, n_jobs={threads})", "library",
               lambda rows: classifier.predict_proba(probe._standardise(rows)), build_s)
    route = f"faiss IndexFlatL2 (exact, float32) + probe's votes (omp {threads})"
    if why := missing("faiss"):
        bench.skip(route, "library", why)
    else:
        import faiss

        faiss.omp_set_num_threads(threads)

        def make_index() -> Any:
            index = faiss.IndexFlatL2(probe.x_.shape[1])
            index.add(np.ascontiguousarray(probe.x_, dtype="float32"))
            return index

        def faiss_votes(rows: Any) -> Any:
            squared, idx = index.search(np.ascontiguousarray(probe._standardise(rows)), k)
            return probe._votes(np.sqrt(np.maximum(squared, 0).astype("float64")), idx)

        index, build_s = timed(make_index)
        bench.time(route, "library", faiss_votes, build_s)
    route = "compiled kernel (BlockNeighbours) via the probe's predict_proba"
    if why := jit_disabled():
        bench.skip(route, "kernel", why)
    elif len(probe.y_) > COMPILED_KNN_MAX_SAMPLES:
        bench.skip(route, "kernel", f"over COMPILED_KNN_MAX_SAMPLES ({COMPILED_KNN_MAX_SAMPLES:,}): the probe uses "
                                    "the k-d tree")
    else:
        blocks, build_s = timed(lambda: probe.blocks_.get(MIN_ROWS))
        if blocks is None:
            bench.skip(route, "kernel", "not built (no llvmlite, or it disagreed with the k-d tree)")
        else:
            unsure = 1 - float(blocks.votes(x[:WARM_ROWS])[1].mean())
            bench.time(route, "kernel", probe.predict_proba, build_s, reference_set,
                       note=f"{unsure * 100:.3f} % of rows sent to the k-d tree")
    return bench.rows


def verdict(method: str, rows: list[Row]) -> str:
    """The fastest route, and the compiled kernel against the fastest route without a hand-written kernel."""
    done = [r for r in rows if not r.skipped]
    if not done:
        return f"**{LABEL[method]}**: no route ran."
    fastest = max(done, key=lambda r: r.rate)
    text = f"**{LABEL[method]}**: fastest route: {fastest.route} ({fastest.rate / 1e6:.2f} Mrows/s)."
    kernel = next((r for r in done if r.kind == "kernel"), None)
    others = [r for r in done if r.kind != "kernel"]
    if kernel is None or not others:
        return text + " The compiled kernel was not measured."
    best = max(others, key=lambda r: r.rate)
    ratio = kernel.rate / best.rate
    if ratio > 1:
        return (text + f" The compiled kernel is ahead of every library route: {ratio:.2f}x the fastest, {best.route}"
                f" ({kernel.rate / 1e6:.2f} vs {best.rate / 1e6:.2f} Mrows/s).")
    return (text + f" The compiled kernel is NOT ahead of every library route: {best.route} runs at "
            f"{1 / ratio:.2f}x its speed ({best.rate / 1e6:.2f} vs {kernel.rate / 1e6:.2f} Mrows/s).")


def table(rows: list[Row]) -> str:
    """The Markdown table of every route."""
    out = []
    for method in METHODS:
        mine = [r for r in rows if r.method == method]
        ref = next((r for r in mine if r.kind == "reference" and not r.skipped), None)
        for r in mine:
            build = "-" if r.build_s is None else f"{r.build_s:.2f}"
            route = f"{r.route} **(reference)**" if r.kind == "reference" else r.route
            if r.skipped:
                out.append([LABEL[method], route, "-", "-", build, r.size or "-", "-", "-", r.skipped])
                continue
            speed = f"{r.rate / ref.rate:.2f}x" if ref else "-"
            dp = "-" if r.dp is None else ("0" if r.dp == 0 else f"{r.dp:.1e}")
            agree = "-" if r.agree is None else f"{r.agree:.4f}"
            out.append([LABEL[method], route, f"{r.rate:,.0f}", speed, build, r.size or "-", dp, agree,
                        r.note or "-"])
    return markdown_table(["method", "route", "rows/s", "speed vs library's own route", "build s", "size",
                           "max \\|Δp\\|", "argmax agreement %", "note"], out)


def versions() -> str:
    """The versions of the libraries in the run."""
    names = ["numpy", "sklearn", "xgboost", "scipy", "onnxruntime", "skl2onnx", "onnxmltools", "faiss", "llvmlite"]
    parts = []
    for name in names:
        try:
            module = __import__(name)
            parts.append(f"{name} {getattr(module, '__version__', '?')}")
        except ImportError:
            parts.append(f"{name} missing")
    return ", ".join(parts)


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo), or the platform's processor."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main() -> None:
    """Set the threads, fit each probe, run every route, print the table and the verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for every route (default 2)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows predicted by the tree ensembles")
    parser.add_argument("--knn-rows", type=int, help="rows predicted by k-NN (default: --rows)")
    parser.add_argument("--train-per-class", type=int, default=2000,
                        help="training pixels per class, resampled with noise (0: the 718 labelled pixels)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per route (the median counts)")
    parser.add_argument("--slow-s", type=float, default=60.0, help="a route slower than this per call is timed once")
    parser.add_argument("--only", nargs="*", choices=METHODS, help="methods to run (default all)")
    args = parser.parse_args()
    args.knn_rows = args.knn_rows or args.rows
    for name in THREAD_VARIABLES:  # before numpy, SciPy, scikit-learn, XGBoost or faiss load a thread pool
        os.environ[name] = str(args.threads)
    logging.basicConfig(level=logging.WARNING)
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    print(f"WARNING: concurrent CPU load distorts these figures (1-min load average now {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores).", flush=True)
    print(f"CPU: {cpu_name()}; Python {sys.version.split()[0]}; {versions()}", flush=True)
    x_train, y_train, n_classes, how = training_set(args.train_per_class)
    print(f"Training: {len(y_train):,} pixels x {x_train.shape[1]} bands, {n_classes} classes ({how}).", flush=True)
    rows: list[Row] = []
    start = time.perf_counter()
    for method in args.only or METHODS:
        x = raster_rows(args.knn_rows if method == "knn" else args.rows)
        run = {"random_forest": bench_forest, "xgboost": bench_xgboost, "knn": bench_knn}[method]
        rows += run(x_train, y_train, n_classes, x, args)
    print(f"\n## Prediction routes, {args.threads} threads each; {args.rows:,} rows (trees) and {args.knn_rows:,} "
          f"rows (k-NN) of the Landsat 7 sample in raster order; median of {args.repeats} calls after a warm-up; "
          f"training {len(y_train):,} pixels ({time.perf_counter() - start:.0f} s in all)\n")
    print(table(rows))
    print()
    for method in args.only or METHODS:
        print(verdict(method, [r for r in rows if r.method == method]))
        print()


if __name__ == "__main__":
    main()
