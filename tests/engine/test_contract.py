"""The shared contract of every registered probe and encoder, on tiny seeded data (part of ``make test-fast``).

Parametrized by registry name: a probe added to :data:`engine.probes.registry.PROBES` or an encoder added to
:data:`engine.embeddings.encoders.ENCODERS` is covered here with no new test code. What each must do:

- probe: fit on features (float32, n x f) and class indices; ``predict`` gives one class per row and probabilities of
  shape (n, n_classes), float32, non-negative, rows summing to 1, the class being the most probable (but for the
  probes of ``VOTE_NOT_ARGMAX``, which say why); better than chance on new pixels; a class without samples is never
  predicted; ``state`` is JSON-able parameters and arrays, saved in a model file and loaded back
  (:mod:`engine.probes.model_file`) it predicts identically; a ``class_weight`` option accepts ``balanced`` and
  ``none``, is kept in the model file, and ``balanced`` gives a rare class more weight than ``none``.
- encoder: builds without downloading anything (torchgeo backbones random-initialised, a checkpoint from a state dict
  the test writes), maps a batch of normalised chips (B, C, p, p) at its smallest and its default patch to finite
  float32 embeddings (B, dim), deterministically; its state (:func:`engine.embeddings.encoders.encoder_state`: JSON-able
  parameters and arrays) rebuilt (:func:`engine.embeddings.encoders.rebuild_encoder`) gives the same embeddings, also
  through a model file with a probe on its embeddings (for the backbones of tens of megabytes, a slow test), and
  weights that do not fit are refused.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.core.errors import ModelFileError
from engine.embeddings.encoders import (
    ENCODERS,
    BuiltEncoder,
    EncoderRequest,
    build_encoder,
    encoder_state,
    get_encoder,
    rebuild_encoder,
)
from engine.probes.base import CLASS_WEIGHTS, Probe
from engine.probes.model_file import load_model, save_model
from engine.probes.registry import DEFAULT_PROBE, PROBES, get_probe

N_CLASSES, PER_CLASS, N_FEATURES = 3, 30, 4
#: Constructor arguments that keep a probe tiny, passed only to the probes whose constructor takes them. Leaves of
#: 3 samples: fully grown trees (1 sample a leaf) have pure leaves, where class weights change the splits only.
SMALL = {"n_estimators": 5, "min_samples_leaf": 3}
#: Probes whose class is not always the most probable, and why; a new probe is held to the exact rule.
VOTE_NOT_ARGMAX = {"svm": "the class is libsvm's one-vs-one vote; the coupled scores rank it first almost always "
                          "(engine/probes/svm.py)"}
#: Probabilities agree to this: ``predict`` with ``predict_proba``, and a probe with itself loaded from a model file.
ATOL = 1e-6


def _blobs(sizes: tuple[int, ...] = (PER_CLASS,) * N_CLASSES, spread: float = 1.0, seed: int = 0,
           draw: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters (centres from ``seed``, pixels from ``draw``) on a reflectance-like scale, float32 features."""
    centres = np.random.default_rng(seed).normal(0, 3, size=(len(sizes), N_FEATURES))
    rng = np.random.default_rng([seed, draw])
    x = np.concatenate([rng.normal(c, spread, size=(n, N_FEATURES)) for c, n in zip(centres, sizes, strict=True)])
    return (400 + 100 * x).astype("float32"), np.repeat(np.arange(len(sizes)), sizes).astype("int64")


def _make(name: str, **options: Any) -> Probe:
    """A probe of the registry, tiny where its constructor allows, fitting on one thread."""
    cls = PROBES[name]
    accepted = inspect.signature(cls).parameters
    probe = cls(**{k: v for k, v in (SMALL | options).items() if k in accepted})
    probe.fit_threads = 1
    return probe


def _weighted(name: str) -> bool:
    return "class_weight" in inspect.signature(PROBES[name]).parameters


def _manifest(n_classes: int, band_count: int = N_FEATURES) -> dict[str, Any]:
    return {"classes": [{"code": k + 1, "name": f"class {k + 1}"} for k in range(n_classes)],
            "input": {"band_count": band_count}}


