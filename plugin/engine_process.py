"""The one seam between QGIS and the engine: start the engine worker and turn its JSON lines into feedback.

Standard library only and no ``qgis`` imports, so that it can be tested without QGIS. ``feedback`` is duck-typed
after ``QgsProcessingFeedback``: ``setProgress(0..100)``, ``setProgressText(str)``, ``pushInfo``,
``pushWarning`` (QGIS >= 3.20; ``reportError(text, False)`` is used when it is missing), ``pushDebugInfo``,
``reportError`` and ``isCanceled()``.

The worker protocol is described in ``engine/worker.py``: the job is one JSON line on the worker's standard
input, the worker answers with one JSON object per line on its standard output, and a later ``cancel`` line (or
the end of standard input) asks it to stop. Its facts (protocol version, command, event names, error kinds,
temporary names) are written once, in the engine's ``engine/core/seam.py``: a file of constants without a single
import, which this module loads by its path (:data:`seam`), so that QGIS never imports the engine package.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ENV_PYTHON = "LANDPROBE_PYTHON"
SETTING_DESCRIPTION = "Engine Python interpreter"
PLUGIN_ROOT = Path(__file__).resolve().parent.parent
#: The engine's seam module, beside the plugin in the same folder (the zip holds both).
SEAM_FILE = PLUGIN_ROOT / "engine" / "core" / "seam.py"


def load_engine_file(relative: str) -> types.ModuleType:
    """A standard-library-only module of the engine (``core/seam.py``, ``core/field_names.py``) loaded by its path.

    The plugin never imports the engine package (its stack crashes QGIS); these files import nothing of it.

    Raises:
        ImportError: when the file is missing (a plugin folder without its ``engine`` folder).

    """
    return _load_seam(PLUGIN_ROOT / "engine" / relative, "landprobe_engine_" + Path(relative).stem)


def _load_seam(path: Path = SEAM_FILE, name: str = "landprobe_engine_seam") -> types.ModuleType:
    """The engine's ``seam.py`` loaded by its path: constants only, so nothing of the engine's stack comes with it.

    Raises:
        ImportError: when the file is missing (a plugin folder without its ``engine`` folder).

    """
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ImportError(f"The Landprobe plugin folder lacks the engine's {path}: reinstall the plugin.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: The facts of the protocol, shared with the engine: ``seam.PROTOCOL``, ``seam.Event.RESULT``...
seam = _load_seam()
PROTOCOL = seam.PROTOCOL
TEMP_MARKER = seam.TMP_MARKER

#: Variables QGIS sets for its own GDAL/PROJ/Python that break the engine's wheels when inherited.
_STRIPPED_VARIABLES = (
    "PROJ_DATA",
    "PROJ_LIB",
    "GDAL_DATA",
    "GDAL_DRIVER_PATH",
    "PYTHONHOME",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONEXECUTABLE",
    "PYTHONNOUSERSITE",
    "PYQGIS_STARTUP",
    "QGIS_PYTHONPATH",
    "__PYVENV_LAUNCHER__",
)

_HOW_TO_FIX = (
    'Run "Install engine" (Processing Toolbox > Landprobe > Engine) to create it, or run "make setup" in the '
    'Landprobe plugin folder ({root}), or set "Engine Python interpreter" in Settings > Options > Processing > '
    f"Providers > Landprobe, or set the environment variable {ENV_PYTHON} to the python of an environment where the "
    "engine is installed."
)

#: How long a cancelled engine gets to stop by itself (removing its partial outputs) before SIGTERM. The engine checks
#: for a cancel once per window or batch, but one step can be long on a busy machine (its start-up imports, a window
#: of a large map, a Cloud-Optimized GeoTIFF copy): bench_soak.py measured stops of up to 4.1 s on two busy cores.
_CANCEL_GRACE_S = 10.0
_TERMINATE_GRACE_S = 2.0
_POLL_S = 0.1


class EngineError(Exception):
    """Root of the errors raised while finding or running the engine."""


class EngineNotFoundError(EngineError):
    """No usable engine Python interpreter was found."""


class EngineJobError(EngineError):
    """The engine reported an error or stopped without a result."""

    def __init__(self, message: str, kind: str = "error") -> None:
        """Keep the error's ``kind`` with the message.

        The kind is the engine's (``seam.ErrorKind``: ``input``, ``model``, ``output``, ``internal``...) or the
        plugin's own: ``crash`` when the engine stopped without a result, ``error`` when the event had none.
        """
        super().__init__(message)
        self.kind = kind


class EngineCancelledError(EngineError):
    """The job was cancelled; the engine was stopped and its partial outputs removed."""


def recorded_engine_python_file() -> Path:
    """The file in which the project's set-up records the engine interpreter (one line, a path)."""
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "landprobe" / "engine-python"


