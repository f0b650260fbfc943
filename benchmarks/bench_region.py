"""Region maps: single-process Classify raster against Map region on a LocalCluster and on a scheduler + 2 workers.

Protocol:

- Region: bands 1-7 of the Landsat 7 sample (int16) tiled into ``--tiles`` x ``--tiles`` Cloud-Optimized GeoTIFF
  tiles of ``--tile-size`` px each (default 8 x 8 tiles of 2000 px: 64 tiles, 16,000 x 16,000 px, 256 Mpx),
  on one pixel grid, written once into ``--workdir`` (default /tmp/landprobe-bench-region) and reused. Every
  contender reads the tiles' folder (Map region mosaics it into a VRT) or, for Classify raster, the same VRT.
- Model: ``python -m engine train --method logistic_regression`` on the sample (trained beforehand, not timed):
  the fastest probe per pixel, so that scheduling overhead weighs most.
- Contenders, each a whole process run with ``run_measured`` (wall time; peak resident memory of its process tree,
  polled every 0.2 s):

  - ``classify``: ``python -m engine classify`` on the VRT (one process, window threads on every core);
  - ``local``: ``python -m engine map-region --workers 2`` (a LocalCluster of 2 single-threaded worker processes,
    started and stopped inside the job);
  - ``scheduler``: ``python -m engine map-region --scheduler tcp://127.0.0.1:PORT``, with a ``dask scheduler`` and
    two ``dask worker --nthreads 1`` processes started beforehand on 127.0.0.1 (not timed; their memory is not
    in the process tree, so the per-worker peak comes from the blocks' own ``ru_maxrss``).

- Rounds: ``--rounds`` (default 3) rounds of the three contenders, interleaved, the order turned each round (the
  machine's speed drifts by up to 30 % within minutes); each contender's median run is reported, every wall time
  printed.
- Figures: throughput (Mpx/s = region pixels / wall time, cluster start-up and the VRT included); peak memory (the
  process tree; for the Dask paths also the largest worker's own peak, reported by its blocks); scheduler overhead
  per block = (wall time x workers - sum of the blocks' own seconds) / blocks, i.e. every second a worker was not
  computing a block (start-up, scheduling, transfers, the final VRT), spread over the blocks.
- Target on 2 cores: both Dask paths within 15 % of the single-process throughput. Run on an idle machine.

Run: ``PYTHONPATH=. <engine python> benchmarks/bench_region.py [--tiles 8] [--tile-size 2000] [--block 2048]
[--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import FIELD, LABELS, engine_env, markdown_table, run_measured, seven_band_copy


def make_tiles(workdir: Path, tiles: int, size: int) -> Path:
    """``tiles`` x ``tiles`` COG tiles of ``size`` px from the sample's bands 1-7, on one grid (written once)."""
    import numpy as np
    import rasterio
    from rasterio.shutil import copy
    from rasterio.transform import Affine

    folder = workdir / f"tiles_{tiles}x{size}"
    if folder.is_dir() and len(list(folder.glob("*.tif"))) == tiles * tiles:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    sample = seven_band_copy(workdir)
    with rasterio.open(sample) as src:
        data, profile = src.read(), src.profile
    reps = (size // data.shape[1] + 1, size // data.shape[2] + 1)
    block = np.tile(data, (1, *reps))[:, :size, :size]
    t = profile["transform"]
    for row in range(tiles):
        for col in range(tiles):
            transform = Affine(t.a, t.b, t.c + col * size * t.a, t.d, t.e, t.f + row * size * t.e)
            work = folder / f"work_{row}_{col}.tif"
            with rasterio.open(work, "w", **(profile | {"width": size, "height": size, "transform": transform,
                                                          "tiled": True, "blockxsize": 512, "blockysize": 512,
                                                          "compress": "deflate"})) as dst:
                dst.write(block)
            copy(work, folder / f"tile_{row:02d}_{col:02d}.tif", driver="COG", COMPRESS="DEFLATE")
            work.unlink()
    return folder


def start_cluster(workdir: Path, env: dict[str, str]) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """A ``dask scheduler`` and two single-threaded ``dask worker`` processes on 127.0.0.1."""
    scheduler_file = workdir / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    while not scheduler_file.exists():
        time.sleep(0.2)
    address = json.loads(scheduler_file.read_text())["address"]
    for _ in range(2):
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads",
                                       "1", "--no-dashboard", "--host", "127.0.0.1"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(2, timeout=120)
    return address, procs


def blocks_figures(folder: Path, wall_s: float, workers: int) -> dict[str, Any]:
    """Per-block cost, overhead per block and the largest worker peak, from the job's manifest."""
    blocks = json.loads((folder / "landprobe-region.json").read_text())["blocks"].values()
    busy = sum(b["seconds"] for b in blocks)
    return {"blocks": len(blocks), "block_s": busy / len(blocks),
            "overhead_s": (wall_s * workers - busy) / len(blocks),
            "worker_peak_mb": max(b["worker_peak_mb"] for b in blocks)}


def main() -> None:
    """Build the region, train the model, run the three contenders and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=8, help="tiles per side")
    parser.add_argument("--tile-size", type=int, default=2000, help="pixels per tile side")
    parser.add_argument("--block", type=int, default=2048, help="Map region's block size")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/landprobe-bench-region"))
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three contenders (median reported)")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    env = engine_env()
    engine = [sys.executable, "-m", "engine"]
    start = time.perf_counter()
    tiles = make_tiles(args.workdir, args.tiles, args.tile_size)
    side = args.tiles * args.tile_size
    print(f"Region: {args.tiles * args.tiles} COG tiles, {side} x {side} px ({side * side / 1e6:.0f} Mpx), built in "
          f"{time.perf_counter() - start:.0f} s (or reused).", flush=True)
    model = args.workdir / "lr.lpmodel"
    if not model.exists():
        done = subprocess.run([*engine, "train", "--raster", str(seven_band_copy(args.workdir)), "--labels",
                               str(LABELS), "--field", FIELD, "--method", "logistic_regression", "--output-model",
                               str(model)], env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"training failed: {done.stdout[-2000:]}")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from engine.io.region import mosaic_vrt

    vrt = mosaic_vrt(sorted(str(p) for p in tiles.glob("*.tif")), args.workdir / "region.vrt")
    rows, figures = [], {}
    runs = {"classify": [*engine, "classify", "--raster", str(vrt), "--model", str(model), "--output",
                         str(args.workdir / "single.tif")],
            "local": [*engine, "map-region", "--raster", str(tiles), "--model", str(model), "--output-folder",
                      str(args.workdir / "local"), "--block-size", str(args.block), "--workers", "2"]}
    cluster: list[subprocess.Popen[bytes]] = []
    names = ["classify", "local", "scheduler"]
    measured: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    try:
        address, cluster = start_cluster(args.workdir, env)
        runs["scheduler"] = [*engine, "map-region", "--raster", str(tiles), "--model", str(model), "--output-folder",
                             str(args.workdir / "scheduler"), "--block-size", str(args.block), "--scheduler", address]
        for round_ in range(args.rounds):  # interleaved, the order turned each round: the machine's drift spreads
            for name in names[round_ % 3:] + names[:round_ % 3]:
                if name == "classify":
                    (args.workdir / "single.tif").unlink(missing_ok=True)
                else:  # a fresh folder: a resumed job would skip every block
                    shutil.rmtree(args.workdir / name, ignore_errors=True)
                run = run_measured(runs[name], env=env)
                if run["rc"]:
                    print(f"{name} failed: {run['output'][-1500:]}", flush=True)
                    continue
                measured[name].append(run | (blocks_figures(args.workdir / name, run["wall_s"], 2)
                                             if name != "classify" else {}))
                print(f"round {round_ + 1}, {name}: {run['wall_s']:.1f} s", flush=True)
    finally:
        for proc in cluster:
            proc.kill()
    for name, runs_ in measured.items():  # the median run of each contender
        if runs_:
            figures[name] = sorted(runs_, key=lambda r: r["wall_s"])[len(runs_) // 2]
    for name in names:
        print(f"{name}, wall s per round: {', '.join(str(round(r['wall_s'], 1)) for r in measured[name])}")
    base = figures.get("classify")
    for name, label in (("classify", "Classify raster, one process (window threads on 2 cores)"),
                        ("local", "Map region, LocalCluster of 2 workers (started inside the job)"),
                        ("scheduler", "Map region, dask scheduler + 2 dask workers over loopback")):
        f = figures.get(name)
        if not f:
            rows.append([label, "failed", "-", "-", "-", "-"])
            continue
        mpx = side * side / 1e6 / f["wall_s"]
        ratio = f"{mpx / (side * side / 1e6 / base['wall_s']):.2f}" if base else "-"
        rows.append([label, f"{f['wall_s']:.1f}", f"{mpx:.2f}", ratio, f"{f['peak_rss'] / 1e9:.2f}"
                     + (f" (largest worker {f['worker_peak_mb'] / 1e3:.2f})" if "worker_peak_mb" in f else ""),
                     f"{f['blocks']} blocks: {f['block_s']:.2f} s each, overhead {f['overhead_s']:.2f} s / block"
                     if "blocks" in f else "-"])
    print()
    print(markdown_table(["contender", "wall s", "Mpx/s", "x single process", "peak memory GB (process tree)",
                          "blocks"], rows))
    local, sched = figures.get("local"), figures.get("scheduler")
    if base and local:
        print(f"\nPer-block cost {local['block_s']:.2f} s for {args.block}x{args.block} px "
              f"({args.block * args.block / 1e6 / local['block_s']:.2f} Mpx/s per worker), overhead "
              f"{local['overhead_s']:.2f} s / block (LocalCluster)"
              + (f", {sched['overhead_s']:.2f} s / block (scheduler)" if sched else "") + ".")


if __name__ == "__main__":
    main()