def _check_prediction(probe: Probe, x: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The prediction contract on ``x``; returns the classes and probabilities."""
    classes, proba = probe.predict(x)
    assert proba is not None
    assert proba.shape == (len(x), n_classes) and proba.dtype == np.float32
    assert classes.shape == (len(x),) and np.issubdtype(classes.dtype, np.integer)
    assert np.isfinite(proba).all() and (proba >= 0).all()
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    if probe.name in VOTE_NOT_ARGMAX:  # near a tie only: on most rows the most probable class is still the class
        assert (proba.argmax(axis=1) == classes).mean() >= 0.9, VOTE_NOT_ARGMAX[probe.name]
    else:
        assert np.array_equal(proba.argmax(axis=1), classes)
    alone, none = probe.predict(x, proba=False)
    assert none is None and np.array_equal(alone, classes)
    assert np.allclose(probe.predict_proba(x), proba, atol=ATOL)
    return classes, proba


@pytest.mark.parametrize("name", list(PROBES))
def test_probe_is_registered_under_its_name(name: str) -> None:
    cls = PROBES[name]
    assert issubclass(cls, Probe) and cls.name == name and cls.label
    assert get_probe(name) is cls
    assert DEFAULT_PROBE in PROBES


@pytest.mark.parametrize("name", list(PROBES))
def test_probe_fits_predicts_saves_and_loads(name: str, tmp_path: Path) -> None:
    x, y = _blobs()
    test, expected = _blobs(draw=1)  # new pixels of the same clusters
    probe = _make(name).fit(x, y, N_CLASSES)
    assert isinstance(probe, PROBES[name])
    classes, proba = _check_prediction(probe, test, N_CLASSES)
    assert (classes == expected).mean() > 0.8  # separable clusters: far above chance (1/3)

    params, arrays, blobs = probe.state()
    assert json.loads(json.dumps(params)) == params  # plain JSON, nothing the model file would stringify
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    assert all(isinstance(b, bytes) for b in blobs.values())

    path = save_model(tmp_path / f"{name}.lpmodel", _manifest(N_CLASSES), probe)
    loaded = load_model(path)
    assert loaded.manifest["method"] == name and loaded.encoder_arrays == {}
    assert type(loaded.probe) is PROBES[name]
    again, again_proba = _check_prediction(loaded.probe, test, N_CLASSES)
    assert np.array_equal(again, classes)
    assert np.allclose(again_proba, proba, atol=ATOL)

    loaded.probe.set_threads(1)  # what callers that parallelise over windows do: same answer
    assert np.array_equal(loaded.probe.predict(test)[0], classes)


@pytest.mark.parametrize("name", list(PROBES))
def test_probe_never_predicts_a_class_without_samples(name: str, tmp_path: Path) -> None:
    x, y = _blobs()
    probe = _make(name).fit(x, y, N_CLASSES + 1)  # the last class has no sample
    classes = _check_prediction(probe, x, N_CLASSES + 1)[0]
    assert (classes < N_CLASSES).all()
    loaded = load_model(save_model(tmp_path / "absent.lpmodel", _manifest(N_CLASSES + 1), probe)).probe
    assert np.array_equal(_check_prediction(loaded, x, N_CLASSES + 1)[0], classes)


@pytest.mark.parametrize("name", [n for n in PROBES if _weighted(n)])
def test_probe_class_weighting(name: str, tmp_path: Path) -> None:
    x, y = _blobs(sizes=(60, 30, 10), spread=2.5)  # overlapping clusters, class 2 rare
    test = _blobs(sizes=(100, 100, 100), spread=2.5, draw=1)[0]  # new pixels, as many of each class
    rare = {}
    for weighting in CLASS_WEIGHTS:
        probe = _make(name, class_weight=weighting).fit(x, y, N_CLASSES)
        assert probe.class_weight == weighting
        path = save_model(tmp_path / f"{weighting}.lpmodel", _manifest(N_CLASSES), probe)
        loaded = load_model(path)
        assert loaded.manifest["method_params"]["class_weight"] == weighting
        assert loaded.probe.class_weight == weighting
        proba = _check_prediction(loaded.probe, test, N_CLASSES)[1]
        assert np.allclose(proba, probe.predict_proba(test), atol=ATOL)
        rare[weighting] = proba[:, 2].sum()
    # balanced: the rare class counts as much as the common ones, so it takes a clearly larger share of new pixels
    assert rare["balanced"] > 1.1 * rare["none"]
    with pytest.raises(ValueError, match="class_weight"):
        _make(name, class_weight="inverse")


# Encoders ------------------------------------------------------------------------------------------------------------

BANDS, CHIPS = 4, 6
#: The timm architecture of the checkpoint family's state dict (written by the test: nothing is downloaded).
CHECKPOINT_ARCHITECTURE = "resnet18"


def _request(name: str, folder: Path) -> EncoderRequest:
    """What a raster of ``BANDS`` bands would ask of encoder ``name``, without weights to download."""
    spec = ENCODERS[name]

    def sample_patches(n: int, size: int, seed: int) -> np.ndarray:  # raw values, as read from a raster
        return np.random.default_rng(seed).normal(400, 100, size=(n, BANDS, size, size)).astype("float32")

    options: dict[str, Any] = {}
    if spec.family == "checkpoint":  # a state dict of the user's: one the test makes
        import timm
        import torch

        torch.manual_seed(0)
        net = timm.create_model(CHECKPOINT_ARCHITECTURE, pretrained=False, in_chans=BANDS, num_classes=0)
        torch.save(net.state_dict(), folder / "mine.pth")
        options = {"architecture": CHECKPOINT_ARCHITECTURE, "weights_file": str(folder / "mine.pth")}
    # torchgeo backbones without weights: random-initialised (the builder says so), as the weights cannot be fetched
    return EncoderRequest(spec, [f"band {i}" for i in range(1, BANDS + 1)],
                          (np.full(BANDS, 400.0), np.full(BANDS, 100.0)), sample_patches, features=16, seed=0,
                          **options)


def _encode(built: BuiltEncoder, chips: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        out = built.module(torch.from_numpy(chips))
    assert isinstance(out, torch.Tensor)
    return out.numpy()


@pytest.mark.parametrize("name", list(ENCODERS))
def test_encoder_is_registered_under_its_name(name: str) -> None:
    spec = ENCODERS[name]
    assert spec.name == name and spec.label and get_encoder(name) is spec
    assert spec.family in {"rcf", "torchgeo", "checkpoint"}
    assert spec.default_patch >= spec.min_patch >= 1
    if spec.weight_enum:  # the torchgeo weights it names exist
        import torchgeo.models

        assert list(getattr(torchgeo.models, spec.weight_enum))


@pytest.mark.parametrize("name", list(ENCODERS))
def test_encoder_builds_encodes_and_round_trips(name: str, tmp_path: Path) -> None:
    spec = ENCODERS[name]
    built = build_encoder(_request(name, tmp_path))
    assert built.bands == list(range(1, BANDS + 1)) and built.dim > 1
    assert built.mean.shape == built.std.shape == (BANDS,) and (built.std > 0).all()
    assert json.loads(json.dumps(built.metadata)) == built.metadata
    assert not built.module.training

    rng = np.random.default_rng(1)
    for patch in sorted({spec.min_patch, spec.default_patch}):
        chips = rng.normal(size=(CHIPS, BANDS, patch, patch)).astype("float32")  # normalised chips
        embeddings = _encode(built, chips)
        assert embeddings.shape == (CHIPS, built.dim) and embeddings.dtype == np.float32
        assert np.isfinite(embeddings).all()
        assert not np.allclose(embeddings[0], embeddings[1])  # different chips, different embeddings
        assert np.array_equal(_encode(built, chips), embeddings)  # deterministic

    # its state is JSON-able parameters and plain arrays (what a model file keeps); rebuilt, the same encoder
    params, arrays = encoder_state(built)
    params = json.loads(json.dumps(params))
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    rebuilt = rebuild_encoder(name, params, arrays)
    assert (rebuilt.dim, rebuilt.bands, rebuilt.metadata) == (built.dim, built.bands, built.metadata)
    assert np.array_equal(rebuilt.mean, built.mean) and np.array_equal(rebuilt.std, built.std)
    assert np.allclose(_encode(rebuilt, chips), embeddings, rtol=1e-5, atol=1e-6)
    if arrays:  # weights that do not fit the architecture are refused, not half-loaded
        with pytest.raises(ModelFileError, match="do not fit"):
            rebuild_encoder(name, params, dict(list(arrays.items())[1:]))


@pytest.mark.parametrize("name", list(ENCODERS))
def test_encoder_in_a_model_file(name: str, tmp_path: Path) -> None:
    """Stored as training stores it (manifest entry, ``encoder.npz``) with a probe on its embeddings, and loaded."""
    spec = ENCODERS[name]
    built = build_encoder(_request(name, tmp_path))
    chips = np.random.default_rng(1).normal(size=(CHIPS, BANDS, spec.min_patch, spec.min_patch)).astype("float32")
    embeddings = _encode(built, chips)
    params, arrays = encoder_state(built)
    features = {"recipe": "encoder", "encoder": {"name": name, "patch_size": spec.min_patch,
                                                 "stride": spec.min_patch, **params}}
    probe = get_probe(DEFAULT_PROBE)().fit(embeddings, np.arange(CHIPS) % N_CLASSES, N_CLASSES)
    path = save_model(tmp_path / "encoder.lpmodel", _manifest(N_CLASSES, BANDS) | {"features": features}, probe,
                      arrays)
    loaded = load_model(path)
    stored = loaded.manifest["features"]["encoder"]
    assert set(loaded.encoder_arrays) == set(arrays)
    rebuilt = rebuild_encoder(stored["name"], stored, loaded.encoder_arrays)
    again = _encode(rebuilt, chips)
    assert np.allclose(again, embeddings, rtol=1e-5, atol=1e-6)
    assert np.array_equal(loaded.probe.predict(again)[0], probe.predict(embeddings)[0])
