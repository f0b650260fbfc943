"""engine_process against a scripted fake worker: events, errors, crashes, cancel and kill escalation."""

from __future__ import annotations

import ast
import os
import stat
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from landprobe.plugin import engine_process as ep

FAKE_WORKER = textwrap.dedent(
    '''
    """A fake engine worker: behaves as the job's "scenario" parameter says."""
    import json, os, signal, sys, time

    def emit(**event):
        sys.stdout.write(json.dumps(event) + "\\n")
        sys.stdout.flush()

    def main():
        emit(event="started", pid=os.getpid(), protocol=1, version="fake")
        assert sys.argv[1:] == ["worker", "--stdin-control"], sys.argv
        job = json.loads(sys.stdin.readline())
        params = job["params"]
        scenario = params["scenario"]
        with open(params["pid_file"], "w") as stream:
            stream.write(str(os.getpid()))
        if "output" in params:
            folder, name = os.path.split(params["output"])
            temp = "." + name + ".landprobe-tmp-x.tif"
            for leftover in (temp, "." + temp + ".landprobe-tmp-y.tif", temp + ".aux.xml"):
                open(os.path.join(folder, leftover), "w").close()
        if scenario == "ok":
            emit(event="progress", value=0.25, message="Reading")
            emit(event="progress", value=0.5, message="Reading")
            emit(event="progress", value=1.0, message="Writing")
            emit(event="log", level="info", text="info line")
            emit(event="log", level="warning", text="warning line")
            emit(event="log", level="error", text="error line")
            emit(event="log", level="debug", text="debug line")
            print("a line that is not JSON", flush=True)
            sys.stderr.write("a line on stderr\\n")
            sys.stderr.flush()
            emit(event="result", outputs={"echo": job, "env_path": os.environ.get("PYTHONPATH"),
                                          "proj": os.environ.get("PROJ_LIB"), "cwd": os.getcwd()})
            return 0
        if scenario == "error":
            emit(event="error", kind="input", message="Field 'nope' is not in the labels.",
                 traceback="Traceback: fake")
            return 1
        if scenario == "crash":
            sys.stderr.write("fatal: something broke\\n")
            sys.stderr.flush()
            os._exit(7)
        if scenario == "late":  # the result is out before the user's cancel arrives
            open(params["output"], "w").close()
            emit(event="result", outputs={"output": params["output"]})
            emit(event="progress", value=1.0, message="Done")
            sys.stdin.read()
            return 0
        emit(event="progress", value=0.1, message="Working")
        if scenario == "finishes_on_cancel":  # the last step ends while the cancel line is on its way
            sys.stdin.readline()
            open(params["output"], "w").close()
            emit(event="result", outputs={"output": params["output"]})
            return 0
        if scenario == "cooperative":
            for line in sys.stdin:
                if line.strip() == "cancel":
                    break
            emit(event="error", kind="cancelled", message="Cancelled by the user; no output was written.")
            return 3
        if scenario == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(0.05)

    sys.exit(main())
    '''
)


class RecordingFeedback:
    """A duck-typed QgsProcessingFeedback that records every call; cancels after ``cancel_after`` progress calls."""

    def __init__(self, cancel_after: int | None = None, with_push_warning: bool = True) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.cancel_after = cancel_after
        self.progress_calls = 0
        self.cancel_time: float | None = None
        if with_push_warning:
            self.pushWarning = lambda text: self.calls.append(("warning", text))

    def setProgress(self, value: float) -> None:
        self.calls.append(("progress", value))
        self.progress_calls += 1

    def setProgressText(self, text: str) -> None:
        self.calls.append(("progress_text", text))

    def pushInfo(self, text: str) -> None:
        self.calls.append(("info", text))

    def pushDebugInfo(self, text: str) -> None:
        self.calls.append(("debug", text))

    def reportError(self, text: str, fatal: bool = False) -> None:
        self.calls.append(("error", (text, fatal)))

    def isCanceled(self) -> bool:
        canceled = self.cancel_after is not None and self.progress_calls >= self.cancel_after
        if canceled and self.cancel_time is None:
            self.cancel_time = time.monotonic()
        return canceled

    def of(self, kind: str) -> list[Any]:
        return [value for name, value in self.calls if name == kind]


@pytest.fixture
def fake(tmp_path: Path) -> dict[str, Any]:
    """A fake worker package ``fakeengine`` in a temporary folder, and the arguments to run it."""
    package = tmp_path / "lib" / "fakeengine"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(FAKE_WORKER)
    return {"python": sys.executable, "module": "fakeengine", "extra_paths": [str(tmp_path / "lib")]}


def _params(tmp_path: Path, scenario: str, **more: Any) -> dict[str, Any]:
    return {"scenario": scenario, "pid_file": str(tmp_path / "pid"), **more}


