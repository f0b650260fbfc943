"""Measure the engine's start-up: wall time from spawning the worker to its result for a trivial job (ping).

Run with any Python; it uses the engine's Python from LANDPROBE_PYTHON or the set-up's record:
    python3 scripts/bench_startup.py [--runs 10]
For comparison it also times a bare interpreter start and `import torch` in the same environment.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def engine_python() -> str:
    record = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "landprobe/engine-python"
    return os.environ.get("LANDPROBE_PYTHON") or record.read_text().strip()


def timed(args: list[str], stdin: str | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(args, input=stdin, cwd=ROOT, capture_output=True, text=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    python = engine_python()
    job = json.dumps({"protocol": 1, "operation": "ping", "params": {}}) + "\n"
    cases = {
        "bare interpreter (python -c pass)": ([python, "-c", "pass"], None),
        "engine worker, ping job": ([python, "-m", "engine", "worker"], job),
        "import torch (for comparison)": ([python, "-c", "import torch"], None),
    }
    print(f"engine Python: {python}; {runs} runs each, median and max in seconds")
    for name, (args, stdin) in cases.items():
        timed(args, stdin)  # warm the file cache
        times = [timed(args, stdin) for _ in range(runs)]
        print(f"  {name:38s} median {statistics.median(times):.3f}  max {max(times):.3f}")


if __name__ == "__main__":
    main()
