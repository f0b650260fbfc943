"""Deep fine-tuning: training with Lightning, the package, whole-scene maps, cancel and resume, ONNX, refusals."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio

from engine.core.errors import CancelledError, InputError, ModelFileError
from engine.core.feedback import Feedback
from engine.deep.package import load_deep_model
from engine.io.rasters import TMP_MARKER
from engine.jobs.classify_raster import classify_raster
from engine.jobs.finetune import finetune, run_folder

FAST = {"epochs": 2, "batch_size": 32, "max_samples_per_class": 40, "patience": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def patch_model(tmp_path_factory: pytest.TempPathFactory, sample_raster: Path, sample_labels: Path) -> Path:
    """A ResNet-18 patch classifier trained from scratch for two epochs, with a report."""
    out = tmp_path_factory.mktemp("deep") / "patch.lpmodel"
    finetune(str(sample_raster), str(sample_labels), "class", str(out), task="patch", backbone="resnet18",
             chip_size=32, output_report=str(out.with_suffix(".json")), **FAST)
    return out


def test_patch_model_package_holds_safetensors_and_the_recipe(patch_model: Path) -> None:
    with zipfile.ZipFile(patch_model) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "weights.safetensors"]  # no pickle anywhere
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["method"] == "deep"
    assert manifest["network"]["task"] == "patch" and manifest["network"]["chip"] == 32
    assert manifest["input"]["bands_read"] == list(range(1, 9)) and len(manifest["input"]["mean"]) == 8
    assert [h["epoch"] for h in manifest["history"]] == [1, 2]
    assert all(np.isfinite(h["train_loss"]) and 0 <= h["val_acc"] <= 1 for h in manifest["history"])
    assert manifest["validation"]["scheme"] == "polygon_groups" and manifest["validation"]["n"] > 0
    assert manifest["training"]["n_train"] + manifest["training"]["n_validation"] == \
        manifest["training"]["n_samples_used"]
    model = load_deep_model(patch_model)
    assert not model.network.training
    run = run_folder(patch_model)
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "csv" / "version_0" / "metrics.csv").is_file() and any((run / "tensorboard").iterdir())


def test_report_has_the_training_curve(patch_model: Path) -> None:
    report = json.loads(patch_model.with_suffix(".json").read_text())
    curve = report["training_curve"]
    assert len(curve["epochs"]) == 2 and curve["seconds_per_epoch"] > 0 and curve["device"] == "CPU"
    assert Path(curve["png"]).read_bytes().startswith(b"\x89PNG")
    html = patch_model.with_suffix(".html").read_text()
    assert "Training curve" in html and "data:image/png;base64," in html


def test_patch_map_keeps_the_grid_and_does_not_depend_on_the_window(tmp_path: Path, sample_raster: Path,
                                                                     patch_model: Path) -> None:
    big, small = tmp_path / "big.tif", tmp_path / "small.tif"
    classify_raster(str(sample_raster), str(patch_model), str(big), output_probability=str(tmp_path / "p.tif"))
    classify_raster(str(sample_raster), str(patch_model), str(small), block=96)
    manifest = json.loads(zipfile.ZipFile(patch_model).read("manifest.json"))
    codes = {c["code"] for c in manifest["classes"]}
    with rasterio.open(sample_raster) as src, rasterio.open(big) as a, rasterio.open(small) as b, \
            rasterio.open(tmp_path / "p.tif") as p:
        assert (a.crs, a.transform, a.width, a.height) == (src.crs, src.transform, src.width, src.height)
        values = a.read(1)
        assert set(np.unique(values)) <= codes | {a.nodata}
        assert np.array_equal(values, b.read(1))  # chips read across window edges: no seams
        proba = p.read()
        assert np.allclose(proba.sum(axis=0), 1, atol=1e-4)
    assert not list(tmp_path.glob(f"*{TMP_MARKER}*"))


def test_segmentation_blends_tiles_the_same_whatever_the_window(tmp_path: Path, sample_raster: Path,
                                                                sample_labels: Path) -> None:
    model = tmp_path / "unet.lpmodel"
    result = finetune(str(sample_raster), str(sample_labels), "class", str(model), task="segmentation",
                      backbone="resnet18", chip_size=64, **FAST)
    assert result.epochs_run == 2 and result.overall_accuracy is not None
    manifest = json.loads(zipfile.ZipFile(model).read("manifest.json"))
    assert manifest["training"]["n_validation"] > 0 and manifest["training"]["n_tiles"] > 0
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    classify_raster(str(sample_raster), str(model), str(a), output_probability=str(tmp_path / "pa.tif"))
    classify_raster(str(sample_raster), str(model), str(b), output_probability=str(tmp_path / "pb.tif"), block=80)
    with rasterio.open(tmp_path / "pa.tif") as pa, rasterio.open(tmp_path / "pb.tif") as pb:
        assert np.allclose(pa.read(), pb.read(), atol=1e-5)
    with rasterio.open(a) as x, rasterio.open(b) as y:
        assert np.array_equal(x.read(1), y.read(1))
    import onnxruntime

    from engine.jobs.export_onnx import export_onnx

    export_onnx(str(model), str(tmp_path / "unet.onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "unet.onnx"), providers=["CPUExecutionProvider"])
    scores = session.run(None, {"input": np.zeros((1, 8, 96, 128), dtype="float32")})[0]
    assert scores.shape == (1, len(manifest["classes"]), 96, 128)  # any tile size, not only the training one


class _CancelAfter(Feedback):
    """Cancels once ``n`` batches have been reported (training's batches report a fraction and no message)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.training = False

    def _report(self, fraction: float, message: str | None) -> None:
        if message is not None:
            self.training = message.startswith("Training")
        elif self.training:
            self.n -= 1
            if self.n <= 0:
                self.cancel()


def test_cancel_keeps_the_last_epoch_and_resume_continues(tmp_path: Path, sample_raster: Path,
                                                          sample_labels: Path) -> None:
    model = tmp_path / "cut.lpmodel"
    options = {**FAST, "epochs": 3}
    common = {"task": "patch", "backbone": "rcf_gaussian", "freeze_epochs": 99, "chip_size": 16, **options}
    args = (str(sample_raster), str(sample_labels), "class", str(model))
    # cancelled in the first batch: nothing to resume, so the run folder this run made goes too
    with pytest.raises(CancelledError, match="first epoch"):
        finetune(*args, feedback=_CancelAfter(1), **common)
    assert list(tmp_path.iterdir()) == []  # no model, no run folder, no temporary file
    # 40 samples per class, batch 32: a few batches per epoch; the 7th batch is past the first epoch
    with pytest.raises(CancelledError, match="Resume"):
        finetune(*args, feedback=_CancelAfter(7), **common)
    assert not model.exists() and not list(tmp_path.glob(f"*{TMP_MARKER}*"))
    last = run_folder(model) / "checkpoints" / "last.ckpt"
    assert last.is_file()
    import torch

    completed = torch.load(last, map_location="cpu", weights_only=True)["epoch"] + 1
    assert 1 <= completed < 3  # cancelled in the middle of the run, after at least one epoch
    with pytest.raises(CancelledError):  # a resumed run cancelled at once: the folder it resumes from stays
        finetune(*args, resume=True, feedback=_CancelAfter(1), **common)
    assert last.is_file() and torch.load(last, map_location="cpu", weights_only=True)["epoch"] + 1 == completed
    result = finetune(*args, resume=True, **common)
    assert model.is_file() and result.epochs_run == 3 - completed
    manifest = json.loads(zipfile.ZipFile(model).read("manifest.json"))
    assert [h["epoch"] for h in manifest["history"]] == [1, 2, 3]  # the history came back with the checkpoint
    assert (run_folder(model) / "csv" / "version_2" / "metrics.csv").is_file()  # the last try's log
    assert (run_folder(model) / "landprobe-debug.log").is_file()


def test_a_cancel_never_removes_a_folder_that_was_there(tmp_path: Path, sample_raster: Path,
                                                        sample_labels: Path) -> None:
    model = tmp_path / "mine.lpmodel"
    notes = run_folder(model) / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("the user's own file")
    with pytest.raises(CancelledError):
        finetune(str(sample_raster), str(sample_labels), "class", str(model), task="patch", backbone="rcf_gaussian",
                 chip_size=16, feedback=_CancelAfter(1), **FAST)
    assert notes.read_text() == "the user's own file" and not model.exists()


def test_same_seed_same_weights_on_cpu(tmp_path: Path, sample_raster: Path, sample_labels: Path) -> None:
    from safetensors.numpy import load

    blobs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.lpmodel"
        finetune(str(sample_raster), str(sample_labels), "class", str(out), task="patch", backbone="rcf_gaussian",
                 chip_size=16, seed=5, **FAST)
        blobs.append(load(zipfile.ZipFile(out).read("weights.safetensors")))
    assert blobs[0].keys() == blobs[1].keys()
    assert all(np.array_equal(blobs[0][k], blobs[1][k]) for k in blobs[0])


def test_onnx_export_matches_pytorch(tmp_path: Path, patch_model: Path, sample_model: Path) -> None:
    import onnxruntime

    from engine.jobs.export_onnx import export_onnx

    out = tmp_path / "patch.onnx"
    result = export_onnx(str(patch_model), str(out))
    assert out.is_file() and result.max_abs_difference <= 1e-4 * max(1, result.max_abs_score)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["landprobe"])
    assert meta["chip"] == 32 and len(meta["bands_read"]) == 8
    with pytest.raises(InputError, match="probe model"):
        export_onnx(str(sample_model), str(tmp_path / "no.onnx"))