def recorded_engine_python() -> str | None:
    """The interpreter path recorded by the set-up, or None when there is no (readable, non-empty) record."""
    try:
        text = recorded_engine_python_file().read_text(encoding="utf-8")
    except OSError:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else None


def _check_executable(path: str, source: str) -> str:
    """Return ``path`` (user-expanded) when it is an executable file, else raise EngineNotFoundError."""
    expanded = os.path.expanduser(path)
    how = _HOW_TO_FIX.format(root=PLUGIN_ROOT)
    if not os.path.isfile(expanded):
        raise EngineNotFoundError(f"The engine Python interpreter {expanded!r} (from {source}) does not exist. {how}")
    if not os.access(expanded, os.X_OK):
        raise EngineNotFoundError(
            f"The engine Python interpreter {expanded!r} (from {source}) is not executable. {how}"
        )
    return expanded


def find_engine_python(setting_value: str | None) -> str:
    """Find the Python interpreter of the engine's environment.

    Looks, in order, at the environment variable ``LANDPROBE_PYTHON``, the Processing setting "Engine Python
    interpreter" (``setting_value``) and the file written by ``make setup``
    (``${XDG_DATA_HOME:-~/.local/share}/landprobe/engine-python``).

    Args:
        setting_value: the value of the Processing setting; None or empty when unset.

    Returns:
        The path of an executable interpreter.

    Raises:
        EngineNotFoundError: when none is configured, or the configured one does not exist or is not executable.

    """
    env_value = os.environ.get(ENV_PYTHON, "").strip()
    if env_value:
        return _check_executable(env_value, f"the environment variable {ENV_PYTHON}")
    if setting_value and str(setting_value).strip():
        return _check_executable(str(setting_value).strip(), f'the Processing setting "{SETTING_DESCRIPTION}"')
    recorded = recorded_engine_python()
    if recorded:
        return _check_executable(recorded, f"the file {recorded_engine_python_file()}")
    raise EngineNotFoundError(
        "The Landprobe engine is not set up: no engine Python interpreter is configured. "
        + _HOW_TO_FIX.format(root=PLUGIN_ROOT)
    )


def engine_environment(extra_paths: Sequence[str] = ()) -> dict[str, str]:
    """The environment for the engine process: QGIS's GDAL/PROJ/Python variables removed, the plugin on the path.

    Args:
        extra_paths: folders put on ``PYTHONPATH`` after the plugin root (tests use it for a fake worker).

    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _STRIPPED_VARIABLES and not key.startswith("PYQGIS_")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(PLUGIN_ROOT), *map(str, extra_paths)])
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def temp_files_for(params: dict[str, Any]) -> list[str]:
    """Leftover engine temp files of every ``output*`` path in ``params``.

    The engine writes ``<dir>/<name>`` as ``<dir>/.<name>.landprobe-tmp-<id>...`` and renames it on success; a
    work file of that temp file gets one more leading dot (``..<name>.landprobe-tmp-<id>...``), so any number of
    leading dots is matched.
    """
    found: list[str] = []
    for key, value in params.items():
        if not key.startswith("output") or not isinstance(value, str) or not value:
            continue
        folder, name = os.path.split(os.path.abspath(value))
        pattern = re.compile(r"\.+" + re.escape(name + TEMP_MARKER))
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        found.extend(os.path.join(folder, entry) for entry in entries if pattern.match(entry))
    return found


def remove_temp_files(params: dict[str, Any], feedback: Any = None) -> None:
    """Delete the leftover engine temp files of the job's outputs (see :func:`temp_files_for`)."""
    for path in temp_files_for(params):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        except OSError as exc:
            if feedback is not None:
                _warn(feedback, f"Could not remove the partial output {path}: {exc}")
        else:
            if feedback is not None:
                feedback.pushDebugInfo(f"Removed partial output {path}")


