"""Every Landprobe algorithm through real ``qgis_process`` on the sample: start-up to first progress, wall time.

Protocol: ``qgis_process.bin run landprobe:<id> -- ...`` (QGIS 3.22, offscreen, a throw-away profile with the
plugin enabled from this folder, the engine from ``LANDPROBE_PYTHON`` or the set-up's record) on the Landsat 7
sample, in pipeline order (each step uses the previous one's files). "Engine started" is the time from starting
``qgis_process`` to the log line saying the engine process answered (QGIS, Processing and the plugin loaded, the
engine's Python started and its first event read): the first line of progress a user sees; "wall" is the whole
run. Each algorithm runs ``--repeat`` times (a fresh machine's first run also pays for disk caches); the table gives
the median.

Run with Debian's Python (the one QGIS uses): ``/usr/bin/python3 benchmarks/bench_qgis_process.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "resources" / "sample"
RASTER = SAMPLE / "LE70220491999322EDC01_stack.gtif"
LABELS = SAMPLE / "training_data.shp"
GT = REPO / "tests" / "data" / "hsi" / "Indian_pines_gt.mat"


def steps(work: Path) -> list[tuple[str, list[str]]]:
    """Algorithm ids and their parameters, in pipeline order."""
    return [
        ("enginestatus", []),
        ("trainclassifier", [f"RASTER={RASTER}", f"LABELS={LABELS}", "FIELD=class",
                             f"OUTPUT_MODEL={work / 'svm.lpmodel'}", f"OUTPUT_REPORT={work / 'svm.json'}"]),
        ("classifyraster", [f"RASTER={RASTER}", f"MODEL={work / 'svm.lpmodel'}", f"OUTPUT={work / 'map.tif'}"]),
        ("assessaccuracy", [f"CLASSIFIED={work / 'map.tif'}", f"REFERENCE={LABELS}", "FIELD=class",
                            f"OUTPUT_REPORT={work / 'assess.json'}"]),
        ("extractembeddings", [f"RASTER={RASTER}", "PATCH_SIZE=8", "STRIDE=4", f"OUTPUT={work / 'emb.tif'}",
                               f"OUTPUT_PREVIEW={work / 'preview.tif'}"]),
        ("finetune", [f"RASTER={RASTER}", f"LABELS={LABELS}", "FIELD=class", "BACKBONE=5", "EPOCHS=5",
                      f"OUTPUT_MODEL={work / 'deep.lpmodel'}", f"OUTPUT_REPORT={work / 'deep.json'}"]),
        ("exportonnx", [f"MODEL={work / 'deep.lpmodel'}", f"OUTPUT={work / 'deep.onnx'}"]),
        ("importmat", [f"MAT={GT}", f"OUTPUT={work / 'gt.tif'}"]),
        ("labelpolygons", [f"RASTER={work / 'gt.tif'}", f"OUTPUT={work / 'gt.gpkg'}"]),
    ]


def environment(work: Path) -> dict[str, str]:
    """A throw-away QGIS profile with the plugin enabled, loaded from this repository."""
    profile = work / "profile"
    ini = profile / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text("[PythonPlugins]\nlandprobe=true\n", encoding="utf-8")
    plugins = work / "plugins"
    plugins.mkdir(exist_ok=True)
    if not (plugins / "landprobe").exists():
        (plugins / "landprobe").symlink_to(REPO, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYENV", "PYTHONHOME", "PYTHONPATH"))}
    return env | {"QT_QPA_PLATFORM": "offscreen", "QGIS_PLUGINPATH": str(plugins),
                  "QGIS_CUSTOM_CONFIG_PATH": str(profile), "XDG_RUNTIME_DIR": str(work)}


def timed_run(algorithm: str, params: list[str], env: dict[str, str]) -> tuple[float | None, float, int]:
    """Seconds to the engine's first answer, seconds in all, and the exit code.

    ``qgis_process`` writes through a pseudo-terminal, as in a shell, so its lines are not held in a pipe's buffer.
    """
    import pty

    start = time.perf_counter()
    leader, follower = pty.openpty()
    proc = subprocess.Popen(["qgis_process.bin", "run", f"landprobe:{algorithm}", "--", *params], env=env,
                            stdout=follower, stderr=subprocess.DEVNULL)
    os.close(follower)
    first, text = None, b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        text += chunk
        if first is None and b"Engine process started" in text:
            first = time.perf_counter() - start
    os.close(leader)
    code = proc.wait()
    return first, time.perf_counter() - start, code


def main() -> None:
    """Run every algorithm, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="landprobe-bench-qp-") as tmp:
        work = Path(tmp)
        env = environment(work)
        rows = []
        for algorithm, params in steps(work):
            firsts, walls, codes = [], [], []
            for _ in range(args.repeat):
                first, wall, code = timed_run(algorithm, params, env)
                if first is not None:
                    firsts.append(first)
                walls.append(wall)
                codes.append(code)
            rows.append(f"| landprobe:{algorithm} | "
                        f"{statistics.median(firsts):.2f} | " if firsts else f"| landprobe:{algorithm} | n/a | ")
            rows[-1] += f"{statistics.median(walls):.2f} | {', '.join(map(str, sorted(set(codes))))} |"
            print(rows[-1], flush=True)
    print(f"\nqgis_process on the Landsat 7 sample, median of {args.repeat} runs; load average "
          f"{os.getloadavg()[0]:.2f} at the end.\n")
    print("| algorithm | s to engine started | wall s | exit code |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
