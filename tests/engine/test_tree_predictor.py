"""Tree ensembles compiled or through XGBoost's predictor give the original ensembles' numbers, or are not used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterdata import write_like

from engine.accel import tree_compiler, tree_predictor
from engine.jobs.classify_raster import classify_raster
from engine.jobs.train_classifier import train_classifier
from engine.probes import boosting, forest
from engine.probes.registry import RandomForestProbe, XGBoostProbe


def _data(n_classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping classes on an integer reflectance-like scale (many ties on thresholds), 6 features."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(500, 120, size=(n_classes, 6))
    y = rng.integers(0, n_classes, 1500)
    return np.round(centres[y] + rng.normal(0, 90, (len(y), 6))).astype("float32"), y


def _edge_rows(probe_trees: list[tree_predictor.VectorTree], x: np.ndarray) -> np.ndarray:
    """Training-like rows plus rows on and beside every threshold."""
    return np.concatenate([x, tree_predictor.check_rows(probe_trees, x.shape[1], seed=3)])


def test_less_than_bound_matches_less_or_equal_for_every_float32() -> None:
    rng = np.random.default_rng(0)
    t = np.concatenate([rng.normal(0, 1000, 5000), np.arange(-50, 50) + 0.5, [0.0, 1e-30, -1e-30]])
    c = tree_predictor.less_than_bound(t)
    nearest = t.astype("float32")  # the float32 values on either side of each threshold are where it can go wrong
    for x in (nearest, np.nextafter(nearest, np.float32(np.inf)), np.nextafter(nearest, np.float32(-np.inf))):
        assert np.array_equal(x.astype("float64") <= t, x < c)
    assert not np.array_equal(nearest.astype("float64") <= t, nearest <= t.astype("float32"))  # plain rounding fails


@pytest.fixture
def always_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Vector-leaf trees for every prediction, not only for map-sized ones."""
    monkeypatch.setattr(tree_predictor, "MIN_ROWS", 0)


@pytest.fixture(params=["compiled", "xgboost"])
def walker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Compiled trees (llvmlite), or XGBoost's walker as without llvmlite."""
    if request.param == "xgboost":
        def no_llvmlite(*args: object) -> None:
            raise ImportError("No module named 'llvmlite'")

        monkeypatch.setattr(tree_predictor, "_compiled", no_llvmlite)
    return str(request.param)


@pytest.mark.usefixtures("always_fast")
def test_random_forest_vector_leaf_trees_equal_scikit_learn(walker: str) -> None:
    x, y = _data()
    probe = RandomForestProbe(n_estimators=30).fit(x, y, 5)  # class 4 absent
    fast = probe.fast_.get(1)
    assert fast is not None and fast.kind == walker
    trees = [tree_predictor.from_sklearn(t, v) for t, v in zip(probe.trees_, probe.leaf_values_, strict=True)]
    rows = _edge_rows(trees, x)
    proba = RandomForestProbe.from_state(*probe.state()).predict_proba(rows)
    expected = probe.model_.predict_proba(rows)
    assert np.abs(proba[:, :4] - expected).max() <= 1e-5 and (proba[:, 4] == 0).all()
    assert np.array_equal(proba.argmax(axis=1), expected.argmax(axis=1))


@pytest.mark.usefixtures("always_fast")
@pytest.mark.parametrize("max_graft_nodes", [tree_predictor.MAX_GRAFT_NODES, 3])
def test_boosted_rounds_grafted_or_not_equal_xgboost(monkeypatch: pytest.MonkeyPatch, max_graft_nodes: int,
                                                     walker: str) -> None:
    monkeypatch.setattr(tree_predictor, "MAX_GRAFT_NODES", max_graft_nodes)  # 3: no round can be grafted
    monkeypatch.setattr(tree_predictor, "COMPILED_GRAFT_NODES", max_graft_nodes)
    x, y = _data()
    probe = XGBoostProbe(n_estimators=20, max_depth=3).fit(x, y, 4)
    fast = probe.fast_.get(1)
    assert fast is not None and fast.kind == walker
    trees, _ = tree_predictor.from_softprob_booster(probe.booster_, 4)
    assert len(trees) == (20 if max_graft_nodes > 3 else 80)  # one tree per round, or per round and class
    rows = _edge_rows(trees, x)
    restored = XGBoostProbe.from_state(*probe.state())
    proba, expected = restored.predict_proba(rows), restored._booster_proba(rows)
    assert np.abs(proba - expected).max() <= 1e-5
    assert np.array_equal(proba.argmax(axis=1), expected.argmax(axis=1))


