"""The worker process: JSON events on stdout only, errors for users, and cancel that leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from engine.core import errors
from engine.core.seam import (
    CANCEL_LINE,
    ERROR_KINDS,
    PROTOCOL,
    STDIN_CONTROL,
    WORKER_COMMAND,
    ErrorKind,
    Event,
    ExitCode,
)
from engine.io.rasters import TMP_MARKER

ROOT = Path(__file__).resolve().parents[2]


def start_worker(job: dict[str, Any], stdin_control: bool = True) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "engine", "worker"] + (["--stdin-control"] if stdin_control else [])
    env = {k: v for k, v in os.environ.items() if k not in ("PROJ_DATA", "PROJ_LIB", "GDAL_DATA")}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps({"protocol": 1, **job}) + "\n")
    proc.stdin.flush()
    return proc


def run_worker(job: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    proc = start_worker(job, stdin_control=False)
    out, _ = proc.communicate(timeout=120)
    events = [json.loads(line) for line in out.splitlines()]  # every stdout line must be JSON
    return proc.returncode, events


def test_ping_answers_with_started_then_result() -> None:
    code, events = run_worker({"operation": "ping", "params": {}})
    assert code == 0
    assert events[0]["event"] == "started" and events[0]["protocol"] == 1
    assert events[-1] == {"event": "result", "outputs": events[-1]["outputs"]}
    assert events[-1]["outputs"]["pong"] is True


def test_the_seam_is_the_documented_wire_format() -> None:
    # The tests here write the protocol out (as the README does): the seam must say the same.
    assert (PROTOCOL, WORKER_COMMAND, STDIN_CONTROL, CANCEL_LINE) == (1, "worker", "--stdin-control", "cancel")
    assert (Event.STARTED, Event.PROGRESS, Event.LOG, Event.RESULT, Event.ERROR) == (
        "started", "progress", "log", "result", "error")
    assert (ExitCode.OK, ExitCode.ERROR, ExitCode.CANCELLED) == (0, 1, 3)
    assert TMP_MARKER == ".landprobe-tmp-"


def test_a_job_of_another_protocol_is_refused() -> None:
    code, events = run_worker({"operation": "ping", "params": {}, "protocol": PROTOCOL + 1})
    assert code == ExitCode.ERROR
    assert events[-1]["event"] == Event.ERROR and events[-1]["kind"] == ErrorKind.INPUT
    assert "update the plugin and the engine together" in events[-1]["message"]


def test_every_error_kind_the_engine_raises_is_one_of_the_seam() -> None:
    def subclasses(cls: type) -> list[type]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    kinds = {cls.kind for cls in subclasses(errors.LandprobeError) if cls is not errors.LandprobeError}
    assert kinds <= set(ERROR_KINDS), kinds - set(ERROR_KINDS)
    assert {ErrorKind.MEMORY, ErrorKind.INTERNAL} <= set(ERROR_KINDS)  # the worker's own


def test_user_error_is_an_error_event_naming_the_field(sample_raster: Path, sample_labels: Path,
                                                       tmp_path: Path) -> None:
    code, events = run_worker({"operation": "train_classifier", "params": {
        "raster": str(sample_raster), "labels": str(sample_labels), "field": "nope",
        "output_model": str(tmp_path / "m.lpmodel")}})
    assert code == 1
    assert events[-1]["event"] == "error" and events[-1]["kind"] == "input"
    assert "'nope'" in events[-1]["message"] and "class" in events[-1]["message"]
    assert "traceback" not in events[-1]
    assert not list(tmp_path.iterdir())


def test_unknown_parameter_and_operation_are_explained() -> None:
    code, events = run_worker({"operation": "classify_raster", "params": {"raster": "a", "modle": "b"}})
    assert code == 1 and "no parameter modle" in events[-1]["message"]
    code, events = run_worker({"operation": "paint", "params": {}})
    assert code == 1 and "Unknown operation 'paint'" in events[-1]["message"]


def test_train_reports_progress_logs_and_result(sample_raster: Path, sample_labels: Path, tmp_path: Path) -> None:
    code, events = run_worker({"operation": "train_classifier", "params": {
        "raster": str(sample_raster), "labels": str(sample_labels), "field": "class", "method": "xgboost",
        "output_model": str(tmp_path / "m.lpmodel")}})
    assert code == 0
    kinds = [e["event"] for e in events]
    assert "progress" in kinds and "log" in kinds
    values = [e["value"] for e in events if e["event"] == "progress"]
    assert values == sorted(values) and values[-1] == 1.0
    assert any("overall accuracy" in e["text"] for e in events if e["event"] == "log")
    assert events[-1]["outputs"]["overall_accuracy"] > 0.6


@pytest.mark.parametrize("how", ["cancel-line", "sigterm"])
def test_cancel_stops_promptly_and_leaves_no_output(large_raster: Path, sample_model: Path, tmp_path: Path,
                                                    how: str) -> None:
    output = tmp_path / "classes.tif"
    proc = start_worker({"operation": "classify_raster", "params": {
        "raster": str(large_raster), "model": str(sample_model), "output": str(output)}})
    assert proc.stdout is not None and proc.stdin is not None
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "progress" and 0 < event["value"] < 0.5:
            break
        assert event["event"] != "result", "the job finished before it could be cancelled"
    assert list(tmp_path.glob(f"*{TMP_MARKER}*")), "the job should be writing its temporary output"
    cancelled_at = time.monotonic()
    if how == "sigterm":
        proc.terminate()
    else:
        proc.stdin.write("cancel\n")
        proc.stdin.flush()
    rest = proc.stdout.read()
    code = proc.wait(timeout=10)
    assert time.monotonic() - cancelled_at < 5
    assert code == 3
    assert json.loads(rest.splitlines()[-1])["kind"] == "cancelled"
    assert not output.exists()
    assert not list(tmp_path.iterdir())


def _worker_in(root: Path, job: dict[str, Any]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PROJ_DATA", "PROJ_LIB", "GDAL_DATA")}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "worker", "--stdin-control"], cwd=ROOT,
                            env=env | {"LANDPROBE_TMPDIR": str(root)}, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps({"protocol": 1, **job}) + "\n")
    proc.stdin.flush()
    return proc


def test_a_killed_engine_leaves_only_its_workspace_and_the_next_job_removes_it(
        tmp_path: Path, large_raster: Path, sample_raster: Path, sample_model: Path) -> None:
    root, out = tmp_path / "tmp", tmp_path / "out"
    out.mkdir()
    # two files: the engine stacks them in a temporary VRT, inside the job's workspace
    job = {"operation": "classify_raster", "params": {"raster": [str(large_raster)], "model": str(sample_model),
                                                       "output": str(out / "map.tif"), "block": 256}}
    proc = _worker_in(root, job)
    started = json.loads(proc.stdout.readline())
    workspace = Path(started["workspace"])
    jobs = root / f"landprobe-jobs-{os.getuid()}"
    assert workspace.parent == jobs and workspace.is_dir()
    for line in proc.stdout:  # wait until it works, then kill it as the out-of-memory killer would
        if json.loads(line).get("event") == "progress" and json.loads(line)["value"] > 0.05:
            break
    proc.kill()
    proc.wait()
    assert workspace.is_dir()  # a SIGKILL leaves the workspace and the partial map ...
    partial = list(out.iterdir())
    assert partial and all(TMP_MARKER in p.name for p in partial)
    ping = _worker_in(root, {"operation": "ping", "params": {}})
    events = [json.loads(line) for line in ping.communicate(timeout=60)[0].splitlines()]
    assert events[-1]["event"] == "result"
    assert not workspace.exists() and not list(out.iterdir())  # ... and the next job removes both
    assert not list(jobs.iterdir())  # the ping's own workspace is gone too


def test_a_workspace_of_a_live_engine_is_left_alone(tmp_path: Path) -> None:
    from engine.core.workspace import OWNER, sweep

    live, dead = tmp_path / f"{os.getpid()}-a", tmp_path / "999999999-b"
    for folder, pid in ((live, os.getpid()), (dead, 999_999_999)):
        folder.mkdir()
        (folder / OWNER).write_text(str(pid))
    assert sweep(tmp_path) == [dead]
    assert live.is_dir() and not dead.exists()


def test_a_job_runs_when_its_workspace_cannot_be_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import tempfile

    from engine.core.workspace import job_workspace

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("LANDPROBE_TMPDIR", str(blocker))  # a file where the folder should be
    before = tempfile.gettempdir()
    with caplog.at_level(logging.WARNING), job_workspace() as workspace:
        assert workspace is None and tempfile.gettempdir() == before
    assert "No job folder for temporary files" in caplog.text
