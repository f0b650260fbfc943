"""Probe behaviour that the end-to-end tests do not pin down: the SVM's numpy prediction against libsvm."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.svm import SVC

from engine.accel import tree_predictor
from engine.probes.registry import DEFAULT_PROBE, PROBES
from engine.probes.svm import SvmProbe


def _blobs(n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian clusters in 6 dimensions, on a reflectance-like scale, unequal class sizes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(500, 120, size=(n_classes, 6))
    sizes = rng.integers(40, 200, size=n_classes)
    x = np.concatenate([rng.normal(c, 90, size=(n, 6)) for c, n in zip(centres, sizes, strict=True)])
    y = np.repeat(np.arange(n_classes), sizes)
    return x.astype("float32"), y


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_svm_vote_matches_libsvm(n_classes: int) -> None:
    x, y = _blobs(n_classes)
    probe = SvmProbe().fit(x, y, n_classes)
    reference = SVC(C=1.0, gamma=1.0 / x.shape[1], class_weight="balanced")
    reference.fit((x - probe.mean_) / probe.scale_, y)
    test, _ = _blobs(n_classes, seed=1)
    classes, proba = probe.predict(test)
    expected = reference.predict((test - probe.mean_) / probe.scale_)
    assert (classes == expected).mean() > 0.995  # float32 kernel: a rare tie may flip
    assert len(np.unique(classes)) == n_classes
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert (proba.argmax(axis=1) == classes).mean() > 0.9  # scores rank the voted class first almost always
    restored = SvmProbe.from_state(*probe.state())
    assert np.array_equal(restored.predict(test)[0], classes)


def test_svm_caps_samples_and_keeps_absent_classes_empty() -> None:
    x, y = _blobs(3)
    probe = SvmProbe(max_samples_per_class=30).fit(x, y, 5)  # classes 3 and 4 have no samples
    assert len(probe.support_) <= 90
    classes, proba = probe.predict(x)
    assert set(np.unique(classes)) <= {0, 1, 2}
    assert np.all(proba[:, 3:] == 0)


def test_svm_with_one_class_predicts_it_everywhere() -> None:
    x, _ = _blobs(2)
    classes, proba = SvmProbe().fit(x, np.full(len(x), 1), 3).predict(x[:10])
    assert (classes == 1).all() and (proba[:, 1] == 1).all()


def test_default_probe_is_registered() -> None:
    assert DEFAULT_PROBE == "svm" and DEFAULT_PROBE in PROBES


@pytest.mark.parametrize("search", ["compiled", "k-d tree"])
def test_knn_matches_scikit_learn(monkeypatch: pytest.MonkeyPatch, search: str) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    from engine.probes import knn as probes
    from engine.probes.registry import KNearestNeighborsProbe

    monkeypatch.setattr(tree_predictor, "MIN_ROWS", 0)  # the compiled search also for these small predictions
    if search == "k-d tree":
        monkeypatch.setattr(probes, "COMPILED_KNN_MAX_SAMPLES", 0)
    x, y = _blobs(4)
    probe = KNearestNeighborsProbe(k=7).fit(x, y, 4)
    assert (probe.blocks_.get(0) is not None) == (search == "compiled")
    reference = KNeighborsClassifier(7, weights="distance").fit(probe.x_, y)
    test, _ = _blobs(4, seed=1)
    proba = probe.predict_proba(test)
    expected = reference.predict_proba((test - probe.mean_) / probe.scale_)
    assert np.allclose(proba, expected, atol=1e-5)
    assert (probe.predict_proba(x[:20]).max(axis=1) == 1).all()  # a training pixel is its own exact match


def _kd_only(probe: Any) -> Any:
    """The same probe answering from its k-d tree alone."""
    import copy

    twin = copy.copy(probe)
    twin.blocks_ = tree_predictor.LazyPredictor(lambda: None, 1)
    return twin


@pytest.mark.parametrize("n_features", [7, 12])
def test_block_search_finds_the_k_d_tree_s_neighbours(n_features: int) -> None:
    from scipy.spatial import cKDTree

    from engine.accel.knn_blocks import BlockNeighbours

    rng = np.random.default_rng(n_features)
    reference = rng.normal(0, 1, (300, n_features)).astype("float32")
    classes = rng.integers(0, 3, 300)
    pixels = rng.normal(0, 1, (1001, n_features)).astype("float32")  # not a multiple of the 16 lanes
    pixels[:5] = reference[10:15]  # distance 0
    dist, idx, proba, sure = BlockNeighbours(reference, classes, 3, 7).query(pixels)
    expected_dist, expected_idx = cKDTree(reference).query(pixels, k=7)
    assert sure.mean() > 0.99
    assert np.array_equal(idx[sure], expected_idx[sure])
    assert np.allclose(dist[sure], expected_dist[sure], rtol=1e-12, atol=0)
    assert (dist[:5, 0] == 0).all() and (proba[:5].max(axis=1) == 1).all()
    assert np.allclose(proba.sum(axis=1)[sure], 1, atol=1e-6)


@pytest.mark.parametrize(("n_features", "n_rows", "k", "n_classes"), [(1, 50, 3, 2), (3, 7, 7, 1), (24, 300, 7, 10)])
def test_block_search_edge_shapes(n_features: int, n_rows: int, k: int, n_classes: int) -> None:
    """One feature, exactly k reference rows, many features and classes."""
    from scipy.spatial import cKDTree

    from engine.accel.knn_blocks import BlockNeighbours

    rng = np.random.default_rng(n_rows)
    reference = rng.normal(0, 1, (n_rows, n_features)).astype("float32")
    pixels = rng.normal(0, 1, (37, n_features)).astype("float32")
    dist, idx, proba, sure = BlockNeighbours(reference, rng.integers(0, n_classes, n_rows), n_classes, k).query(pixels)
    expected_dist, expected_idx = (a.reshape(37, k) for a in cKDTree(reference).query(pixels, k=k))
    assert sure.all() and np.array_equal(idx, expected_idx)
    assert np.allclose(dist, expected_dist, rtol=1e-12, atol=0) and np.allclose(proba.sum(axis=1), 1, atol=1e-6)


def test_block_search_breaks_exact_ties_by_row_and_flags_near_ties() -> None:
    from engine.accel.knn_blocks import BlockNeighbours

    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, (100, 5)).astype("float32")
    twin = np.concatenate([reference, reference[:1]])  # rows 0 and 100 at exactly the same distance
    _, idx, _, sure = BlockNeighbours(twin, np.zeros(101), 1, 2).query(reference[:1])
    assert sure[0] and idx[0].tolist() == [0, 100]
    _, _, _, sure = BlockNeighbours(twin, np.zeros(101), 1, 1).query(reference[:1])
    assert not sure[0]  # which of the two is the one nearest is a tie: left to the float64 search


def test_block_search_standardises_raw_pixels_and_leaves_nan_to_the_caller() -> None:
    from engine.accel.knn_blocks import BlockNeighbours

    rng = np.random.default_rng(1)
    raw = rng.normal(500, 120, (400, 6)).astype("float32")
    mean, scale = raw.mean(axis=0), raw.std(axis=0)
    reference = (raw - mean) / scale
    pixels = rng.normal(500, 120, (64, 6)).astype("float32")
    pixels[3, 2] = np.nan  # one pixel of a group of 16: that group searches everything, the others stay exact
    standard = BlockNeighbours(reference, np.arange(400) % 4, 4, 7).query((pixels - mean) / scale)
    built_in = BlockNeighbours(reference, np.arange(400) % 4, 4, 7, mean, scale).query(pixels)
    assert not standard[3][3] and not built_in[3][3]
    for a, b in zip(standard, built_in, strict=True):
        assert np.array_equal(np.delete(a, 3, axis=0), np.delete(b, 3, axis=0))
    assert built_in[3].sum() > 60


def test_knn_votes_with_ties_everywhere_equal_the_k_d_tree_s(monkeypatch: pytest.MonkeyPatch) -> None:
    """Integer features (like raw digital numbers): many samples at exactly the same distance."""
    from engine.probes.registry import KNearestNeighborsProbe

    monkeypatch.setattr(tree_predictor, "MIN_ROWS", 0)
    rng = np.random.default_rng(4)
    x = rng.integers(0, 6, (600, 7)).astype("float32")
    y = rng.integers(0, 5, 600)
    probe = KNearestNeighborsProbe(k=7).fit(x, y, 5)
    assert probe.blocks_.get(0) is not None
    pixels = rng.integers(0, 6, (5000, 7)).astype("float32")
    assert np.allclose(probe.predict_proba(pixels), _kd_only(probe).predict_proba(pixels), atol=1e-6)


def test_knn_with_more_neighbours_than_the_kernel_keeps_uses_the_k_d_tree() -> None:
    from engine.accel.knn_blocks import MAX_K
    from engine.probes.registry import KNearestNeighborsProbe

    x, y = _blobs(3)
    probe = KNearestNeighborsProbe(k=MAX_K + 1).fit(x, y, 3)
    assert probe.blocks_.get(tree_predictor.MIN_ROWS) is None
    assert np.allclose(probe.predict_proba(x[:50]).sum(axis=1), 1, atol=1e-6)


def test_a_block_search_that_disagrees_with_the_k_d_tree_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.accel import knn_blocks
    from engine.probes.registry import KNearestNeighborsProbe

    query = knn_blocks.BlockNeighbours.query

    def wrong(self: Any, x: np.ndarray) -> tuple[np.ndarray, ...]:
        dist, idx, proba, sure = query(self, x)
        return dist * (1 + 1e-6), idx, proba, sure

    monkeypatch.setattr(knn_blocks.BlockNeighbours, "query", wrong)
    x, y = _blobs(4)
    probe = KNearestNeighborsProbe(k=7).fit(x, y, 4)
    assert probe.blocks_.get(tree_predictor.MIN_ROWS) is None
    assert (probe.predict_proba(x[:20]).max(axis=1) == 1).all()  # the k-d tree answers


def test_knn_neighbour_search_split_over_threads_equals_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.probes.registry import KNearestNeighborsProbe

    monkeypatch.setattr(tree_predictor, "MIN_ROWS", 0)
    x, y = _blobs(4)
    probe = KNearestNeighborsProbe(k=5).fit(x, y, 4)
    assert probe.blocks_.get(0) is not None
    rng = np.random.default_rng(3)
    pixels = x[rng.integers(0, len(x), 40_000)] + rng.normal(0, 0.5, (40_000, x.shape[1])).astype("float32")
    probe.set_threads(1)
    one = probe.predict_proba(pixels)
    probe.set_threads(2)
    assert np.array_equal(probe.predict_proba(pixels), one)


@pytest.mark.parametrize("threads", [1, 2])
def test_random_forest_chunked_prediction_matches_scikit_learn(threads: int) -> None:
    from engine.probes.forest import _RF_CHUNK, RandomForestProbe

    x, y = _blobs(4)
    probe = RandomForestProbe(n_estimators=20).fit(x, y[::-1].copy(), 5)  # class 4 absent: its column stays 0
    rng = np.random.default_rng(2)
    test = (x[rng.integers(0, len(x), _RF_CHUNK + 1234)] + rng.normal(0, 60, (_RF_CHUNK + 1234, 6))).astype("float32")
    restored = RandomForestProbe.from_state(*probe.state())
    restored.set_threads(threads)
    proba = restored.predict_proba(test)
    expected = probe.model_.predict_proba(test)
    assert proba.dtype == np.float32 and proba.shape == (len(test), 5)
    assert np.allclose(proba[:, :4], expected, atol=1e-5) and (proba[:, 4] == 0).all()
    assert np.array_equal(proba.argmax(axis=1), expected.argmax(axis=1))
    assert np.allclose(restored._chunked_proba(test), expected, atol=1e-5)  # more than one chunk
