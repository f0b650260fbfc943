"""Soak: many engine jobs in a row through the plugin's engine runner, with seeded random cancels and kills.

Protocol:

- The plugin's own runner, ``plugin/engine_process.py`` (``run_engine_job``, loaded by file path: it needs nothing but
  the standard library), starts ``<engine python> -m engine worker`` for every job, exactly as QGIS does.
- Jobs: ``classify_raster`` of the sample tiled 8 x 8 (2000 x 2000 px, 8 bands) with an SVM model trained once on the
  sample, writing a class map and probabilities into one output folder. For each job a seeded draw says: run to the
  end (50 %), cancel after a random 0.2-2.0 s (30 %, the plugin's cancel: a ``cancel`` line, then SIGTERM after its
  grace, then SIGKILL), or SIGKILL the engine after a random 0.2-2.0 s (20 %, as the out-of-memory killer would).
- Load: ``--busy N`` processes (default 2, one per core here) spin for the whole run, so that the cancels are timed on
  busy cores.
- Temporary files go under a fresh ``LANDPROBE_TMPDIR``. After the last job, one ``ping`` job runs (it removes what
  killed engines left), then the script counts leftovers: files in the output folder other than finished maps and
  their side-cars, and anything under the temporary root; and orphans: ``engine worker`` processes still alive.
- Memory: the parent's resident memory after job 5 and after the last job; each engine's peak resident memory
  (sampled every 20 ms from ``/proc``), mean of the first five finished jobs against the last five.
- Cancel: time from the cancel request to the engine's exit, median and worst, and how many cancels needed SIGTERM or
  SIGKILL.

Run: ``PYTHONPATH=. <engine python> benchmarks/bench_soak.py [--jobs 50] [--seed 0] [--busy 2]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import LABELS, REPO, SAMPLE


def _runner() -> Any:
    spec = importlib.util.spec_from_file_location("engine_process", REPO / "plugin" / "engine_process.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rss_kb(pid: int | str = "self") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Feedback:
    """A QgsProcessingFeedback stand-in: cancels at ``cancel_at`` (monotonic), records the engine's pid."""

    def __init__(self, cancel_at: float | None) -> None:
        self.cancel_at = cancel_at
        self.cancelled_at: float | None = None
        self.pid: int | None = None
        self.escalation: str | None = None

    def isCanceled(self) -> bool:
        """Whether the cancel time has come."""
        if self.cancel_at is not None and time.monotonic() >= self.cancel_at:
            self.cancelled_at = self.cancelled_at or time.monotonic()
            return True
        return False

    def pushDebugInfo(self, text: str) -> None:
        """Note the engine's pid and any escalation."""
        if text.startswith("Engine process id "):
            self.pid = int(text.rsplit(" ", 1)[1])
        if "terminating" in text:
            self.escalation = "SIGTERM"
        if "killing it" in text:
            self.escalation = "SIGKILL"

    def pushInfo(self, text: str) -> None:
        """Ignored."""

    def pushWarning(self, text: str) -> None:
        """Ignored."""

    def reportError(self, text: str, fatal: bool = False) -> None:
        """Ignored."""

    def setProgress(self, value: float) -> None:
        """Ignored."""

    def setProgressText(self, text: str) -> None:
        """Ignored."""


def _spin() -> None:
    while True:
        pass


def _engine_workers() -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "-m engine worker" in cmd:
                found.append(int(proc.name))
    return found