def test_bad_requests_say_what_to_do(tmp_path: Path, sample_raster: Path, sample_labels: Path,
                                     patch_model: Path) -> None:
    args = (str(sample_raster), str(sample_labels), "class", str(tmp_path / "m.lpmodel"))
    with pytest.raises(InputError, match="choose one of: resnet18, resnet34"):
        finetune(*args, task="segmentation", backbone="vit_small16")
    with pytest.raises(InputError, match="multiple of 16"):
        finetune(*args, task="patch", backbone="vit_small16", chip_size=24)
    with pytest.raises(InputError, match="multiple of 32"):
        finetune(*args, task="segmentation", chip_size=48)
    with pytest.raises(InputError, match="Nothing to resume"):
        finetune(*args, task="patch", backbone="rcf_gaussian", resume=True, **FAST)
    assert not run_folder(tmp_path / "m.lpmodel").exists()  # a refused run leaves no empty run folder
    with pytest.raises(InputError, match="one split"):
        finetune(*args, validation="group_kfold")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="sees none"):
            finetune(*args, task="patch", backbone="rcf_gaussian", chip_size=16, **{**FAST, "device": "cuda"})
    with rasterio.open(sample_raster) as src:
        data, profile = src.read()[:4], src.profile | {"count": 4}
    four = tmp_path / "four.tif"
    with rasterio.open(four, "w", **profile) as dst:
        dst.write(data)
    with pytest.raises(ModelFileError, match="trained on 8 bands"):
        classify_raster(str(four), str(patch_model), str(tmp_path / "x.tif"))