def _assert_dead(pid_file: Path) -> None:
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_result_and_events_are_mapped(fake: dict[str, Any], tmp_path: Path) -> None:
    feedback = RecordingFeedback()
    params = _params(tmp_path, "ok")
    outputs = ep.run_engine_job("op_name", params, feedback, **fake)
    assert outputs["echo"] == {"protocol": 1, "operation": "op_name", "params": params}
    assert feedback.of("progress") == [25.0, 50.0, 100.0]
    assert feedback.of("progress_text") == ["Reading", "Writing"]
    assert "info line" in feedback.of("info")
    assert feedback.of("warning") == ["warning line"]
    assert ("error line", False) in feedback.of("error")
    debug = feedback.of("debug")
    for expected in ("debug line", "a line that is not JSON", "a line on stderr"):
        assert expected in debug
    assert any("pid" in line and sys.executable in line for line in debug)
    assert outputs["env_path"].split(os.pathsep)[0] == str(ep.PLUGIN_ROOT)
    assert outputs["cwd"] == str(ep.PLUGIN_ROOT)
    _assert_dead(tmp_path / "pid")


def test_push_warning_falls_back_to_report_error(fake: dict[str, Any], tmp_path: Path) -> None:
    feedback = RecordingFeedback(with_push_warning=False)
    ep.run_engine_job("op", _params(tmp_path, "ok"), feedback, **fake)
    assert ("warning line", False) in feedback.of("error")


def test_engine_error_is_raised_with_its_message_and_kind(fake: dict[str, Any], tmp_path: Path) -> None:
    feedback = RecordingFeedback()
    with pytest.raises(ep.EngineJobError, match="Field 'nope' is not in the labels") as info:
        ep.run_engine_job("op", _params(tmp_path, "error"), feedback, **fake)
    assert info.value.kind == "input"
    assert "Traceback: fake" in feedback.of("debug")


def test_crash_without_result_reports_exit_code_and_stderr(fake: dict[str, Any], tmp_path: Path) -> None:
    output = tmp_path / "out.tif"
    with pytest.raises(ep.EngineJobError, match=r"exited with code 7[\s\S]*fatal: something broke"):
        ep.run_engine_job("op", _params(tmp_path, "crash", output=str(output)), RecordingFeedback(), **fake)
    assert not [name for name in os.listdir(tmp_path) if ".landprobe-tmp-" in name]


@pytest.mark.parametrize("scenario", ["cooperative", "hang", "stubborn"])
def test_cancel_stops_the_engine_and_removes_partial_outputs(
    fake: dict[str, Any], tmp_path: Path, scenario: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ep, "_CANCEL_GRACE_S", 3.0)  # the escalation, not the length of the grace, is tested here
    output = tmp_path / "out.tif"
    feedback = RecordingFeedback(cancel_after=1)
    started = time.monotonic()
    with pytest.raises(ep.EngineCancelledError):
        ep.run_engine_job("op", _params(tmp_path, scenario, output=str(output)), feedback, **fake)
    elapsed = time.monotonic() - feedback.cancel_time
    # cancel line, then SIGTERM after 3 s, then SIGKILL after 2 s more
    assert elapsed < (1.5 if scenario == "cooperative" else 7.0), elapsed
    assert time.monotonic() - started < 10
    _assert_dead(tmp_path / "pid")
    expected = {"cooperative": "exited with code 3", "hang": "killed by SIGTERM", "stubborn": "killed by SIGKILL"}
    assert any(expected[scenario] in line for line in feedback.of("debug")), feedback.of("debug")
    assert not output.exists()
    assert not [name for name in os.listdir(tmp_path) if ".landprobe-tmp-" in name]


@pytest.mark.parametrize("scenario", ["late", "finishes_on_cancel"])
def test_a_result_that_arrived_before_the_cancel_is_kept_and_reported_done(
    fake: dict[str, Any], tmp_path: Path, scenario: str
) -> None:
    output = tmp_path / "out.tif"
    feedback = RecordingFeedback(cancel_after=1)
    outputs = ep.run_engine_job("op", _params(tmp_path, scenario, output=str(output)), feedback, **fake)
    assert feedback.cancel_time is not None  # the user did cancel ...
    assert outputs == {"output": str(output)} and output.exists()  # ... and is told the truth: the map is there
    assert any("outputs are kept" in line for line in feedback.of("info"))
    _assert_dead(tmp_path / "pid")


def test_environment_drops_qgis_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PROJ_DATA", "PROJ_LIB", "GDAL_DATA", "GDAL_DRIVER_PATH", "PYTHONHOME", "PYTHONPATH"):
        monkeypatch.setenv(name, "/qgis/own")
    env = ep.engine_environment(["/extra"])
    for name in ("PROJ_DATA", "PROJ_LIB", "GDAL_DATA", "GDAL_DRIVER_PATH", "PYTHONHOME"):
        assert name not in env
    assert env["PYTHONPATH"] == os.pathsep.join([str(ep.PLUGIN_ROOT), "/extra"])
    assert env["PYTHONUNBUFFERED"] == "1"
    assert (ep.PLUGIN_ROOT / "engine").is_dir()