def _warn(feedback: Any, text: str) -> None:
    """``pushWarning`` where it exists (QGIS >= 3.20), else a non-fatal ``reportError``."""
    push_warning = getattr(feedback, "pushWarning", None)
    if push_warning is not None:
        push_warning(text)
    else:
        feedback.reportError(text, False)


def _pump(stream: Any, tag: str, lines: queue.Queue) -> None:
    """Put each line of ``stream`` on ``lines`` as ``(tag, line)``, then ``(tag, None)`` at its end."""
    try:
        for line in iter(stream.readline, ""):
            lines.put((tag, line.rstrip("\r\n")))
    except (OSError, ValueError):
        pass
    finally:
        lines.put((tag, None))


def _stop(proc: subprocess.Popen, feedback: Any) -> None:
    """Ask the engine to stop (``cancel`` line, end of input), then SIGTERM, then kill: always returns dead."""
    if proc.poll() is None:
        try:
            proc.stdin.write(seam.CANCEL_LINE + "\n")
            proc.stdin.flush()
        except (OSError, ValueError):
            pass
    try:
        proc.stdin.close()
    except (OSError, ValueError):
        pass
    try:
        proc.wait(_CANCEL_GRACE_S)
        return
    except subprocess.TimeoutExpired:
        feedback.pushDebugInfo(f"The engine (pid {proc.pid}) did not stop within {_CANCEL_GRACE_S:.0f} s: terminating")
    proc.terminate()
    try:
        proc.wait(_TERMINATE_GRACE_S)
        return
    except subprocess.TimeoutExpired:
        feedback.pushDebugInfo(f"The engine (pid {proc.pid}) ignored SIGTERM: killing it")
    _kill(proc)


def _kill(proc: subprocess.Popen) -> None:
    """Kill the engine and, on POSIX, its process group (data loader workers), then reap it."""
    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    if proc.poll() is None:
        try:
            proc.kill()
        except OSError:
            pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


class _EventHandler:
    """Maps the worker's events onto a feedback object."""

    def __init__(self, feedback: Any, python: str) -> None:
        self.feedback = feedback
        self.python = python
        self.last_message: str | None = None
        self.outputs: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.workspace: str | None = None

    def handle(self, line: str) -> None:
        """Handle one standard output line of the worker."""
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict) or "event" not in event:
            if line.strip():
                self.feedback.pushDebugInfo(line)
            return
        kind = event.get("event")
        feedback = self.feedback
        if kind == seam.Event.STARTED:
            workspace = event.get("workspace")
            self.workspace = workspace if isinstance(workspace, str) else None
            feedback.pushDebugInfo(
                f"Engine process started: pid {event.get('pid')}, version {event.get('version')}, python {self.python}"
            )
        elif kind == seam.Event.PROGRESS:
            value = event.get("value")
            if isinstance(value, (int, float)):
                feedback.setProgress(max(0.0, min(100.0, float(value) * 100.0)))
            message = event.get("message")
            if message and message != self.last_message:
                self.last_message = message
                feedback.setProgressText(str(message))
        elif kind == seam.Event.LOG:
            self._log(str(event.get("level", seam.Level.INFO)).lower(), str(event.get("text", "")))
        elif kind == seam.Event.RESULT:
            outputs = event.get("outputs")
            self.outputs = outputs if isinstance(outputs, dict) else {}
        elif kind == seam.Event.ERROR:
            self.error = event
            if event.get("traceback"):
                feedback.pushDebugInfo(str(event["traceback"]))
        else:
            feedback.pushDebugInfo(line)

    def _log(self, level: str, text: str) -> None:
        feedback = self.feedback
        if level == seam.Level.INFO:
            feedback.pushInfo(text)
        elif level == seam.Level.WARNING:
            _warn(feedback, text)
        elif level in (seam.Level.ERROR, "critical"):
            feedback.reportError(text, False)
        else:
            feedback.pushDebugInfo(text)


