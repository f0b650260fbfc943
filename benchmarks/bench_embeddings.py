"""Embedding extraction on the CPU: Landprobe's engine against a naive TorchGeo loop, with memory and GFLOP/s.

Protocol:

- Raster: bands 1-7 of the Landsat 7 sample tiled into N x N px **int16** GeoTIFFs (512 px tiles; ``--sizes``,
  default 2000 and 4000, the 4000 one is the headline), built once in ``--workdir`` (default /tmp/landprobe-bench)
  by ``bench_predict.build_raster`` and reused.
- Encoders: ``rcf_gaussian`` (random convolutional features, 128 features, patch 16, stride 16) and ``resnet18``
  **random-init** (no weights, patch 32, stride 32: only its speed means anything). Both contenders build the
  encoder through ``engine.embeddings.encoders.build_encoder`` with seed 0, ``torch.manual_seed(0)`` first (timm draws
  the
  random ResNet from torch's global generator) and the raster's per-band mean and std, so outputs are comparable.
- Contenders, each in its own process tree (peak RSS = largest polled sum over the tree, every 0.2 s, GB = 1e9 B):
  *ours*, ``engine.embeddings.encode.extract_embeddings(device="cpu")`` (the engine's default batch of 64); *naive*, a
  TorchGeo ``RasterDataset`` over the same file, ``GridGeoSampler(size=patch, stride=stride)`` in pixel units, a
  ``DataLoader(batch_size=32, collate_fn=stack_samples)`` (default ``num_workers=0``), per-band standardisation of
  each batch, ``model.eval()`` under ``torch.inference_mode``, every output kept in memory and written at the end
  as a Float32 GeoTIFF with the same creation options as ours.
- Figures: wall seconds of the whole process (interpreter start and imports included), patches/s and Mpx/s
  (input pixels / wall), peak RSS; "call s" is the worker's own time from before the encoder is built to the file
  written (every import done beforehand, so left out for both). GFLOP/s = patches x FLOPs per patch / call s, where
  FLOPs per patch are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one batch (convolutions and
  matmuls; RCF's clamp/mean are not counted). The compute limit is a plain forward pass of the same model on random
  tensors, batch 64, after 3 warm-up passes: the fastest of 5 trials of at least 5 passes and 0.5 s.
- Memory: peak RSS includes GDAL's block cache, by default 5 % of RAM, which fills as a bigger file is read. The
  engine caps its own (``engine.io.rasters.GDAL_CACHE_MB``); ``--gdal-cache MB`` sets ``GDAL_CACHEMAX`` for every
  worker, e.g. ``--gdal-cache 64`` gives the naive loop the same cap.
- Check: the naive embeddings must equal ours within 1e-4 of max |ours|, over the cells both cover whose patch
  lies wholly inside the raster. TorchGeo 0.8's grid starts at the raster's **bottom**-left corner (ours: top-left),
  so its rows line up with ours only when the height is a multiple of the stride; otherwise (2000 px with stride 32:
  16 px off) no cell coincides and the check says so. Its chips that overhang the top edge read nodata (-9999).
- Concurrent CPU load on the machine distorts every figure, torch's most of all (one OpenMP thread per core: on 2
  cores a busy neighbour process made one RCF batch take ~60 ms instead of ~1 ms): run it on an idle machine.

Run: ``PYTHONPATH=. <engine python> benchmarks/bench_embeddings.py [--sizes 2000 4000 8000] [--workdir DIR]
[--encoders rcf_gaussian resnet18] [--gdal-cache MB]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench_predict import build_raster
from common import engine_env, markdown_table, run_measured

ENCODERS = {"rcf_gaussian": (16, 16), "resnet18": (32, 32)}  # patch, stride (px)
LABELS = {"rcf_gaussian": "RCF gaussian, 128 features", "resnet18": "ResNet-18 random-init (speed only)"}
SEED, NAIVE_BATCH, LIMIT_BATCH = 0, 32, 64
PROFILE = {"driver": "GTiff", "dtype": "float32", "nodata": float("nan"), "tiled": True, "blockxsize": 256,
           "blockysize": 256, "compress": "deflate", "predictor": 3, "interleave": "band", "BIGTIFF": "IF_SAFER"}


def preload() -> None:
    """Import what building an encoder imports lazily, so that "call s" leaves all imports out for both."""
    import timm  # noqa: F401
    import torchgeo.models  # noqa: F401

    import engine.jobs.train_classifier  # noqa: F401


def build(encoder: str, raster: Path) -> Any:
    """The encoder as ``extract_embeddings`` builds it: seeded, with the raster's band statistics."""
    import torch

    from engine.embeddings.encode import band_statistics, patch_sampler
    from engine.embeddings.encoders import EncoderRequest, build_encoder, get_encoder
    from engine.io.rasters import open_raster

    torch.manual_seed(SEED)
    with open_raster(raster) as src:
        names = [d or f"band {i}" for i, d in enumerate(src.descriptions, start=1)]
        request = EncoderRequest(get_encoder(encoder), names, band_statistics(src), patch_sampler(src), seed=SEED)
        return build_encoder(request)