def test_landsat_weights_frozen_then_trained_and_a_vit(tmp_path: Path, sample_raster: Path,
                                                       sample_labels: Path) -> None:
    import timm
    import torch
    from safetensors.numpy import load

    torch.manual_seed(0)
    start = timm.create_model("resnet18", in_chans=6, num_classes=0).state_dict()
    weights = tmp_path / "resnet18_landsat.pth"
    torch.save(start, weights)
    band_map = "SR_B1=1, SR_B2=2, SR_B3=3, SR_B4=4, SR_B5=5, SR_B7=7"
    common = {"task": "patch", "backbone": "resnet18", "weights": "LANDSAT_ETM_SR_MOCO", "weights_file": str(weights),
              "band_map": band_map, "chip_size": 32, **FAST}
    args = (str(sample_raster), str(sample_labels), "class")
    frozen, tuned = tmp_path / "frozen.lpmodel", tmp_path / "tuned.lpmodel"
    finetune(*args, str(frozen), freeze_epochs=99, **common)  # a linear probe on the weights
    finetune(*args, str(tuned), freeze_epochs=1, **common)  # one epoch frozen, then everything trains
    manifest = json.loads(zipfile.ZipFile(frozen).read("manifest.json"))
    assert manifest["input"]["bands_read"] == [1, 2, 3, 4, 5, 7] and manifest["starting_point"]["pretrained"]
    assert manifest["input"]["std"] == pytest.approx([255.0] * 6)  # the weights' normalisation (8-bit scaled)
    kept = load(zipfile.ZipFile(frozen).read("weights.safetensors"))
    trained = load(zipfile.ZipFile(tuned).read("weights.safetensors"))
    conv = "0.conv1.weight"
    assert np.array_equal(kept[conv], start["conv1.weight"].numpy())  # frozen: the backbone is the file's
    assert np.array_equal(kept["0.bn1.running_mean"], start["bn1.running_mean"].numpy())  # statistics too
    assert not np.array_equal(trained[conv], start["conv1.weight"].numpy())  # unfrozen in epoch 2
    assert not np.array_equal(kept["2.weight"], trained["2.weight"])  # the heads were trained
    vit = tmp_path / "vit.lpmodel"
    result = finetune(*args, str(vit), task="patch", backbone="vit_small16", chip_size=16,
                      **{**FAST, "epochs": 1})
    assert result.epochs_run == 1
    out = tmp_path / "vit.tif"
    classify_raster(str(sample_raster), str(vit), str(out))
    with rasterio.open(out) as m:
        assert m.read(1).shape == (250, 250)


