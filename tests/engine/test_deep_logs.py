"""What the analyst reads while a fine-tune runs in QGIS: the worker's events, the debug log, and cancel."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from engine.deep.logs import DEBUG_LOG
from engine.jobs.finetune import run_folder

ROOT = Path(__file__).resolve().parents[2]
EPOCH = re.compile(r"^Epoch (\d+)/3: training loss \d+\.\d{3}, validation loss \d+\.\d{3}, "
                   r"validation accuracy \d+\.\d %$")
CHATTER = ("GPU available", "TPU", "litmodels", "litlogger", "Tip:", "DeprecationWarning", "deprecated",
           "site-packages", "batch")


def _worker(job: dict[str, Any], stdin_control: bool = False) -> subprocess.Popen[str]:
    """A worker running a fine-tune ``job`` (with ``stdin_control``, a ``cancel`` line cancels it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PROJ_DATA", "PROJ_LIB", "GDAL_DATA")}
    args = [sys.executable, "-m", "engine", "worker"] + (["--stdin-control"] if stdin_control else [])
    proc = subprocess.Popen(args, cwd=ROOT,
                            env=env | {"LANDPROBE_THREADS": "2"}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps({"protocol": 1, "operation": "finetune", "params": job}) + "\n")
    proc.stdin.flush()
    return proc


def _job(raster: Path, labels: Path, model: Path, **more: Any) -> dict[str, Any]:
    return {"raster": str(raster), "labels": str(labels), "field": "class", "output_model": str(model),
            "epochs": 3, "patience": 0, "device": "cpu", **more}


def test_finetune_log_is_for_people_and_library_chatter_goes_to_the_debug_log(
        tmp_path: Path, sample_raster: Path, sample_labels: Path) -> None:
    model = tmp_path / "deep.lpmodel"
    proc = _worker(_job(sample_raster, sample_labels, model, max_samples_per_class=40))
    out, err = proc.communicate(timeout=300)
    events = [json.loads(line) for line in out.splitlines()]  # every stdout line is an event: nothing leaked
    assert proc.returncode == 0 and events[-1]["event"] == "result"
    logs = [e["text"] for e in events if e["event"] == "log"]
    assert [int(m[1]) for m in map(EPOCH.match, logs) if m] == [1, 2, 3]  # one line per epoch, none per batch
    assert [t for t in logs if t.startswith("Training on ")] == ["Training on CPU (2 threads)."]
    assert any(t.startswith("Kept the weights of epoch ") for t in logs)
    assert any(t.startswith("Validation (30 % of each class's polygons held out, whole): overall accuracy ")
               for t in logs)
    assert not [t for t in logs if any(word in t for word in CHATTER)], logs
    assert all(e["level"] == "info" for e in events if e["event"] == "log")  # no library line, even as debug
    assert "GPU available" not in err  # Lightning's own console handler is quiet too (the plugin logs stderr)
    messages = {e["message"] for e in events if e["event"] == "progress"}
    assert not [m for m in messages if "batch " in m or "loss" in m]  # QGIS logs every new progress message
    named = [t for t in logs if t.startswith("Library messages: ")]
    assert len(named) == 1
    debug_log = Path(named[0].removeprefix("Library messages: "))
    assert debug_log == run_folder(model) / DEBUG_LOG and debug_log.is_file()
    text = debug_log.read_text(encoding="utf-8")
    assert "GPU available: False" in text and "lightning" in text  # the chatter is kept for whoever debugs
    assert "Epoch 3/3: training loss" in text  # with the engine's lines around it


def test_a_finetune_cancelled_in_its_first_epoch_leaves_nothing(tmp_path: Path, sample_raster: Path,
                                                                sample_labels: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    model = out / "deep.lpmodel"
    # a batch per chip: the first epoch lasts seconds, so the cancel reaches it in that epoch
    proc = _worker(_job(sample_raster, sample_labels, model, batch_size=1), stdin_control=True)
    assert proc.stdout is not None and proc.stdin is not None
    events = []
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["event"] == "progress" and str(events[-1]["message"]).startswith("Training"):
            break
        assert events[-1]["event"] != "result", "the job finished before it could be cancelled"
    assert run_folder(model).is_dir()
    proc.stdin.write("cancel\n")
    proc.stdin.flush()
    rest, _ = proc.communicate(timeout=60)
    events += [json.loads(line) for line in rest.splitlines()]
    assert proc.returncode == 3
    assert events[-1]["kind"] == "cancelled" and "first epoch" in events[-1]["message"]
    assert any(e["event"] == "log" and e["text"].startswith("Removed the run folder") for e in events)
    assert not list(out.iterdir())  # no run folder, no model, no temporary file


def test_the_lines_of_a_run_read_as_sentences() -> None:
    from engine.deep.lit import cancel_message, epoch_line
    from engine.deep.trainer import FitOptions, describe_best, describe_device

    row = {"epoch": 3, "train_loss": 0.4123, "val_loss": 0.4551, "val_acc": 0.8612}
    assert epoch_line(row, 10) == "Epoch 3/10: training loss 0.412, validation loss 0.455, validation accuracy 86.1 %"
    assert epoch_line({"epoch": 1, "train_loss": 1.0}, 2) == "Epoch 1/2: training loss 1.000"
    assert describe_device("CPU", "32-true", FitOptions(), 1) == "Training on CPU (1 thread)."
    assert describe_device("NVIDIA H200", "bf16-mixed", FitOptions(), 16) == \
        "Training on GPU: NVIDIA H200 (bf16 mixed precision)."
    assert describe_device("NVIDIA H200", "bf16-mixed", FitOptions(devices=2, strategy="ddp"), 16) == \
        "Training on GPU: NVIDIA H200 (bf16 mixed precision), 2 GPUs, strategy ddp."
    assert describe_device("NVIDIA H200", "16-mixed", FitOptions(num_nodes=2, strategy="ddp"), 16) == \
        "Training on GPU: NVIDIA H200 (fp16 mixed precision), 1 GPU on each of 2 machines, strategy ddp."
    assert describe_device("CPU", "32-true", FitOptions(devices=2, strategy="ddp"), 2) == \
        "Training on CPU (2 threads), 2 processes, strategy ddp."
    history = [{"epoch": 1, "val_loss": 0.5, "val_acc": 0.7}, {"epoch": 2, "val_loss": 0.4, "val_acc": 0.8},
               {"epoch": 3, "val_loss": 0.45, "val_acc": 0.82}]
    assert describe_best(history, "val_loss", FitOptions(patience=1), True) == \
        "Stopped early after epoch 3: the validation loss had not improved for 1 epochs. " \
        "Kept the weights of epoch 2 (validation loss 0.400, validation accuracy 80.0 %)."
    assert "first epoch; nothing was written" in cancel_message(0)
    assert "checkpoint of epoch 2 is kept" in cancel_message(2)