def ours_worker(encoder: str, raster: Path, output: Path) -> dict[str, Any]:
    """Landprobe's extraction, seeded like :func:`build`."""
    import torch

    from engine.jobs.extract_embeddings import extract_embeddings

    preload()
    start = time.perf_counter()
    torch.manual_seed(SEED)
    patch, stride = ENCODERS[encoder]
    done = extract_embeddings(str(raster), str(output), encoder, patch, stride, device="cpu", seed=SEED)
    return {"call_s": time.perf_counter() - start, "patches": done.valid_cells}


def naive_worker(encoder: str, raster: Path, output: Path) -> dict[str, Any]:
    """The TorchGeo loop: RasterDataset + GridGeoSampler + DataLoader, outputs kept, written at the end."""
    import numpy as np
    import rasterio
    import torch
    from rasterio.transform import Affine
    from torch.utils.data import DataLoader
    from torchgeo.datasets import RasterDataset, stack_samples
    from torchgeo.samplers import GridGeoSampler

    preload()
    start = time.perf_counter()
    built = build(encoder, raster)
    patch, stride = ENCODERS[encoder]

    class Tiled(RasterDataset):
        filename_glob = raster.name

    dataset = Tiled(paths=raster.parent)
    loader = DataLoader(dataset, batch_size=NAIVE_BATCH, sampler=GridGeoSampler(dataset, size=patch, stride=stride),
                        collate_fn=stack_samples)
    mean = torch.tensor(built.mean, dtype=torch.float32)[None, :, None, None]
    std = torch.tensor(built.std, dtype=torch.float32)[None, :, None, None]
    model = built.module.eval()
    corners, outputs = [], []
    with torch.inference_mode():
        for batch in loader:
            outputs.append(model((batch["image"] - mean) / std).numpy())
            corners += [(x.start, y.stop) for x, y, _ in batch["bounds"]]
    res = dataset.res[0] * stride
    left, top = min(c[0] for c in corners), max(c[1] for c in corners)
    cols = [round((x - left) / res) for x, _ in corners]
    rows = [round((top - y) / res) for _, y in corners]
    grid = np.full((built.dim, max(rows) + 1, max(cols) + 1), np.nan, dtype="float32")
    grid[:, rows, cols] = np.concatenate(outputs).T
    profile = PROFILE | {"width": grid.shape[2], "height": grid.shape[1], "count": built.dim, "crs": dataset.crs,
                         "transform": Affine(res, 0, left, 0, -res, top)}  # patch == stride: one cell per chip
    with rasterio.open(output, "w", **profile) as dst:
        dst.write(grid)
    return {"call_s": time.perf_counter() - start, "patches": len(corners)}