def test_find_engine_python_order_and_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LANDPROBE_PYTHON", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with pytest.raises(ep.EngineNotFoundError, match="make setup") as info:
        ep.find_engine_python(None)
    assert "Engine Python interpreter" in str(info.value) and "LANDPROBE_PYTHON" in str(info.value)

    fakes = {}
    for name in ("env", "setting", "recorded"):
        path = tmp_path / f"python-{name}"
        path.write_text("#!/bin/sh\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        fakes[name] = str(path)
    record = ep.recorded_engine_python_file()
    record.parent.mkdir(parents=True)
    record.write_text(fakes["recorded"] + "\n")
    assert ep.find_engine_python("") == fakes["recorded"]
    assert ep.find_engine_python(fakes["setting"]) == fakes["setting"]
    monkeypatch.setenv("LANDPROBE_PYTHON", fakes["env"])
    assert ep.find_engine_python(fakes["setting"]) == fakes["env"]

    monkeypatch.setenv("LANDPROBE_PYTHON", str(tmp_path / "missing"))
    with pytest.raises(ep.EngineNotFoundError, match="does not exist"):
        ep.find_engine_python(None)
    not_executable = tmp_path / "not-executable"
    not_executable.write_text("")
    monkeypatch.setenv("LANDPROBE_PYTHON", str(not_executable))
    with pytest.raises(ep.EngineNotFoundError, match="not executable"):
        ep.find_engine_python(None)


def test_missing_interpreter_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ep.EngineNotFoundError, match="Could not start the engine"):
        ep.run_engine_job("op", {}, RecordingFeedback(), python=str(tmp_path / "nope"))


def test_temp_files_of_other_outputs_are_left_alone(tmp_path: Path) -> None:
    names = [
        ".out.tif.landprobe-tmp-1.tif",
        "..out.tif.landprobe-tmp-1.tif.landprobe-tmp-2.tif",
        ".xout.tif.landprobe-tmp-3",
    ]
    for name in names:
        (tmp_path / name).write_text("")
    found = {Path(p).name for p in ep.temp_files_for({"output": str(tmp_path / "out.tif"), "raster": "x"})}
    assert found == set(names[:2])


def test_only_a_job_folder_is_removed_for_a_dead_engine(tmp_path: Path) -> None:
    class Dead:
        def poll(self) -> int:
            return -9

    jobs = tmp_path / "landprobe-jobs-1000"
    job = jobs / "4242-abc_12"
    job.mkdir(parents=True)
    out = tmp_path / "out"
    out.mkdir()
    partial = out / ".map.tif.landprobe-tmp-0123abcd.tif"
    partial.write_text("")
    (out / "map.tif").write_text("kept")
    (job / "partials.txt").write_text(f"{out}\t.landprobe-tmp-0123abcd\n{tmp_path}\t*\n")
    for hostile in (str(jobs / ".."), str(tmp_path), str(jobs / "4242-abc_12" / "..")):
        ep._remove_workspace(hostile, Dead())
        assert job.is_dir() and jobs.is_dir()
    ep._remove_workspace(str(job), Dead())
    assert not job.exists() and not partial.exists() and (out / "map.tif").read_text() == "kept"


def test_the_plugin_reads_the_engines_own_seam_file() -> None:
    # One source: the plugin's protocol facts are the engine's file, not a copy of it.
    assert Path(ep.seam.__file__) == ep.PLUGIN_ROOT / "engine" / "core" / "seam.py" == ep.SEAM_FILE
    assert ep.PROTOCOL == ep.seam.PROTOCOL and ep.TEMP_MARKER == ep.seam.TMP_MARKER
    assert ep.seam.__name__ == "landprobe_engine_seam"  # loaded by its path, not imported from the engine package


def test_the_seam_holds_constants_and_imports_nothing() -> None:
    # The plugin loads it into QGIS's Python: an import there could bring the engine's stack into QGIS.
    tree = ast.parse(ep.SEAM_FILE.read_text(encoding="utf-8"))
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    for node in ast.walk(tree):
        assert not isinstance(node, ast.Call | ast.FunctionDef | ast.Lambda), ast.dump(node)[:80]
    kinds = {value for name, value in vars(ep.seam.ErrorKind).items() if not name.startswith("_")}
    assert set(ep.seam.ERROR_KINDS) == kinds
    assert ep._load_seam().PROTOCOL == ep.PROTOCOL  # loading it again gives the same facts


def test_a_plugin_without_the_engine_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(ImportError, match="reinstall the plugin"):
        ep._load_seam(tmp_path / "engine" / "core" / "seam.py")


def test_the_fake_worker_speaks_the_seams_protocol() -> None:
    # The fake worker above writes the protocol out; it must be the one the engine speaks.
    assert ep.seam.PROTOCOL == 1 and ep.seam.WORKER_COMMAND == "worker" and ep.seam.STDIN_CONTROL == "--stdin-control"
    assert ep.seam.TMP_MARKER == ".landprobe-tmp-" and ep.seam.CANCEL_LINE == "cancel"
    assert ep.seam.ErrorKind.CANCELLED == "cancelled"
