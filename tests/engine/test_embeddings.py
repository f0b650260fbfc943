"""Embedding rasters: grid, metadata, nodata, determinism, and encoders loaded from files the tests create."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterdata import write_like

from engine.core.errors import InputError, ModelFileError
from engine.embeddings.encode import read_embedding_metadata
from engine.embeddings.encoders import ENCODERS, download_weights, map_bands
from engine.embeddings.inputs import METADATA_KEY
from engine.io.rasters import TMP_MARKER
from engine.jobs.extract_embeddings import extract_embeddings

ETM_SR_MAP = "SR_B1=1, SR_B2=2, SR_B3=3, SR_B4=4, SR_B5=5, SR_B7=6"


def test_rcf_embedding_raster_is_on_the_patch_grid(tmp_path: Path, sample_raster: Path) -> None:
    out = tmp_path / "rcf.tif"
    result = extract_embeddings(str(sample_raster), str(out), "rcf_gaussian", patch_size=16, features=32, seed=3)
    with rasterio.open(sample_raster) as src, rasterio.open(out) as emb:
        assert (emb.width, emb.height, emb.count) == (16, 16, 32)  # ceil(250 / 16)
        assert emb.crs == src.crs
        assert emb.transform == src.transform * src.transform.scale(16)
        assert emb.bounds.left == src.bounds.left and emb.bounds.top == src.bounds.top
        values = emb.read()
        meta = json.loads(emb.tags()[METADATA_KEY])
    assert np.isfinite(values).all()
    assert values.std(axis=(1, 2)).min() > 0  # every dimension varies over the scene
    assert meta["encoder"] == "rcf_gaussian" and meta["patch_size"] == 16 and meta["stride"] == 16
    assert meta["input_bands"][0] == "band 1 reflectance" and len(meta["mean"]) == 8
    assert result.device == "cpu" and result.valid_cells == 256
    again = tmp_path / "again.tif"
    extract_embeddings(str(sample_raster), str(again), "rcf_gaussian", patch_size=16, features=32, seed=3)
    with rasterio.open(again) as emb:
        assert np.array_equal(emb.read(), values)  # seeded
    assert not list(tmp_path.glob(f"*{TMP_MARKER}*"))


def test_thin_strips_give_the_same_raster_and_write_each_tile_once(tmp_path: Path, sample_raster: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.embeddings.encode as embeddings
    import engine.jobs.extract_embeddings as job

    # a block cache too small to hold a tile: GDAL writes each tile to the file as soon as it is touched
    monkeypatch.setattr(job, "streaming_env", lambda: rasterio.Env(GDAL_CACHEMAX=1000))
    whole, thin = tmp_path / "whole.tif", tmp_path / "thin.tif"
    extract_embeddings(str(sample_raster), str(whole), "rcf_gaussian", patch_size=8, features=16, seed=2)
    # 3 cell rows a strip: strips end inside the 16-row output tiles
    monkeypatch.setattr(embeddings, "STRIP_PIXELS", 3 * 32 * 8 * 8)
    extract_embeddings(str(sample_raster), str(thin), "rcf_gaussian", patch_size=8, features=16, seed=2)
    with rasterio.open(whole) as a, rasterio.open(thin) as b:
        assert b.block_shapes[0] == (embeddings.BLOCK_ROWS, 256) and a.height == 32
        assert np.array_equal(a.read(), b.read())
    # a tile written in parts is compressed and appended again each time, leaving dead copies in the file
    assert thin.stat().st_size <= 1.01 * whole.stat().st_size


def test_preview_shows_three_principal_components(tmp_path: Path, sample_raster: Path) -> None:
    out, preview = tmp_path / "emb.tif", tmp_path / "preview.tif"
    result = extract_embeddings(str(sample_raster), str(out), "rcf_gaussian", patch_size=8, stride=4, features=16,
                                output_preview=str(preview))
    assert result.preview == str(preview)
    with rasterio.open(out) as emb, rasterio.open(preview) as rgb:
        assert (rgb.count, rgb.dtypes[0], rgb.nodata) == (3, "uint8", 0)
        assert (rgb.transform, rgb.width, rgb.height, rgb.crs) == (emb.transform, emb.width, emb.height, emb.crs)
        values, cells = rgb.read(), emb.read()
    valid = np.isfinite(cells).all(axis=0)
    assert (values[:, valid] > 0).all() and (values[:, ~valid] == 0).all()
    # the first component is the direction of largest variance: its channel tracks the embedding's projection
    flat = cells[:, valid].T
    centred = flat - flat.mean(axis=0)
    first = np.linalg.svd(centred, full_matrices=False)[2][0]
    correlation = np.corrcoef(values[0][valid].astype(float), centred @ first)[0, 1]
    assert abs(correlation) > 0.9
    assert values[0][valid].std() > 20  # stretched over the byte range, not a flat image


def test_cells_over_nodata_are_nodata(tmp_path: Path, sample_raster: Path) -> None:
    with rasterio.open(sample_raster) as src:
        data, nodata = src.read(), src.nodata
    data[:, :64, :64] = nodata if nodata is not None else 0
    holed = write_like(sample_raster, tmp_path / "holed.tif", data, nodata=nodata if nodata is not None else 0)
    out = tmp_path / "emb.tif"
    extract_embeddings(str(holed), str(out), "rcf_empirical", patch_size=16, features=16, seed=1)
    with rasterio.open(out) as emb:
        values = emb.read()
    assert np.isnan(values[:, :4, :4]).all()
    assert np.isfinite(values[:, 5:, 5:]).all()
    assert read_embedding_metadata(out)["encoder"] == "rcf_empirical"


def test_resnet18_with_local_landsat_weights_matches_a_direct_forward(tmp_path: Path, sample_raster: Path) -> None:
    import timm

    torch.manual_seed(0)
    reference = timm.create_model("resnet18", in_chans=6, num_classes=0).eval()
    weights = tmp_path / "resnet18_landsat_etm_sr.pth"
    torch.save(reference.state_dict(), weights)
    out = tmp_path / "resnet.tif"
    extract_embeddings(str(sample_raster), str(out), "resnet18", patch_size=32, weights="LANDSAT_ETM_SR_MOCO",
                       weights_file=str(weights), band_map=ETM_SR_MAP, batch_size=16)
    with rasterio.open(out) as emb, rasterio.open(sample_raster) as src:
        assert (emb.count, emb.width, emb.height) == (512, 8, 8)
        cell = emb.read()[:, 2, 3]
        patch = src.read([1, 2, 3, 4, 5, 6], window=((64, 96), (96, 128))).astype("float32") / 255  # SSL4EO-L
        meta = json.loads(emb.tags()[METADATA_KEY])
    with torch.inference_mode():
        expected = reference(torch.from_numpy(patch)[None])[0].numpy()
    assert np.allclose(cell, expected, rtol=1e-4, atol=1e-4)
    assert meta["weights"] == "ResNet18_Weights.LANDSAT_ETM_SR_MOCO" and meta["pretrained"] is True


def test_weights_that_are_not_a_plain_state_dict_are_refused(tmp_path: Path, sample_raster: Path) -> None:
    bad = tmp_path / "pickled.pth"
    torch.save({"model": torch.nn.Linear(2, 2)}, bad)  # a module object: needs unpickling code
    with pytest.raises(ModelFileError, match="plain state dict"):
        extract_embeddings(str(sample_raster), str(tmp_path / "x.tif"), "checkpoint", architecture="resnet18",
                           weights_file=str(bad))
    with pytest.raises(ModelFileError, match="does not exist"):
        extract_embeddings(str(sample_raster), str(tmp_path / "x.tif"), "resnet18", weights="LANDSAT_ETM_SR_MOCO",
                           weights_file=str(tmp_path / "missing.pth"), band_map=ETM_SR_MAP)
    assert not list(tmp_path.glob("x.tif*"))


def test_unmappable_bands_list_what_the_weights_expect() -> None:
    with pytest.raises(InputError, match="B08A"):
        map_bands(["red", "green", "blue"], ["B02", "B03", "B04", "B08A"], None)
    assert map_bands(["B2", "B3", "B4"], ["B02", "B03", "B04"], None) == [1, 2, 3]
    assert map_bands(["a", "b"], ["SR_B4", "SR_B5"], "SR_B4=2, SR_B5=1") == [2, 1]


def test_offline_download_says_where_to_put_the_file() -> None:
    class Offline:
        url = "https://example.invalid/resnet18_sentinel2_all_moco-59bfdff9.pth"

        def get_state_dict(self, progress: bool) -> dict:
            raise OSError("network unreachable")

    with pytest.raises(ModelFileError, match=r"resnet18_sentinel2_all_moco-59bfdff9\.pth"):
        download_weights(Offline())


@pytest.mark.parametrize("name", list(ENCODERS))
def test_encoder_contract(name: str, tmp_path: Path, sample_raster: Path) -> None:
    """Every registry entry: builds, encodes a small raster on its grid, and survives the model-file round trip."""
    import timm

    from engine.embeddings.encoders import EncoderOptions, encoder_state, rebuild_encoder

    spec = ENCODERS[name]
    assert spec.default_patch >= spec.min_patch >= 1 and spec.family in {"rcf", "torchgeo", "checkpoint"}
    with rasterio.open(sample_raster) as src:
        small = write_like(sample_raster, tmp_path / "small.tif", src.read(window=((0, 64), (0, 64))))
    options = {"features": 16}
    if spec.family == "checkpoint":
        net = timm.create_model("resnet18", pretrained=False, in_chans=8, num_classes=0)
        torch.save(net.state_dict(), tmp_path / "mine.pth")
        options |= {"architecture": "resnet18", "weights_file": str(tmp_path / "mine.pth")}
    patch = spec.default_patch
    result = extract_embeddings(str(small), str(tmp_path / "emb.tif"), name, patch, patch, **options)
    with rasterio.open(tmp_path / "emb.tif") as emb, rasterio.open(small) as src:
        values = emb.read()
        assert (emb.width, emb.height, emb.count) == (-(-64 // patch), -(-64 // patch), result.dim)
        assert emb.transform == src.transform * src.transform.scale(patch)
    assert np.isfinite(values).all() and result.dim > 1
    assert read_embedding_metadata(tmp_path / "emb.tif")["encoder"] == name
    # the model file keeps the encoder as arrays; rebuilt, it gives the same embeddings
    from engine.embeddings.encode import prepare_encoder

    with rasterio.open(small) as src:
        built = prepare_encoder(src, EncoderOptions(name, patch, patch, None, options.get("weights_file"), None,
                                                    options.get("architecture"), 16))[0]
    params, arrays = encoder_state(built)
    rebuilt = rebuild_encoder(name, json.loads(json.dumps(params)), arrays)
    batch = torch.randn(2, len(built.bands), patch, patch)
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt.module(batch), built.module(batch))


def test_bad_patch_and_stride_are_refused(tmp_path: Path, sample_raster: Path) -> None:
    with pytest.raises(InputError, match="stride"):
        extract_embeddings(str(sample_raster), str(tmp_path / "x.tif"), patch_size=8, stride=16)
    with pytest.raises(InputError, match="Unknown encoder"):
        extract_embeddings(str(sample_raster), str(tmp_path / "x.tif"), encoder="sam")
