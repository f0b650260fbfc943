"""One temporary folder per job, so that nothing leaks whatever stops the engine.

Every temporary file or folder a job makes (the engine's own, GDAL's, and any library's that asks :mod:`tempfile`)
goes under ``<root>/landprobe-jobs-<uid>/<pid>-<random>/``: the job's workspace. The worker makes it and removes
it at exit; a process killed outright (SIGKILL, the out-of-memory killer, a power cut) cannot, so each new job first
removes the workspaces whose process is gone, and the plugin removes the workspace of an engine it had to kill (the
``started`` event names it). The root is :func:`tempfile.gettempdir` unless ``LANDPROBE_TMPDIR`` says otherwise.

Outputs never live here: they are written beside their final path and renamed into place when complete
(:func:`engine.io.rasters.atomic_output`). Each such partial file is recorded in the workspace (:func:`record_partial`),
so that removing a dead job's workspace also removes the partial outputs it left beside their targets.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# The plugin removes the workspace of an engine it had to kill, so these names are the seam's (engine.core.seam):
# the folder of the workspaces (one per user: ``landprobe-jobs-<uid>`` on POSIX), the file in a workspace that
# lists where its job writes partial outputs, and the mark in the name of every partial output
# (:func:`engine.io.rasters.temporary_path`).
from .seam import JOBS_FOLDER as FOLDER
from .seam import PARTIALS, TMP_MARKER

logger = logging.getLogger(__name__)

#: The file in a workspace that names the process owning it.
OWNER = "owner.pid"
#: The environment variable that names the current job's workspace.
VARIABLE = "LANDPROBE_WORKSPACE"


def jobs_root() -> Path:
    """The folder of the workspaces: ``<root>/landprobe-jobs-<uid>`` (``landprobe-jobs`` on Windows).

    The root is ``LANDPROBE_TMPDIR`` or the system's temporary folder; one folder per user, so that the users of a
    shared machine never share (or sweep) each other's.
    """
    user = f"-{os.getuid()}" if hasattr(os, "getuid") else ""
    return Path(os.environ.get("LANDPROBE_TMPDIR") or tempfile.gettempdir()) / f"{FOLDER}{user}"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one that cannot be queried counts as alive)."""
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        # Lazy: keeps a trivial job's start-up light.
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel32.GetLastError() == 5  # ERROR_ACCESS_DENIED: it exists
        code = ctypes.c_ulong()
        try:
            kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        finally:
            kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def sweep(root: Path | None = None) -> list[Path]:
    """Remove the workspaces whose owning process is gone; returns those removed."""
    root = root or jobs_root()
    removed = []
    for folder in root.glob("*-*") if root.is_dir() else []:
        try:
            pid = int((folder / OWNER).read_text().strip())
        except (OSError, ValueError):
            pid = int(folder.name.split("-")[0]) if folder.name.split("-")[0].isdigit() else -1
        if pid > 0 and _alive(pid):
            continue
        remove_partials(folder)
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
    if removed:
        logger.debug("Removed %d temporary folders left by engines that were killed.", len(removed))
    return removed


def record_partial(folder: Path, token: str) -> None:
    """Note in the current workspace (if any) that files named with ``token`` are being written in ``folder``."""
    workspace = os.environ.get(VARIABLE)
    if workspace and Path(workspace).is_dir():
        with contextlib.suppress(OSError), (Path(workspace) / PARTIALS).open("a", encoding="utf-8") as stream:
            stream.write(f"{folder.resolve()}\t{token}\n")


def remove_partials(workspace: Path) -> None:
    """Remove the partial outputs (and their side-cars) that the job of ``workspace`` recorded."""
    try:
        lines = (workspace / PARTIALS).read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    for line in lines:
        folder, _, token = line.partition("\t")
        if TMP_MARKER not in token or "/" in token:  # only the engine's own partial files, never others
            continue
        for leftover in Path(folder).glob(f"*{token}*"):
            with contextlib.suppress(OSError):
                leftover.unlink()


@contextlib.contextmanager
def job_workspace() -> Iterator[Path | None]:
    """Make this process's workspace, send every temporary file there, and remove it at the end.

    Sets :data:`tempfile.tempdir` and ``TMPDIR``/``CPL_TMPDIR`` (for GDAL and for child processes, e.g. the
    processes of a distributed fine-tune) to the workspace; restores them afterwards. When the workspace cannot be
    made (a read-only or foreign temporary folder), the job runs with the usual temporary folder and a warning:
    yields ``None``.
    """
    root = jobs_root()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if hasattr(os, "getuid") and root.stat().st_uid != os.getuid():
            raise PermissionError(f"{root} belongs to another user")
        sweep(root)
        folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
        (folder / OWNER).write_text(str(os.getpid()))
    except OSError as exc:
        logger.warning("No job folder for temporary files (%s); they go to %s as usual, and a killed engine may "
                       "leave some there.", exc, tempfile.gettempdir())
        yield None
        return
    saved = tempfile.tempdir, {k: os.environ.get(k) for k in ("TMPDIR", "CPL_TMPDIR", VARIABLE)}
    tempfile.tempdir = str(folder)
    os.environ["TMPDIR"] = os.environ["CPL_TMPDIR"] = os.environ[VARIABLE] = str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = saved[0]
        for key, value in saved[1].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(folder, ignore_errors=True)
