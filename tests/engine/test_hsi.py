"""Hyperspectral data (MATLAB files, synthetic cube, pixel split) and the spectral-spatial attention network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import scipy.io
import torch

from engine.core.errors import InputError
from engine.deep.ssan import SpectralSpatialAttentionNet, fit_pca
from engine.io.hsi import mat_to_geotiff, read_mat_array, stratified_pixel_split, synthetic_cube

INDIAN_PINES_GT = Path(__file__).resolve().parents[1] / "data" / "hsi" / "Indian_pines_gt.mat"


@pytest.fixture(scope="module")
def indian_pines_gt() -> np.ndarray:
    return read_mat_array(INDIAN_PINES_GT)


def test_cube_mat_to_geotiff_round_trip(tmp_path: Path) -> None:
    cube = np.random.default_rng(0).integers(-500, 9000, size=(20, 30, 7)).astype("int16")
    scipy.io.savemat(tmp_path / "cube.mat", {"cube": cube})
    out = mat_to_geotiff(tmp_path / "cube.mat", tmp_path / "cube.tif")
    with rasterio.open(out) as src:
        assert (src.count, src.height, src.width) == (7, 20, 30)
        assert src.dtypes[0] == "int16"
        assert src.nodata is None and src.crs is None
        assert src.descriptions == tuple(f"band {i}" for i in range(1, 8))
        assert src.transform.e == -1 and src.transform.f == 20
        np.testing.assert_array_equal(src.read(), np.moveaxis(cube, 2, 0))
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tif"] == ["cube.tif"]  # no temporary left


def test_float_cube_is_float32(tmp_path: Path) -> None:
    cube = np.random.default_rng(1).random((9, 11, 4))
    scipy.io.savemat(tmp_path / "f.mat", {"x": cube})
    with rasterio.open(mat_to_geotiff(tmp_path / "f.mat", tmp_path / "f.tif")) as src:
        assert src.dtypes[0] == "float32"
        np.testing.assert_allclose(src.read(), np.moveaxis(cube, 2, 0).astype("float32"))


def test_ground_truth_mat_to_geotiff(tmp_path: Path, indian_pines_gt: np.ndarray) -> None:
    out = mat_to_geotiff(INDIAN_PINES_GT, tmp_path / "gt.tif")
    with rasterio.open(out) as src:
        assert (src.count, src.dtypes[0], src.nodata, src.descriptions) == (1, "uint8", 0, ("class",))
        np.testing.assert_array_equal(src.read(1), indian_pines_gt)


def test_mat_keys_are_checked(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "two.mat", {"a": np.zeros((2, 2)), "b": np.ones((2, 2))})
    with pytest.raises(InputError, match="a, b"):
        read_mat_array(tmp_path / "two.mat")
    with pytest.raises(InputError, match="no array named 'c'"):
        read_mat_array(tmp_path / "two.mat", "c")
    np.testing.assert_array_equal(read_mat_array(tmp_path / "two.mat", "b"), np.ones((2, 2)))
    with pytest.raises(InputError, match="does not exist"):
        read_mat_array(tmp_path / "missing.mat")


def test_indian_pines_ground_truth(indian_pines_gt: np.ndarray) -> None:
    assert indian_pines_gt.shape == (145, 145)
    assert set(np.unique(indian_pines_gt)) == set(range(17))
    assert int((indian_pines_gt > 0).sum()) == 10249


def test_synthetic_cube(indian_pines_gt: np.ndarray) -> None:
    cube = synthetic_cube(indian_pines_gt, n_bands=60, seed=3)
    assert cube.shape == (145, 145, 60) and cube.dtype == np.float32
    np.testing.assert_array_equal(cube, synthetic_cube(indian_pines_gt, n_bands=60, seed=3))
    assert not np.array_equal(cube, synthetic_cube(indian_pines_gt, n_bands=60, seed=4))
    means = np.stack([cube[indian_pines_gt == c].mean(axis=0) for c in range(1, 17)])
    gaps = np.linalg.norm(means[:, None] - means[None], axis=2)[np.triu_indices(16, 1)]
    assert gaps.min() > 0.005  # every pair of class mean spectra differs
    assert 0 < cube.mean() < 1  # reflectance-like values


def test_stratified_pixel_split(indian_pines_gt: np.ndarray) -> None:
    train, test = stratified_pixel_split(indian_pines_gt, 0.1, seed=0)
    flat = indian_pines_gt.ravel()
    assert np.intersect1d(train, test).size == 0
    assert train.size + test.size == 10249 and (flat[train] > 0).all() and (flat[test] > 0).all()
    for c in range(1, 17):
        n = int((flat == c).sum())
        assert int((flat[train] == c).sum()) == max(1, round(0.1 * n))
    again, _ = stratified_pixel_split(indian_pines_gt, 0.1, seed=0)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, stratified_pixel_split(indian_pines_gt, 0.1, seed=1)[0])
    with pytest.raises(InputError):
        stratified_pixel_split(indian_pines_gt, 1.5, seed=0)


def test_fit_pca() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.normal(size=(500, 3)) @ np.diag([5.0, 1.0, 0.1]) + [1, 2, 3]
    mean, components = fit_pca(pixels, 5)
    assert mean.dtype == components.dtype == np.float32 and components.shape == (3, 3)
    np.testing.assert_allclose(mean, pixels.mean(0), atol=1e-5)
    np.testing.assert_allclose(np.abs(components), np.eye(3), atol=0.05)  # ordered by variance
    np.testing.assert_allclose(components @ components.T, np.eye(3), atol=1e-5)


def test_network_shapes_and_pca_buffers() -> None:
    net = SpectralSpatialAttentionNet(n_bands=130, n_classes=5, window=7, n_pca=10, hidden=16)
    assert net.group == 3 and net.steps == 44  # 130 bands in steps of ceil(130 / 50) = 3, zero padded
    assert net(torch.randn(4, 130, 7, 7)).shape == (4, 5)
    mean, components = fit_pca(np.random.default_rng(0).normal(size=(50, 130)), 10)
    net.set_pca(mean, components)
    state = net.state_dict()
    assert state["pca_components"].shape == (10, 130)
    torch.testing.assert_close(state["pca_mean"], torch.from_numpy(mean))
    assert all(p is not net.pca_components for p in net.parameters())  # fixed, not trained
    clone = SpectralSpatialAttentionNet(n_bands=130, n_classes=5, window=7, n_pca=10, hidden=16)
    clone.load_state_dict(state)
    torch.testing.assert_close(clone.pca_components, torch.from_numpy(components))
    with pytest.raises(ValueError, match="pca_components"):
        net.set_pca(None, np.zeros((3, 130)))


def tiny_problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes of chips whose centre spectra differ in shape; 20 bands, 5 x 5 chips."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(96) % 3
    bands = torch.linspace(0, 1, 20)
    spectra = torch.stack([torch.sin(3 * bands), torch.cos(3 * bands), bands - 0.5])
    x = spectra[y][:, :, None, None] + 0.3 * torch.randn(96, 20, 5, 5, generator=gen)
    return x, y


def test_network_learns_tiny_problem() -> None:
    torch.manual_seed(0)
    x, y = tiny_problem()
    net = SpectralSpatialAttentionNet(n_bands=20, n_classes=3, window=5, n_pca=6, hidden=16)
    mean, components = fit_pca(x.permute(0, 2, 3, 1).reshape(-1, 20).numpy(), 6)
    net.set_pca(mean, components)
    optimiser = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    net.eval()
    accuracy = (net(x).argmax(1) == y).float().mean().item()
    assert losses[-1] < 0.5 * losses[0]
    assert accuracy > 0.95


def test_network_onnx_export_matches_torch(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = SpectralSpatialAttentionNet(n_bands=75, n_classes=4, window=7, n_pca=8, hidden=16).eval()
    net.set_pca(torch.randn(75), torch.linalg.qr(torch.randn(75, 8))[0].T)
    x = torch.randn(3, 75, 7, 7)
    path = tmp_path / "ssan.onnx"
    torch.onnx.export(net, (x,), str(path), input_names=["chips"], output_names=["logits"],
                      dynamic_axes={"chips": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x2 = torch.randn(5, 75, 7, 7)  # another batch size through the dynamic axis
    for chips in (x, x2):
        (onnx_logits,) = session.run(None, {"chips": chips.numpy()})
        with torch.no_grad():
            np.testing.assert_allclose(onnx_logits, net(chips).numpy(), atol=1e-4, rtol=1e-4)
