"""Distributed data parallel fine-tuning on the CPU: two processes, through the worker as the plugin starts it."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ddp_on_cpu_with_two_processes_through_the_worker(tmp_path: Path, sample_raster: Path,
                                                          sample_labels: Path) -> None:
    model = tmp_path / "ddp.lpmodel"
    job = {"protocol": 1, "operation": "finetune", "params": {
        "raster": str(sample_raster), "labels": str(sample_labels), "field": "class", "output_model": str(model),
        "task": "patch", "backbone": "rcf_gaussian", "chip_size": 16, "epochs": 2, "patience": 0,
        "max_samples_per_class": 60, "device": "cpu", "strategy": "ddp", "devices": 2}}
    done = subprocess.run([sys.executable, "-m", "engine", "worker"], input=json.dumps(job) + "\n", text=True,
                          capture_output=True, cwd=ROOT, timeout=600)
    events = [json.loads(line) for line in done.stdout.splitlines()]  # nothing but events on stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert [e["event"] for e in events].count("result") == 1  # the second process reports on stderr only
    assert [e["event"] for e in events].count("started") == 1
    # A second process really trained (Lightning's lines go to the run's debug log, not to the user's log).
    assert "MEMBER: 2/2" in (tmp_path / "ddp_run" / "landprobe-debug.log").read_text()
    manifest = json.loads(zipfile.ZipFile(model).read("manifest.json"))
    assert manifest["training"]["world_size"] == 2
    assert [h["epoch"] for h in manifest["history"]] == [1, 2]
    # the validation accuracy logged during training gathers both processes' halves of the held-out pixels;
    # the final figure scores them all in one process: the same up to the sampler's padding of one pixel or two
    best = min(manifest["history"], key=lambda h: h["val_loss"])
    assert abs(best["val_acc"] - manifest["validation"]["overall_accuracy"]) <= 2 / manifest["validation"]["n"]