def limit_worker(encoder: str, raster: Path, _: Path) -> dict[str, Any]:
    """FLOPs per patch, and a plain batched forward pass on random tensors: this machine's compute limit."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    built = build(encoder, raster)
    patch, _stride = ENCODERS[encoder]
    x = torch.randn(LIMIT_BATCH, len(built.bands), patch, patch)
    model = built.module.eval()
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            model(x)
        flops = counter.get_total_flops() / LIMIT_BATCH
        for _ in range(3):
            model(x)
        best = 0.0  # passes per second of the fastest of 5 trials (a limit: the least disturbed trial)
        for _ in range(5):
            n, start = 0, time.perf_counter()
            while n < 5 or time.perf_counter() - start < 0.5:
                model(x)
                n += 1
            best = max(best, n / (time.perf_counter() - start))
    return {"flops": flops, "gflops": flops * LIMIT_BATCH * best / 1e9, "patches_s": LIMIT_BATCH * best}


WORKERS = {"ours": ours_worker, "naive": naive_worker, "limit": limit_worker}


def compare(ours: Path, naive: Path, size: int, stride: int) -> str:
    """Max |ours - naive| over the cells both grids share whose patch is wholly inside the raster (patch == stride)."""
    import numpy as np
    import rasterio

    with rasterio.open(ours) as a, rasterio.open(naive) as b:
        shift_r = (b.transform.f - a.transform.f) / a.transform.e  # naive cell i is our cell i + shift
        shift_c = (b.transform.c - a.transform.c) / a.transform.a
        if not (shift_r.is_integer() and shift_c.is_integer()):
            off = f"{abs(shift_r % 1) * stride:g} px down, {abs(shift_c % 1) * stride:g} px across"
            return f"n/a: TorchGeo's grid is {off} from ours, no cell in common"
        x, y = a.read(), b.read()
    dr, dc, full = int(shift_r), int(shift_c), size // stride
    r0, c0 = max(0, dr), max(0, dc)
    r1, c1 = min(full, dr + y.shape[1]), min(full, dc + y.shape[2])
    x, y = x[:, r0:r1, c0:c1], y[:, r0 - dr:r1 - dr, c0 - dc:c1 - dc]
    both = np.isfinite(x).all(axis=0) & np.isfinite(y).all(axis=0)
    if not both.any():
        return "n/a: no valid cell in common"
    diff = float(np.abs(x[:, both] - y[:, both]).max())
    rel = diff / max(float(np.abs(x[:, both]).max()), 1e-30)
    verdict = "equal" if rel <= 1e-4 else "DIFFERENT"
    return f"{verdict}: max abs diff {diff:.2e} ({rel:.1e} of max) over {int(both.sum())} cells (offset {dr}, {dc})"


def measure(kind: str, encoder: str, raster: Path, output: Path, gdal_cache: int | None) -> dict[str, Any]:
    """Run one worker in its own process; its JSON figures plus wall time and peak RSS, or an ``error``."""
    output.unlink(missing_ok=True)
    env = engine_env() | ({"GDAL_CACHEMAX": str(gdal_cache)} if gdal_cache else {})
    done = run_measured([sys.executable, __file__, "--worker", kind, encoder, str(raster), str(output)], env=env)
    lines = done["output"].strip().splitlines()
    if done["rc"] or not lines or not lines[-1].startswith("{"):
        return {"error": f"rc {done['rc']}: " + " / ".join(lines[-2:])[-250:]}
    return json.loads(lines[-1]) | {"wall_s": done["wall_s"], "peak_gb": done["peak_rss"] / 1e9}


def main() -> None:
    """Build the rasters, run both contenders per encoder and size, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000], help="raster sides in px")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/landprobe-bench"))
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=list(ENCODERS))
    parser.add_argument("--gdal-cache", type=int, help="GDAL_CACHEMAX in MB for every worker (default: GDAL's own)")
    parser.add_argument("--worker", nargs=4, metavar=("KIND", "ENCODER", "RASTER", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, encoder, raster, output = args.worker
        print(json.dumps(WORKERS[kind](encoder, Path(raster), Path(output))))
        return
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    print(f"WARNING: concurrent CPU load distorts these figures (1-min load average now {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores).", flush=True)
    rasters = {}
    for size in args.sizes:
        start = time.perf_counter()
        rasters[size] = build_raster(work, size)
        print(f"raster {rasters[size]} ({size} x {size} px, 7 bands int16) ready in "
              f"{time.perf_counter() - start:.1f} s", flush=True)
    rows, checks, limits = [], [], []
    for encoder in args.encoders:
        stride = ENCODERS[encoder][1]
        print(f"running {encoder} compute limit ...", flush=True)
        limit = measure("limit", encoder, rasters[min(args.sizes)], work / "unused.tif", args.gdal_cache)
        if "error" in limit:
            limits.append([LABELS[encoder], "-", "-", "-", limit["error"]])
            limit = {"flops": float("nan"), "gflops": float("nan")}
        else:
            limits.append([LABELS[encoder], f"{limit['flops'] / 1e6:.2f}", f"{limit['gflops']:.1f}",
                           f"{limit['patches_s']:.0f}", f"batch {LIMIT_BATCH}, random tensors"])
        for size in args.sizes:
            got = {}
            for kind in ("ours", "naive"):
                print(f"running {encoder} {kind} at {size} px ...", flush=True)
                got[kind] = measure(kind, encoder, rasters[size], work / f"emb_{size}_{encoder}_{kind}.tif",
                                    args.gdal_cache)
                r = got[kind]
                head = [LABELS[encoder], f"{size}", kind]
                if "error" in r:
                    rows.append([*head, "-", "-", "-", "-", "-", "-", "-", "-", f"failed {r['error']}"])
                    continue
                gflops = r["patches"] * limit["flops"] / r["call_s"] / 1e9
                rows.append([*head, f"{r['patches']}", f"{r['wall_s']:.1f}", f"{r['call_s']:.1f}",
                             f"{r['patches'] / r['wall_s']:.0f}", f"{size * size / 1e6 / r['wall_s']:.2f}",
                             f"{r['peak_gb']:.2f}", f"{gflops:.1f}", f"{100 * gflops / limit['gflops']:.0f} %", ""])
                print(f"  {rows[-1]}", flush=True)
            if "error" in got["ours"] or "error" in got["naive"]:
                checks.append([LABELS[encoder], f"{size}", "-", "not compared: a contender failed"])
                continue
            check = compare(work / f"emb_{size}_{encoder}_ours.tif", work / f"emb_{size}_{encoder}_naive.tif", size,
                            stride)
            print(f"  check: {check}", flush=True)
            checks.append([LABELS[encoder], f"{size}", f"{got['naive']['wall_s'] / got['ours']['wall_s']:.1f} x",
                           check])
    for encoder in args.encoders:
        peaks = [f"{r[1]} px {r[8]} GB" for r in rows if r[0] == LABELS[encoder] and r[2] == "ours"]
        print(f"ours, {encoder}: peak RSS by raster size: {', '.join(peaks)}")
    cache = f"GDAL_CACHEMAX {args.gdal_cache} MB" if args.gdal_cache else "GDAL_CACHEMAX not set"
    print(f"\n## Embedding extraction on the CPU ({os.cpu_count()} cores), rasters of 7 bands int16, {cache}\n")
    print(markdown_table(["encoder", "size px", "contender", "patches", "wall s", "call s", "patches/s", "Mpx/s",
                          "peak RSS GB", "GFLOP/s", "of limit", "note"], rows))
    print("\n## Speed-up ours / naive (wall time) and embeddings check\n")
    print(markdown_table(["encoder", "size px", "speed-up", "naive vs ours"], checks))
    print("\n## Compute limit: plain forward pass of the same model\n")
    print(markdown_table(["encoder", "MFLOP/patch", "GFLOP/s", "patches/s", "note"], limits))
    print(f"\n1-min load average at the end: {os.getloadavg()[0]:.2f} (this benchmark's own last "
          "run included)")


if __name__ == "__main__":
    main()