def _prepare(work: Path, python: str) -> tuple[Path, Path]:
    import rasterio

    from engine.jobs.train_classifier import train_classifier

    model = work / "svm.lpmodel"
    train_classifier(str(SAMPLE), str(LABELS), "class", str(model), method="svm")
    with rasterio.open(SAMPLE) as src:
        profile, data = src.profile, src.read()
    big = np.tile(data, (1, 8, 8))
    raster = work / "big.tif"
    profile.update(width=big.shape[2], height=big.shape[1], tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(raster, "w", **profile) as dst:
        dst.write(big)
    return raster, model


def main() -> None:
    """Run the soak and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--busy", type=int, default=2, help="spinning processes for the whole run")
    args = parser.parse_args()
    ep = _runner()
    python = os.environ.get("LANDPROBE_PYTHON") or sys.executable
    work = Path(tempfile.mkdtemp(prefix="landprobe-soak-"))
    tmp_root, out = work / "tmp", work / "out"
    tmp_root.mkdir()
    out.mkdir()
    raster, model = _prepare(work, python)
    os.environ["LANDPROBE_TMPDIR"] = str(tmp_root)
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for spinner in spinners:
        spinner.start()
    rng = random.Random(args.seed)
    finished_maps: set[str] = set()
    counts = {"done": 0, "cancelled": 0, "killed": 0, "other": 0}
    stop_times: list[float] = []
    escalations: dict[str, int] = {"cancel line": 0, "SIGTERM": 0, "SIGKILL": 0}
    engine_peaks: list[int] = []
    parent_rss: dict[int, int] = {}
    wrong_results: list[str] = []
    start = time.monotonic()
    for job in range(1, args.jobs + 1):
        draw = rng.random()
        action = "run" if draw < 0.5 else "cancel" if draw < 0.8 else "kill"
        delay = rng.uniform(0.2, 2.0)
        target = out / f"map{job:02d}.tif"
        params = {"raster": str(raster), "model": str(model), "output": str(target),
                  "output_probability": str(out / f"proba{job:02d}.tif")}
        feedback = Feedback(time.monotonic() + delay if action == "cancel" else None)
        peak = [0]

        def watch(fb: Feedback = feedback, peak: list[int] = peak, action: str = action, delay: float = delay) -> None:
            t0 = time.monotonic()
            while fb.pid is None and time.monotonic() - t0 < 30:
                time.sleep(0.005)
            killed = False
            while fb.pid is not None and Path(f"/proc/{fb.pid}").exists():
                peak[0] = max(peak[0], _rss_kb(fb.pid))
                if action == "kill" and not killed and time.monotonic() - t0 >= delay:
                    try:
                        os.kill(fb.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    killed = True
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        outcome = "done"
        try:
            ep.run_engine_job("classify_raster", params, feedback, python=python, extra_paths=[str(REPO)])
        except ep.EngineCancelledError:
            outcome = "cancelled"
            stop_times.append(time.monotonic() - (feedback.cancelled_at or time.monotonic()))
            escalations[feedback.escalation or "cancel line"] += 1
        except ep.EngineJobError as exc:
            outcome = "killed" if action == "kill" else "other"
            if outcome == "other":
                wrong_results.append(f"job {job}: {exc}")
        watcher.join(5)
        counts[outcome] += 1
        if outcome == "done":
            finished_maps.update({target.name, f"proba{job:02d}.tif"})
            engine_peaks.append(peak[0])
            if not target.exists():
                wrong_results.append(f"job {job}: reported done but {target.name} is missing")
        elif target.exists():
            wrong_results.append(f"job {job}: {outcome} but {target.name} exists")
        if feedback.pid and Path(f"/proc/{feedback.pid}").exists():
            wrong_results.append(f"job {job}: engine {feedback.pid} still alive after the job")
        if job in (5, args.jobs):
            parent_rss[job] = _rss_kb()
        print(f"job {job:2d}: {action:6s} after {delay:.1f} s -> {outcome}", flush=True)
    elapsed = time.monotonic() - start
    for spinner in spinners:
        spinner.terminate()
    ep.run_engine_job("ping", {}, Feedback(None), python=python, extra_paths=[str(REPO)])  # sweeps the dead's
    sidecars = (".aux.xml", ".qml", ".ovr")
    leftovers = [p.name for p in out.iterdir()
                 if p.name not in finished_maps and not any(p.name == m + s or p.name == Path(m).stem + s
                                                            for m in finished_maps for s in sidecars)]
    temp_left = [str(p.relative_to(tmp_root)) for p in tmp_root.rglob("*") if p.is_file()]
    temp_dirs = [str(p.relative_to(tmp_root)) for p in (tmp_root / "landprobe-jobs").glob("*")]
    orphans = _engine_workers()
    print(f"\n## Soak: {args.jobs} jobs in {elapsed:.0f} s (seed {args.seed}, {args.busy} busy processes)\n")
    print("| measure | value | target |\n|---|---|---|")
    print(f"| jobs done / cancelled / killed / other | {counts['done']} / {counts['cancelled']} / {counts['killed']}"
          f" / {counts['other']} | other 0 |")
    print(f"| leftover files in the output folder | {len(leftovers)} {leftovers[:5]} | 0 |")
    print(f"| leftover temporary files / job folders | {len(temp_left)} / {len(temp_dirs)} | 0 / 0 |")
    print(f"| orphan engine processes | {len(orphans)} | 0 |")
    print(f"| wrong reports (done without map, cancelled with map, engine alive) | {len(wrong_results)} | 0 |")
    growth = (parent_rss.get(args.jobs, 0) - parent_rss.get(5, 0)) / 1024
    print(f"| parent resident memory, job 5 -> job {args.jobs} | {parent_rss.get(5, 0) / 1024:.1f} -> "
          f"{parent_rss.get(args.jobs, 0) / 1024:.1f} MB ({growth:+.1f} MB) | growth < 50 MB |")
    if len(engine_peaks) >= 10:
        first, last = statistics.mean(engine_peaks[:5]) / 1024, statistics.mean(engine_peaks[-5:]) / 1024
        print(f"| engine peak resident memory, first 5 -> last 5 finished jobs | {first:.0f} -> {last:.0f} MB "
              f"({last - first:+.0f} MB) | growth < 50 MB |")
    if stop_times:
        print(f"| cancel to engine exit, median / worst (n = {len(stop_times)}) | {statistics.median(stop_times):.2f}"
              f" / {max(stop_times):.2f} s | within the {ep._CANCEL_GRACE_S:.0f} s grace |")
        print(f"| cancels ended by the cancel line / SIGTERM / SIGKILL | {escalations['cancel line']} / "
              f"{escalations['SIGTERM']} / {escalations['SIGKILL']} | all by the cancel line |")
    for line in wrong_results:
        print(f"- {line}")


if __name__ == "__main__":
    main()