@pytest.mark.usefixtures("always_fast", "walker")
def test_a_predictor_that_disagrees_is_not_used() -> None:
    x, y = _data()
    probe = RandomForestProbe(n_estimators=5).fit(x, y, 4)
    trees = [tree_predictor.from_sklearn(t, v) for t, v in zip(probe.trees_, probe.leaf_values_, strict=True)]
    assert tree_predictor.build(trees, 6, 4, probe._chunked_proba) is not None
    assert tree_predictor.build(trees, 6, 4, lambda rows: probe._chunked_proba(rows) + 1e-3) is None
    probe.fast_ = tree_predictor.LazyPredictor(lambda: None, 1)  # the fallback gives the same map
    assert np.allclose(probe.predict_proba(x)[:, :4], probe.model_.predict_proba(x), atol=1e-5)


def test_small_predictions_keep_the_original_walk_and_maps_build_once() -> None:
    x, y = _data()
    probe = RandomForestProbe(n_estimators=5).fit(x, y, 4)
    probe.predict_proba(x)  # validation-sized: nothing built
    assert not probe.fast_._built
    big = np.repeat(x, -(-tree_predictor.MIN_ROWS // len(x)), axis=0)
    proba = probe.predict_proba(big)
    first = probe.fast_.get(len(big))
    assert first is not None and probe.fast_.get(len(big)) is first
    assert np.allclose(proba, probe.model_.predict_proba(big), atol=1e-5)


@pytest.mark.parametrize("method", ["random_forest", "xgboost"])
def test_maps_through_vector_leaf_trees_equal_the_original_walk(tmp_path: Path, sample_raster: Path,
                                                                sample_labels: Path, monkeypatch: pytest.MonkeyPatch,
                                                                method: str, walker: str) -> None:
    model = tmp_path / "m.lpmodel"
    train_classifier(str(sample_raster), str(sample_labels), "class", str(model), method=method, validation="none")
    with rasterio.open(sample_raster) as src:
        tiled = write_like(sample_raster, tmp_path / "tiled.tif", np.tile(src.read(), (1, 3, 3)))  # 750 x 750 px
    built: list[bool] = []

    def spy(*args: object, **kwargs: object) -> tree_predictor.TreePredictor | None:
        predictor = tree_predictor.build(*args, **kwargs)
        built.append(predictor is not None and predictor.kind == walker)
        return predictor

    for module in (forest, boosting):  # where the probes look the builder up
        monkeypatch.setattr(module, "build_trees", spy)
    outputs = {}
    for walk, min_rows in (("vector-leaf", tree_predictor.MIN_ROWS), ("original", 10**12)):
        monkeypatch.setattr(tree_predictor, "MIN_ROWS", min_rows)
        classes, proba = tmp_path / f"{walk}.tif", tmp_path / f"{walk}_p.tif"
        classify_raster(str(tiled), str(model), str(classes), output_probability=str(proba), threads=2)
        with rasterio.open(classes) as c, rasterio.open(proba) as p:
            outputs[walk] = c.read(1), p.read()
    assert built == [True]  # built once, for the first map run, and used
    (fast_map, fast_p), (map_, p_) = outputs["vector-leaf"], outputs["original"]
    assert np.abs(fast_p - p_).max() <= 1e-5
    differ = fast_map != map_
    top2 = np.sort(p_, axis=0)[-2:]
    assert differ.mean() < 1e-4 and (top2[1][differ] - top2[0][differ] <= 1e-5).all()  # only exact ties may flip


def test_compiled_code_refuses_trees_that_could_loop_or_read_outside_a_row() -> None:
    def tree(left: list[int], right: list[int], feature: list[int]) -> tree_predictor.VectorTree:
        n = len(left)
        return tree_predictor.VectorTree(np.array(left), np.array(right), np.array(feature),
                                         np.zeros(n, dtype="float32"), np.ones((n, 2)))

    good = tree([1, -1, -1], [2, -1, -1], [2, 0, 0])
    assert tree_compiler.compile_trees([good], 3, 2)(np.zeros((4, 3), dtype="float32")).tolist() == [[1, 1]] * 4
    with pytest.raises(ValueError, match="after their parent"):
        tree_compiler.compile_trees([tree([0, -1, -1], [2, -1, -1], [0, 0, 0])], 3, 2)  # a node its own child
    with pytest.raises(ValueError, match="feature outside"):
        tree_compiler.compile_trees([good], 2, 2)  # feature 2 of 2


def test_compiled_sums_split_over_threads_equal_one_thread() -> None:
    x, y = _data()
    probe = RandomForestProbe(n_estimators=10).fit(x, y, 4)
    trees = [tree_predictor.from_sklearn(t, v) for t, v in zip(probe.trees_, probe.leaf_values_, strict=True)]
    sums = tree_predictor._compiled(trees, 6, 4)
    big = np.repeat(x, -(-(2 * tree_predictor.MIN_ROWS + 7) // len(x)), axis=0)
    one = sums(big)
    sums.set_threads(2)
    assert np.array_equal(sums(big), one)
    assert np.abs(one - probe.model_.predict_proba(big)).max() <= 1e-12


@pytest.mark.usefixtures("walker")
@pytest.mark.parametrize("method", ["random_forest", "xgboost"])
def test_classes_alone_are_the_most_probable_classes(method: str) -> None:
    x, y = _data()
    probe = (RandomForestProbe(n_estimators=20) if method == "random_forest"
             else XGBoostProbe(n_estimators=20, max_depth=3)).fit(x, np.where(y >= 1, y + 1, y), 5)  # class 1 absent
    rng = np.random.default_rng(1)
    big = np.repeat(x, -(-tree_predictor.MIN_ROWS // len(x)), axis=0)
    big += rng.normal(0, 30, big.shape).astype("float32")  # map-sized, and not only the training rows
    classes, none = probe.predict(big, proba=False)
    assert none is None and probe.fast_.get(len(big)) is not None
    expected = probe.predict_proba(big)
    differ = classes != expected.argmax(axis=1)
    top2 = np.sort(expected, axis=1)[:, -2:]
    assert differ.mean() < 1e-3 and (top2[differ, 1] - top2[differ, 0] <= 1e-6).all()  # only ties may differ
    assert set(np.unique(classes)) <= {0, 2, 3, 4}


@pytest.mark.usefixtures("always_fast")
def test_one_switch_turns_every_hand_written_kernel_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.probes.registry import KNearestNeighborsProbe

    x, y = _data()
    monkeypatch.setenv("LANDPROBE_NO_JIT", "1")
    forest = RandomForestProbe(n_estimators=10).fit(x, y, 5)
    fast = forest.fast_.get(1)
    assert fast is None or fast.kind == "xgboost"  # the library's walker, never compiled code
    assert np.abs(forest.predict_proba(x)[:, :4] - forest.model_.predict_proba(x)).max() <= 1e-5
    knn = KNearestNeighborsProbe(k=3).fit(x, y, 5)
    assert knn._compiled_search() is None  # scikit-learn's k-d tree
    monkeypatch.setenv("LANDPROBE_NO_JIT", "0")
    assert RandomForestProbe(n_estimators=10).fit(x, y, 5).fast_.get(1).kind == "compiled"
