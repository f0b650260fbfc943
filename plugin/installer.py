"""Create the engine's private environment from inside QGIS: a venv, pip and the plugin's lock file.

Runs in QGIS's Python and only starts processes (``python -m venv``, ``pip``, the engine's ``ping``); it imports
nothing heavy. PyTorch comes in two builds: on Linux the PyPI wheel carries CUDA, and the CPU build comes from
PyTorch's CPU index; on Windows and macOS the PyPI wheel is the CPU build and CUDA builds come from PyTorch's CUDA
index. :func:`install_plan` picks the right one for the compute the user chose (``auto``: CUDA when ``nvidia-smi``
lists a GPU).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

PLUGIN_ROOT = Path(__file__).resolve().parent.parent
LOCK = PLUGIN_ROOT / "requirements" / "engine.lock"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CUDA_INDEX = "https://download.pytorch.org/whl/cu128"
COMPUTES = ("auto", "cpu", "cuda")


def default_folder() -> Path:
    """Where the environment goes by default: ``~/.local/share/landprobe/engine`` (``%APPDATA%`` on Windows)."""
    import os

    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "landprobe" / "engine"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "landprobe" / "engine"


def venv_python(folder: Path) -> Path:
    """The interpreter of the venv in ``folder``."""
    return folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def base_python() -> str:
    """A Python 3.10+ with ``venv`` to build the environment from (QGIS's own executable is not a Python).

    Raises:
        RuntimeError: saying what to install when there is none.

    """
    candidates = [sys.executable, shutil.which("python3.11"), shutil.which("python3.12"), shutil.which("python3"),
                  shutil.which("python")]
    for candidate in filter(None, candidates):
        if not Path(candidate).name.lower().startswith("python"):  # inside QGIS, sys.executable may be QGIS itself
            continue
        try:
            probe = subprocess.run([candidate, "-c", "import sys, venv; print(sys.version_info >= (3, 10))"],
                                   capture_output=True, text=True, timeout=30, check=False)
        except OSError:
            continue
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    raise RuntimeError("No Python 3.10 or newer with the venv module was found. Install it (Debian/Ubuntu: "
                       "sudo apt install python3-venv; Windows: python.org) and run this again.")


def has_nvidia_gpu() -> bool:
    """Whether ``nvidia-smi`` lists a GPU."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return False
    try:
        listed = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def torch_pins(lock: Path) -> list[str]:
    """The ``torch==`` and ``torchvision==`` lines of the lock file."""
    lines = lock.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if re.match(r"^(torch|torchvision)==", line.strip())]


def install_plan(folder: Path, compute: str, lock: Path = LOCK, torch_index: str | None = None,
                 python: str | None = None) -> list[tuple[str, list[str]]]:
    """The commands, each with what it does: venv, PyTorch of the chosen build, the lock, a check.

    ``torch_index`` overrides the PyTorch index (``"none"``: take PyTorch from pip's own index like the rest).
    """
    if compute not in COMPUTES:
        raise ValueError(f"compute must be one of {', '.join(COMPUTES)}")
    cuda = compute == "cuda" or (compute == "auto" and has_nvidia_gpu())
    py = str(venv_python(folder))
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "--no-warn-script-location"]
    plan = [("Creating the environment", [python or base_python(), "-m", "venv", str(folder)])]
    if torch_index is None:  # the build PyPI does not give by default on this system
        if sys.platform.startswith("linux"):
            torch_index = None if cuda else CPU_INDEX
        else:
            torch_index = CUDA_INDEX if cuda else None
    pins = torch_pins(lock) if torch_index and torch_index != "none" else []
    if pins:
        label = "CUDA" if cuda else "CPU"
        plan.append((f"Installing PyTorch ({label} build)", [*pip, *pins, "--index-url", str(torch_index)]))
    plan.append(("Installing the engine's libraries", [*pip, "-r", str(lock)]))
    plan.append(("Checking the engine", [py, "-m", "engine", "ping"]))
    return plan


def run_plan(plan: list[tuple[str, list[str]]], report: Callable[[float, str], None],
             cancelled: Callable[[], bool], env: dict[str, str]) -> None:
    """Run the commands in order, reporting progress and every output line; stop at once when cancelled.

    Raises:
        RuntimeError: when a command fails (with its last output lines) or the user cancelled.

    """
    import queue
    import threading

    for step, (label, command) in enumerate(plan):
        report(step / len(plan), label)
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=str(PLUGIN_ROOT), env=env)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(stream: object = proc.stdout, out: queue.Queue[str | None] = lines) -> None:
            for text in stream:  # type: ignore[attr-defined]
                out.put(text.rstrip())
            out.put(None)

        threading.Thread(target=pump, daemon=True).start()
        tail: list[str] = []
        while True:
            if cancelled():  # checked every 0.2 s, also while pip downloads silently
                proc.kill()
                proc.wait()
                raise RuntimeError("Cancelled; the environment is incomplete: run the installation again.")
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            tail = [*tail[-19:], line]
            if line.startswith(("Collecting", "Downloading", "Installing collected", "Successfully")):
                report(step / len(plan), f"{label}: {line[:120]}")
        code = proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        if code != 0:
            raise RuntimeError(f"{label} failed (exit code {code}):\n" + "\n".join(tail))
    report(1.0, "Done")