def test_your_checkpoint_as_backbone_with_loader_workers(tmp_path: Path, sample_raster: Path,
                                                         sample_labels: Path) -> None:
    import timm
    import torch
    from safetensors.numpy import load

    torch.manual_seed(1)
    state = timm.create_model("resnet18", in_chans=8, num_classes=0).state_dict()
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}}, tmp_path / "mine.ckpt")  # Lightning-like
    out = tmp_path / "mine.lpmodel"
    result = finetune(str(sample_raster), str(sample_labels), "class", str(out), task="patch", backbone="checkpoint",
                      architecture="resnet18", weights_file=str(tmp_path / "mine.ckpt"), freeze_epochs=99,
                      num_workers=2, chip_size=32, **{**FAST, "epochs": 1})
    assert result.epochs_run == 1  # the batches came from two worker processes started by the engine
    kept = load(zipfile.ZipFile(out).read("weights.safetensors"))
    assert np.array_equal(kept["0.conv1.weight"], state["conv1.weight"].numpy())
    manifest = json.loads(zipfile.ZipFile(out).read("manifest.json"))
    assert manifest["starting_point"]["architecture"] == "resnet18"
    assert manifest["training"]["options"]["num_workers"] == 2


def test_cancel_while_mapping_with_a_deep_model_leaves_nothing(tmp_path: Path, sample_raster: Path,
                                                               patch_model: Path) -> None:
    class CancelOnFirstReport(Feedback):
        def _report(self, fraction: float, message: str | None) -> None:
            self.cancel()

    out = tmp_path / "map.tif"
    with pytest.raises(CancelledError):
        classify_raster(str(sample_raster), str(patch_model), str(out), output_probability=str(tmp_path / "p.tif"),
                        feedback=CancelOnFirstReport())
    assert list(tmp_path.iterdir()) == []  # no map, no probabilities, no temporary file


def test_default_patch_network_is_the_small_cnn(tmp_path: Path, sample_raster: Path, sample_labels: Path) -> None:
    from engine.jobs.export_onnx import export_onnx

    model = tmp_path / "default.lpmodel"
    result = finetune(str(sample_raster), str(sample_labels), "class", str(model), **FAST)
    manifest = json.loads(zipfile.ZipFile(model).read("manifest.json"))
    assert manifest["network"]["backbone"] == "small_cnn" and manifest["network"]["chip"] == 15
    assert result.epochs_run == 2 and result.overall_accuracy is not None
    out = tmp_path / "map.tif"
    classify_raster(str(sample_raster), str(model), str(out))
    with rasterio.open(out) as m:
        assert set(np.unique(m.read(1))) <= {c["code"] for c in manifest["classes"]} | {m.nodata}
    assert export_onnx(str(model), str(tmp_path / "cnn.onnx")).max_abs_difference < 1e-3