def _describe_exit(returncode: int | None) -> str:
    """A sentence for an engine exit code (negative: killed by a signal)."""
    if returncode is None:
        return "is still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (possibly out of memory)" if name == "SIGKILL" else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {returncode}"


def run_engine_job(
    operation: str,
    params: dict[str, Any],
    feedback: Any,
    python: str | None = None,
    module: str = "engine",
    extra_paths: Sequence[str] = (),
    preferences: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one engine job in a child process and return its outputs.

    Args:
        operation: the engine operation name, e.g. ``"classify_raster"``.
        params: the operation's parameters (plain JSON: paths, names, numbers). Keys starting with ``output``
            are output paths, whose partial files are removed when the job does not succeed.
        feedback: a ``QgsProcessingFeedback``-like object (see the module docstring).
        python: the engine interpreter; found with :func:`find_engine_python` when None.
        module: the module run with ``python -m`` (tests use a fake worker).
        extra_paths: more folders for the engine's ``PYTHONPATH``, after the plugin root.
        preferences: environment variables for the engine from the user's settings (``LANDPROBE_DEVICE``,
            ``LANDPROBE_THREADS``, ``TORCH_HOME``); empty values are left out.

    Returns:
        The ``outputs`` of the engine's ``result`` event.

    Raises:
        EngineNotFoundError: when no engine interpreter is configured.
        EngineJobError: when the engine reports an error or stops without a result.
        EngineCancelledError: when ``feedback.isCanceled()`` became true; the engine was stopped.

    """
    python = python or find_engine_python(None)
    command = [python, "-m", module, seam.WORKER_COMMAND, seam.STDIN_CONTROL]
    feedback.pushDebugInfo(f"Starting the engine: {' '.join(command)} (in {PLUGIN_ROOT})")
    popen_options: dict[str, Any] = {}
    if os.name == "posix":
        popen_options["start_new_session"] = True
    elif sys.platform == "win32":
        popen_options["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    try:
        proc = subprocess.Popen(
            command,
            cwd=str(PLUGIN_ROOT),
            env=engine_environment(extra_paths) | {k: v for k, v in (preferences or {}).items() if v},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            **popen_options,
        )
    except OSError as exc:
        raise EngineNotFoundError(
            f"Could not start the engine with {python!r}: {exc}. " + _HOW_TO_FIX.format(root=PLUGIN_ROOT)
        ) from exc

    lines: queue.Queue = queue.Queue()
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, "out", lines), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, "err", lines), daemon=True),
    ]
    for reader in readers:
        reader.start()
    stderr_tail: deque[str] = deque(maxlen=20)
    handler = _EventHandler(feedback, python)
    open_streams = {"out", "err"}
    succeeded = False
    try:
        feedback.pushDebugInfo(f"Engine process id {proc.pid}")
        job = {"protocol": PROTOCOL, "operation": operation, "params": params}
        try:
            proc.stdin.write(json.dumps(job) + "\n")
            proc.stdin.flush()
        except (OSError, ValueError):
            pass  # the engine died at once: its standard error says why, reported below
        exit_deadline: float | None = None
        while True:
            if feedback.isCanceled():
                if handler.outputs is None:
                    feedback.pushInfo("Cancelling the engine job…")
                    _stop(proc, feedback)
                    _drain(lines, readers, handler)  # a result written just before the cancel still counts
                if handler.outputs is None:
                    raise EngineCancelledError("The Landprobe job was cancelled; no output was written.")
                feedback.pushInfo("The job had finished before the cancel reached it: its outputs are kept.")
                break
            try:
                tag, line = lines.get(timeout=_POLL_S)
            except queue.Empty:
                if "out" not in open_streams or handler.outputs is not None or handler.error is not None:
                    if proc.poll() is not None and ("err" not in open_streams or _past(exit_deadline, 1.0)):
                        break
                    if exit_deadline is None:
                        exit_deadline = time.monotonic()
                    elif _past(exit_deadline, 10.0):
                        break  # the result is in but the process lingers: stop it below
                continue
            if line is None:
                open_streams.discard(tag)
                if not open_streams:
                    _wait_quietly(proc, 10.0)
                    break
                continue
            if tag == "err":
                stderr_tail.append(line)
                if line.strip():
                    feedback.pushDebugInfo(line)
            else:
                handler.handle(line)

        if handler.error is not None:
            error = handler.error
            kind = str(error.get("kind", "error"))
            message = str(error.get("message") or "The engine reported an error without a message.")
            if kind == seam.ErrorKind.CANCELLED:
                raise EngineCancelledError(message)
            raise EngineJobError(message, kind)
        if handler.outputs is None:
            returncode = proc.poll()
            tail = "\n".join(line for line in stderr_tail if line.strip())
            raise EngineJobError(
                f"The engine {_describe_exit(returncode)} without reporting a result."
                + (f" Its last messages:\n{tail}" if tail else ""),
                "crash",
            )
        succeeded = True
        return handler.outputs
    finally:
        if proc.poll() is None:
            if succeeded:
                _stop(proc, feedback)
            else:
                _kill(proc)
        feedback.pushDebugInfo(f"Engine process {proc.pid} {_describe_exit(proc.poll())}")
        _remove_workspace(handler.workspace, proc)
        _close(proc.stdin)
        for reader, stream in ((readers[0], proc.stdout), (readers[1], proc.stderr)):
            reader.join(1.0)
            if not reader.is_alive():  # closing a pipe another thread is reading from can block
                _close(stream)
        if not succeeded:
            remove_temp_files(params, feedback)


def _remove_workspace(workspace: str | None, proc: subprocess.Popen) -> None:
    """Remove the temporary folder of an engine that is gone (one it had to kill could not remove it itself).

    Only a job folder (``<pid>-<random>``) under ``landprobe-jobs[-<uid>]`` is touched, whatever the event said; the
    partial outputs it recorded are removed first.
    """
    if not workspace or proc.poll() is None:
        return
    folder = Path(workspace)
    jobs_folder = re.escape(seam.JOBS_FOLDER) + r"(-\d+)?"
    if not (re.fullmatch(jobs_folder, folder.parent.name) and re.fullmatch(r"\d+-\w+", folder.name)):
        return  # not an engine's job folder: never touch it
    try:
        partials = (folder / seam.PARTIALS).read_text(encoding="utf-8").splitlines()
    except OSError:
        partials = []
    for line in partials:  # the partial outputs the job recorded (engine/core/workspace.py writes this list)
        where, _, token = line.partition("\t")
        if token.startswith(TEMP_MARKER) and re.fullmatch(r"[\w.-]+", token):
            for leftover in Path(where).glob(f"*{token}*"):
                try:
                    leftover.unlink()
                except OSError:
                    pass
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder, ignore_errors=True)


def _drain(lines: queue.Queue, readers: list[threading.Thread], handler: _EventHandler) -> None:
    """Handle what the stopped engine wrote last (its result, if it finished before it saw the cancel)."""
    for reader in readers:
        reader.join(1.0)
    while True:
        try:
            tag, line = lines.get_nowait()
        except queue.Empty:
            return
        if tag == "out" and line is not None:
            handler.handle(line)


def _past(start: float | None, seconds: float) -> bool:
    """Whether ``seconds`` have passed since ``start`` (a ``time.monotonic()`` value; None: not started)."""
    return start is not None and time.monotonic() - start > seconds


def _close(stream: Any) -> None:
    """Close a pipe, ignoring errors of an already broken one."""
    try:
        stream.close()
    except (OSError, ValueError):
        pass


def _wait_quietly(proc: subprocess.Popen, seconds: float) -> None:
    """Wait up to ``seconds`` for the process to exit."""
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        pass
