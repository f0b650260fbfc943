"""The ``map_region`` operation: a model applied to a whole region, block by block, as Dask tasks.

The region (a raster, a VRT mosaic, a folder or list of tiles: :mod:`engine.io.region`) is cut into square blocks of
``block_size`` pixels, a multiple of *Classify raster*'s 512-pixel windows and aligned with them, so that every
pixel is predicted in the same batch as *Classify raster* predicts it and the map is the same, bit for bit. Each
block is one Dask task (:func:`map_block`): it reads its windows, predicts them and writes its part of each map as
a Cloud-Optimized GeoTIFF under a temporary name, renamed when complete. The tasks run on a
``distributed.LocalCluster`` started inside the engine (one single-threaded worker process per core), or on an
existing Dask scheduler given by address (``scheduler``, or the ``LANDPROBE_DASK_SCHEDULER`` environment variable):
Dask schedules them, moves them off a worker that dies and runs them again. Nothing here schedules work itself.

The output folder holds the blocks (``blocks/<map>/r<row>_c<col>.tif``), a VRT per map tying them together
(``map.vrt`` with its legend and ``.qml``; ``probability.vrt`` and ``confidence.vrt`` when asked for), optionally one
COG assembled from the VRT by streaming, and the manifest ``landprobe-region.json``: the job (model checksum, region,
grid, block size, maps) and every finished block with its class counts. Running the same job again skips the
finished blocks and says how many; a folder holding another job's map is refused, never overwritten. Cancel stops
the pending tasks at once and the running ones at their next window (a ``distributed.Event``), and leaves whole
blocks and the manifest only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import resource
import shutil
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from rasterio.windows import Window
from threadpoolctl import threadpool_limits

from ..core.cluster import dask_client
from ..core.devices import choose_device, cpu_threads
from ..core.errors import CancelledError, InputError, LandprobeError, user_fault
from ..core.feedback import Feedback
from ..core.seam import TMP_MARKER
from ..deep.package import DeepModel, is_deep, load_deep_model
from ..deep.predict import DeepWindowPredictor
from ..io.legend import vrt_class_band, write_category_names, write_paletted_style, write_ramp_style
from ..io.rasters import (
    GDAL_TYPES,
    atomic_output,
    check_writable,
    gdal_location,
    iter_windows,
    open_raster,
    streaming_env,
    temporary_path,
    write_stack_vrt,
)
from ..io.region import region_raster
from ..probes.model_file import LoadedModel, load_model, read_manifest
from ..probes.registry import MODELS
from .classify_raster import (
    DEEP_CHIP_WINDOW,
    PROBABILITY_NODATA,
    VALUE_NODATA,
    EncoderValuePredictor,
    EncoderWindowPredictor,
    ValueWindowPredictor,
    WindowPredictor,
    check_band_count,
    check_compatible,
    check_uncertainty,
    hex_to_rgba,
    is_value_model,
    output_encoding,
    to_cog,
)

logger = logging.getLogger(__name__)

#: *Classify raster*'s window: blocks are whole multiples of it, so that pixels are predicted in the same batches.
WINDOW = 512
#: The manifest of the job and its finished blocks, in the output folder.
MANIFEST = "landprobe-region.json"
MANIFEST_FORMAT = "landprobe-region"
#: The maps a region job can write, and their VRT names.
MAPS = ("class", "probability", "confidence", "value", "uncertainty")
VRT_NAMES = {"class": "map.vrt", "probability": "probability.vrt", "confidence": "confidence.vrt", "value": "map.vrt",
             "uncertainty": "uncertainty.vrt"}
#: Seconds between two writes of the manifest while blocks finish (it is always written at the end and on cancel).
MANIFEST_INTERVAL = 2.0


@dataclass
class RegionResult:
    """What a region job wrote, and how the work went."""

    output: str
    output_probability: str | None
    output_confidence: str | None
    output_cog: str | None
    width: int
    height: int
    blocks: int
    blocks_skipped: int
    blocks_run: int
    class_pixels: dict[str, int]
    nodata_pixels: int
    megapixels_per_second: float | None
    cluster: str
    #: A value model's per-pixel uncertainty (``uncertainty.vrt``), when asked for.
    output_uncertainty: str | None = None


def map_region(raster: str | list[str], model: str, output_folder: str, output_probability: bool = False,
               output_confidence: bool = False, output_cog: str | None = None, block_size: int = 2048,
               scheduler: str | None = None, workers: int = 0, assets: str | None = None,
               feedback: Feedback | None = None, output_uncertainty: bool = False) -> RegionResult:
    """Apply a model to every valid pixel of a region, block by block on a Dask cluster.

    Args:
        raster: the region: a raster or VRT mosaic (also a GDAL virtual path such as ``/vsicurl/https://...``), a
            folder of tiles, a list of tiles on one pixel grid, or a STAC Item or ItemCollection (``.json`` file or
            URL) whose items are the tiles.
        model: a ``.lpmodel`` file: a probe (on bands, on an embedding raster, or with its encoder: the embedding
            cells of each window are computed on the worker) or a deep model (chips or segmentation; read with the
            context its chips need across block edges). Workers on other machines must reach it, and the region, at
            the same paths.
        output_folder: the folder of the blocks, the VRTs and the manifest; running the same job again resumes.
        output_probability: also write the class probabilities (``probability.vrt``).
        output_confidence: also write the probability of the mapped class (``confidence.vrt``).
        output_cog: also assemble the class map into this one Cloud-Optimized GeoTIFF.
        block_size: pixels a side of each block (one Dask task), a multiple of 512.
        scheduler: address of an existing Dask scheduler (``tcp://host:8786``); default: the
            ``LANDPROBE_DASK_SCHEDULER`` environment variable, else a local cluster inside the engine.
        workers: worker processes of the local cluster (0: one per core, or the CPU threads setting).
        assets: for a STAC region, the asset keys stacked as bands, in order (``B04,B03,B02`` or ``A00..A63``;
            default: the assets with the role ``data``).
        feedback: progress (blocks done, megapixels per second, time left) and cancel.
        output_uncertainty: for a random forest or k-NN model from *Train regressor*, also write each pixel's
            uncertainty in the value's unit (``uncertainty.vrt``: the spread of the trees or neighbours).

    Returns:
        The maps written, the blocks done, skipped and run, the class counts and the throughput.

    Raises:
        InputError: for a region, model, block size or output folder that cannot be used, or an unreachable
            scheduler; the message says which and what to do.
        CancelledError: when cancelled; whole blocks and the manifest stay for the next run.

    """
    feedback = feedback or Feedback()
    if block_size < WINDOW or block_size % WINDOW:
        raise InputError(f"Block size {block_size} is not a multiple of {WINDOW} pixels: choose 512, 1024, 2048 "
                         "or 4096.")
    manifest = read_manifest(model)
    folder = Path(output_folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        path, grid, job, blocks, finished, done = _prepare(raster, model, manifest, folder, output_cog, block_size,
                                                            assets, output_probability, output_confidence,
                                                            output_uncertainty)
    except BaseException:
        if created:  # a job refused before its first block leaves no folder behind
            shutil.rmtree(folder, ignore_errors=True)
        raise
    maps = job["maps"]
    main = maps[0]  # the class map, or the value map of a value model (a similarity)
    state = {"format": MANIFEST_FORMAT, "version": 1, "job": job, "blocks": {b: done[b] for b in finished}}
    _write_manifest(folder, state)
    todo = [b for b in blocks if b not in finished]
    run_seconds: float | None = None
    cluster = "nothing to run"
    if todo:
        for name in maps:
            (folder / "blocks" / name).mkdir(parents=True, exist_ok=True)
        spec = {"model": str(Path(model).resolve()), "model_sha256": job["model_sha256"], "region": str(path),
                "folder": str(folder.resolve()), "maps": maps}
        try:
            try:
                with dask_client(scheduler, workers) as (client, cluster):
                    logger.info("Mapping %d blocks of %d x %d px on %s.", len(todo), block_size, block_size,
                                cluster)
                    start = time.perf_counter()
                    _run(client, spec, todo, blocks, state, folder, feedback.stage(0.0, 0.9))
                    run_seconds = time.perf_counter() - start
            finally:  # after the cluster is gone: a worker killed while writing leaves its temporary file
                _remove_partials(folder)
        except BaseException:
            if created and not state["blocks"]:  # nothing finished: leave nothing behind
                shutil.rmtree(folder, ignore_errors=True)
            elif state["blocks"]:
                logger.warning("%d of %d blocks are finished and kept in %s: run the same job again to go on from "
                               "there.", len(state["blocks"]), len(blocks), folder)
            raise
    outputs = _write_vrts(folder, maps, blocks, grid, block_size, manifest)
    if output_cog:
        feedback.progress(0.92, "Assembling one Cloud-Optimized GeoTIFF")
        feedback.check_cancel()
        with atomic_output(output_cog) as tmp:
            to_cog(Path(outputs[main]), tmp, "NEAREST" if main == "class" else "AVERAGE")
        if main == "class":
            _, nodata = output_encoding([int(c["code"]) for c in manifest["classes"]])
            write_category_names(Path(output_cog + ".aux.xml"), manifest["classes"], nodata)
            write_paletted_style(Path(output_cog).with_suffix(".qml"), manifest["classes"])
        else:
            write_ramp_style(Path(output_cog).with_suffix(".qml"), *manifest["value"].get("range", (0, 1)))
    feedback.progress(1.0, "Done")
    names = [c["name"] for c in manifest["classes"]]
    counts = np.sum([state["blocks"][b]["counts"] for b in blocks], axis=0) if names else []
    run_pixels = sum(_block_pixels(b, grid, block_size) for b in todo)
    result = RegionResult(
        output=outputs[main], output_probability=outputs.get("probability"),
        output_confidence=outputs.get("confidence"), output_cog=output_cog, width=grid["width"],
        height=grid["height"], blocks=len(blocks), blocks_skipped=len(finished), blocks_run=len(todo),
        class_pixels={n: int(c) for n, c in zip(names, counts, strict=True)},
        nodata_pixels=int(sum(state["blocks"][b]["nodata"] for b in blocks)),
        megapixels_per_second=round(run_pixels / 1e6 / run_seconds, 3) if run_seconds else None, cluster=cluster,
        output_uncertainty=outputs.get("uncertainty"))
    logger.info("Wrote %s: %d blocks (%d run, %d skipped); %s.", result.output, len(blocks), len(todo),
                len(finished), ", ".join(f"{k} {v} px" for k, v in result.class_pixels.items()))
    return result


def _prepare(raster: str | list[str], model: str, manifest: dict[str, Any], folder: Path, output_cog: str | None,
             block_size: int, assets: str | None, output_probability: bool, output_confidence: bool,
             output_uncertainty: bool = False) -> tuple[str, dict[str, Any], dict[str, Any], list[str], set[str],
                                                        dict[str, Any]]:
    """Check the outputs and the region against the model; the job, its blocks and those already finished."""
    deep = is_deep(manifest)
    check_writable(str(folder / VRT_NAMES["class"]))
    if output_cog:
        check_writable(output_cog)
    source = raster[0] if not isinstance(raster, str) and len(raster) == 1 else raster
    selection = manifest.get("input", {}).get("band_selection")  # the bands the model was trained on, as Classify
    # The VRTs of this region go to a folder named after what was asked: another job's are never overwritten.
    asked = json.dumps({"region": source, "assets": assets, "bands": selection}, sort_keys=True)
    inputs = folder / "inputs" / hashlib.sha256(asked.encode()).hexdigest()[:12]
    made = not inputs.exists()
    inputs.mkdir(parents=True, exist_ok=True)
    try:
        path = region_raster(source, inputs, assets)
        if selection:
            path = str(write_stack_vrt([path], inputs / "bands.vrt", selection))
        with open_raster(path) as src:
            if deep:
                check_band_count(manifest, src, path)
            else:
                check_compatible(manifest, src, path)
            grid = {"width": src.width, "height": src.height, "transform": list(src.transform)[:6],
                    "crs": src.crs.to_wkt() if src.crs else None}
        path = gdal_location(str(path))  # workers elsewhere need it absolute
        # what the region is: a VRT written here by its content (tiles, offsets), a raster of the user's by its path
        written = Path(path).is_relative_to(inputs.resolve())
        region_id = {"region": path, "region_sha256": _sha256(path) if written else None}
        if is_value_model(manifest):
            if output_probability or output_confidence:
                raise InputError(f"Model {model} maps a value, not classes: it has no class probabilities or "
                                 "confidence. Leave those outputs off.")
            if output_uncertainty:
                check_uncertainty(manifest, model)
            maps = ["value"] + (["uncertainty"] if output_uncertainty else [])
        else:
            if output_uncertainty:
                check_uncertainty(manifest, model)  # a class model: refused in one sentence
            maps = ["class"] + (["probability"] if output_probability else []) + (
                ["confidence"] if output_confidence else [])
        job = {"model_sha256": _sha256(model), **region_id, "grid": grid, "block_size": block_size, "maps": maps}
        done = _resume(folder, job)
        blocks = _blocks(grid["width"], grid["height"], block_size)
        finished = {b for b in blocks if b in done and all(_block_path(folder, m, b).exists() for m in maps)}
        if finished:
            logger.info("Resuming: %d of %d blocks are already done (manifest %s) and are skipped.", len(finished),
                        len(blocks), folder / MANIFEST)
    except BaseException:
        if made:
            shutil.rmtree(inputs, ignore_errors=True)
        raise
    if made and not any(inputs.iterdir()):  # the user's raster itself: nothing was written for it
        inputs.rmdir()
    return path, grid, job, blocks, finished, done


def _sha256(path: str) -> str:
    """The file's SHA-256 (a model that changed is another job)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _blocks(width: int, height: int, block_size: int) -> list[str]:
    """Block names, row by row: ``r<row offset>_c<col offset>`` in pixels."""
    return [f"r{w.row_off}_c{w.col_off}" for w in iter_windows(width, height, block_size)]


def _window(block: str, grid: dict[str, Any], block_size: int) -> Window:
    """The block's window on the region's grid."""
    row, col = (int(part[1:]) for part in block.split("_"))
    return Window(col, row, min(block_size, grid["width"] - col), min(block_size, grid["height"] - row))


def _block_pixels(block: str, grid: dict[str, Any], block_size: int) -> int:
    window = _window(block, grid, block_size)
    return int(window.width * window.height)


def _block_path(folder: Path, name: str, block: str) -> Path:
    return folder / "blocks" / name / f"{block}.tif"


def _resume(folder: Path, job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The finished blocks of the same job in ``folder`` (none for a new folder).

    Raises:
        InputError: when the folder holds the manifest of another job, or one that cannot be read.

    """
    path = folder / MANIFEST
    if not path.exists():
        leftovers = [p for p in (folder / "blocks").rglob("*.tif")] if (folder / "blocks").is_dir() else []
        if leftovers:
            raise InputError(f"Output folder {folder} holds map blocks but no manifest ({MANIFEST}): choose an empty "
                             "folder, or delete its blocks folder to start again.")
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("format") != MANIFEST_FORMAT or not isinstance(state.get("blocks"), dict):
            raise ValueError("not a Landprobe region manifest")
    except (OSError, ValueError) as exc:
        raise InputError(f"Cannot read the manifest {path} ({exc}): choose an empty output folder, or delete the "
                         "manifest and the blocks folder to start again.") from None
    if state.get("job") != job:
        what = [k for k in job if state.get("job", {}).get(k) != job[k]]
        raise InputError(f"Output folder {folder} holds the map of another job (its {', '.join(what)} differ): "
                         "choose an empty folder for this one, or delete that folder to start again.")
    return state["blocks"]


def _write_manifest(folder: Path, state: dict[str, Any]) -> None:
    """Write the manifest atomically (a reader never sees half of it)."""
    target = folder / MANIFEST
    tmp = temporary_path(target)
    tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
    os.replace(tmp, target)


def _run(client: Any, spec: dict[str, Any], todo: list[str], blocks: list[str], state: dict[str, Any], folder: Path,
         feedback: Feedback) -> None:
    """Submit a task per block, record each as it finishes, report progress; on cancel stop them all.

    Raises:
        InputError: when a block was lost with its worker too often (out of memory): a smaller block size helps.

    """
    # Lazy: distributed takes a second to import, and only region jobs need it.
    from distributed import Event, KilledWorker, as_completed, wait

    grid, block_size = state["job"]["grid"], state["job"]["block_size"]
    token = hashlib.sha256(f"{spec['folder']}{time.time_ns()}".encode()).hexdigest()[:12]
    cancel = Event(f"landprobe-cancel-{token}", client=client)
    spec = {**spec, "cancel_event": cancel.name}
    futures = {client.submit(map_block, spec, block, tuple(_window(block, grid, block_size).flatten()),
                             key=f"landprobe-block-{token}-{block}", pure=False): block for block in todo}
    ready = as_completed(list(futures))
    total_pixels = sum(_block_pixels(b, grid, block_size) for b in todo)
    done_pixels, start, last_write, last_log = 0, time.perf_counter(), 0.0, 0.0
    try:
        while futures:
            finished = ready.next_batch(block=False)
            if not finished:
                time.sleep(0.2)
            for future in finished:
                block = futures.pop(future)
                try:
                    state["blocks"][block] = future.result()  # a task's error (a bad tile) stops the job with it
                except KilledWorker:
                    raise InputError(f"Block {block} was lost with its worker several times (out of memory, or the "
                                     "worker crashed): choose a smaller block size, or give the workers more "
                                     "memory.") from None
                future.release()  # the result is in the manifest: the cluster need not keep it
                done_pixels += _block_pixels(block, grid, block_size)
            now = time.perf_counter()
            if finished and now - last_write > MANIFEST_INTERVAL:
                _write_manifest(folder, state)
                last_write = now
            done = len(state["blocks"])
            rate = done_pixels / 1e6 / max(now - start, 1e-9)
            left = (total_pixels - done_pixels) / 1e6 / rate if done_pixels else None
            message = (f"Blocks {done} of {len(blocks)} done; {rate:.1f} Mpx/s"
                       + (f", about {_duration(left)} left" if left is not None else ""))
            feedback.progress(done_pixels / max(total_pixels, 1), message)
            if finished and now - last_log > 10:
                workers = client.scheduler_info().get("workers", {})
                memory = [w.get("metrics", {}).get("memory", 0) for w in workers.values()]
                logger.info("%s; %d workers, largest memory %.0f MB.", message, len(workers),
                            max(memory, default=0) / 2**20)
                last_log = now
            feedback.check_cancel()
    except BaseException:
        cancel.set()  # running blocks stop at their next window, queued ones as they start
        running = {key for keys in client.processing().values() for key in keys}
        client.cancel([f for f in futures if f.key not in running])
        with contextlib.suppress(Exception):  # the running ones end (whole or removed) before the cluster goes
            wait([f for f in futures if f.key in running], timeout=60)
        _write_manifest(folder, state)
        raise
    _write_manifest(folder, state)


def _remove_partials(folder: Path) -> None:
    """Remove temporary block files that a stopped or killed task left behind."""
    for path in (folder / "blocks").rglob(f"*{TMP_MARKER}*"):
        with contextlib.suppress(OSError):
            path.unlink()


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@lru_cache(maxsize=4)
def _model(path: str, sha256: str) -> LoadedModel | DeepModel:
    """The model, loaded once per worker process (the checksum keys the cache: a changed file is loaded again).

    A deep model goes on the device *Classify raster* would choose (``auto``: the GPU when the worker has one).
    """
    if is_deep(read_manifest(path)):
        return load_deep_model(path, choose_device("auto"))
    model = load_model(path)
    model.probe.set_threads(1)  # one block per worker thread: parallelism comes from the workers
    return model


def _worker_threads() -> int:
    """The threads of the Dask worker running this task (one on the local cluster); all cores outside a worker."""
    # Lazy: only a worker runs this.
    from distributed import get_worker

    try:
        return max(1, int(get_worker().state.nthreads))
    except (ValueError, AttributeError):  # not in a worker (a test calling map_block directly)
        return cpu_threads()


def map_block(spec: dict[str, Any], block: str, window: tuple[int, int, int, int]) -> dict[str, Any]:
    """One Dask task: predict one block and write its maps as COGs (atomically); return its class counts.

    Runs on a worker. Checks the job's cancel event before each 512-pixel window.

    Raises:
        CancelledError: when the job was cancelled.
        LandprobeError: a fault a user can act on (a tile that fails while it is read, a full disk), as a plain
            copy without the library exceptions behind it: Dask sends that to the client as it is, where it
            reaches the user as one sentence.

    """
    try:
        return _map_block(spec, block, window)
    except Exception as exc:
        fault = exc if isinstance(exc, LandprobeError) else user_fault(exc)
        if fault is None:
            raise
        kind, message = type(fault), str(fault)
    # Raised here, outside the handler, so that it carries no context: Dask pickles the causes and the context with
    # the exception, and a GDAL error among them does not unpickle, which would turn it into a bare Exception.
    raise kind(message)


def _map_block(spec: dict[str, Any], block: str, window: tuple[int, int, int, int]) -> dict[str, Any]:
    """:func:`map_block` without the translation of its errors."""
    # Lazy: only a worker runs this, and the event is the only part of distributed it needs.
    from distributed import Event

    start = time.perf_counter()
    col_off, row_off, width, height = window
    loaded = _model(spec["model"], spec["model_sha256"])
    classes = loaded.manifest["classes"]
    codes = np.array([c["code"] for c in classes])
    value = is_value_model(loaded.manifest)
    dtype, nodata = ("float32", VALUE_NODATA) if value else output_encoding(codes.tolist())
    maps = spec["maps"]
    cancel = Event(spec["cancel_event"])
    folder = Path(spec["folder"])
    counts = np.zeros(len(classes), dtype="int64")
    nodata_pixels = 0
    want_proba = "probability" in maps or "confidence" in maps
    window_size = WINDOW
    predictor: Any
    if isinstance(loaded, DeepModel):  # the windows Classify raster uses, so that the batches are the same
        # Lazy: only a deep model needs torch, and it is loaded with the model already.
        import torch

        torch.set_num_threads(_worker_threads())  # the worker's share of the cores, not every core each
        device = str(next(loaded.network.parameters()).device)
        predictor = DeepWindowPredictor(spec["region"], loaded, want_proba, device)
        window_size = WINDOW if loaded.spec.task == "segmentation" else DEEP_CHIP_WINDOW
    elif value and loaded.manifest["features"]["recipe"] == "encoder":  # values of the cells computed here
        # Lazy: only an encoder needs torch.
        import torch

        torch.set_num_threads(_worker_threads())
        predictor = EncoderValuePredictor(spec["region"], loaded, choose_device("auto"), "uncertainty" in maps)
    elif value:
        predictor = ValueWindowPredictor(spec["region"], loaded, want_spread="uncertainty" in maps)
    elif loaded.manifest["features"]["recipe"] == "encoder":  # embeddings computed for each window's cells
        # Lazy: only an encoder needs torch.
        import torch

        torch.set_num_threads(_worker_threads())
        predictor = EncoderWindowPredictor(spec["region"], loaded, want_proba, choose_device("auto"))
    else:
        predictor = WindowPredictor(spec["region"], loaded, want_proba)
    with open_raster(spec["region"]) as src:
        transform = src.window_transform(Window(col_off, row_off, width, height))
        crs = src.crs
    base = {"driver": "GTiff", "width": width, "height": height, "crs": crs, "transform": transform, "tiled": True,
            "blockxsize": 256, "blockysize": 256}  # not compressed: the COG copy compresses, once
    profiles = {"class": base | {"count": 1, "dtype": dtype, "nodata": nodata},
                "probability": base | {"count": len(classes), "dtype": "float32", "nodata": PROBABILITY_NODATA},
                "confidence": base | {"count": 1, "dtype": "float32", "nodata": PROBABILITY_NODATA},
                "value": base | {"count": 1, "dtype": "float32", "nodata": VALUE_NODATA},
                "uncertainty": base | {"count": 1, "dtype": "float32", "nodata": VALUE_NODATA}}
    with contextlib.ExitStack() as stack:
        stack.callback(predictor.close)
        if isinstance(predictor, WindowPredictor):  # probes: one BLAS thread; torch keeps the worker's threads
            stack.enter_context(threadpool_limits(limits=1))  # a deep model keeps torch's threads (set above)
        stack.enter_context(streaming_env())  # GDAL's block cache capped: many workers share a machine
        # not recorded in a workspace: the job sweeps its blocks folder itself (one line per block would add up)
        finals = {m: stack.enter_context(atomic_output(_block_path(folder, m, block), record=False)) for m in maps}
        works = {m: temporary_path(p, record=False) for m, p in finals.items()}
        stack.callback(lambda: [w.unlink(missing_ok=True) for w in works.values()])
        dsts = {m: stack.enter_context(rasterio.open(w, "w", **profiles[m])) for m, w in works.items()}
        if "class" in dsts and dtype != "int32":
            dsts["class"].write_colormap(1, {c["code"]: hex_to_rgba(c["color"]) for c in classes})
        for local in iter_windows(width, height, window_size):
            if cancel.is_set():
                raise CancelledError("Cancelled.")
            index, proba = predictor(Window(col_off + local.col_off, row_off + local.row_off, local.width,
                                            local.height))
            if value:  # the values themselves, NaN for nodata
                nodata_pixels += int(np.isnan(index).sum())
                dsts["value"].write(index, 1, window=local)
                if "uncertainty" in dsts:  # the value predictor's second array is the spread
                    dsts["uncertainty"].write(proba, 1, window=local)
                continue
            valid = index >= 0
            out = np.full(index.shape, nodata, dtype=dtype)
            out[valid] = codes[index[valid]]
            counts += np.bincount(index[valid], minlength=len(classes))
            nodata_pixels += int((~valid).sum())
            dsts["class"].write(out, 1, window=local)
            if "probability" in dsts:
                dsts["probability"].write(proba, window=local)
            if "confidence" in dsts:
                confidence = np.take_along_axis(proba, np.maximum(index, 0)[None], axis=0)[0]
                dsts["confidence"].write(np.where(valid, confidence, PROBABILITY_NODATA), 1, window=local)
        for dst in dsts.values():
            dst.close()
        for name, work in works.items():
            to_cog(work, finals[name], "NEAREST" if name == "class" else "AVERAGE", _worker_threads())
    # what the block cost on its worker: the benchmark's overhead and memory figures come from these
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"counts": counts.tolist(), "nodata": nodata_pixels, "seconds": round(time.perf_counter() - start, 3),
            "worker_peak_mb": round(peak_mb, 1), "worker": os.getpid()}


def _write_vrts(folder: Path, maps: list[str], blocks: list[str], grid: dict[str, Any], block_size: int,
                manifest: dict[str, Any]) -> dict[str, str]:
    """A VRT per map over its blocks (paths relative to the VRT), with the class map's legend and the styles."""
    classes = manifest["classes"]
    dtype, nodata = output_encoding([int(c["code"]) for c in classes]) if classes else ("float32", VALUE_NODATA)
    a, b, c, d, e, f = grid["transform"]
    written = {}
    for name in maps:
        count = len(classes) if name == "probability" else 1
        band_type = GDAL_TYPES[dtype] if name == "class" else "Float32"
        band_nodata = (nodata if name == "class" else VALUE_NODATA if name in ("value", "uncertainty")
                       else PROBABILITY_NODATA)
        bands = []
        for band in range(1, count + 1):
            sources = []
            for block in blocks:
                window = _window(block, grid, block_size)
                col, row, width, height = (int(v) for v in window.flatten())
                sources.append(
                    f'<ComplexSource><SourceFilename relativeToVRT="1">blocks/{name}/{block}.tif</SourceFilename>'
                    f'<SourceBand>{band}</SourceBand><SrcRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>'
                    f'<DstRect xOff="{col}" yOff="{row}" xSize="{width}" ySize="{height}"/>'
                    f"<NODATA>{band_nodata!r}</NODATA></ComplexSource>")
            if name == "class":
                description = f"class ({manifest.get('field', 'class')})"
                legend = vrt_class_band(classes, nodata)
            elif name == "value":
                description, legend = manifest.get("value", {}).get("name", "value"), ""
            elif name == "uncertainty":
                spread = getattr(MODELS.get(str(manifest.get("method"))), "spread", None) or "spread"
                value = manifest.get("value", {})
                unit = f" ({value['unit']})" if value.get("unit") else ""
                description, legend = f"uncertainty of {value.get('name', 'value')}{unit}: {spread}", ""
            else:
                description = (f"probability of {classes[band - 1]['name']}" if name == "probability"
                               else "confidence (probability of the mapped class)")
                legend = ""
            bands.append(f'<VRTRasterBand dataType="{band_type}" band="{band}"><NoDataValue>{band_nodata!r}'
                         f"</NoDataValue><Description>{escape(description)}</Description>{legend}"
                         f"{''.join(sources)}</VRTRasterBand>")
        srs = f"<SRS>{escape(grid['crs'])}</SRS>" if grid["crs"] else ""
        xml = (f'<VRTDataset rasterXSize="{grid["width"]}" rasterYSize="{grid["height"]}">{srs}'
               f"<GeoTransform>{c!r}, {a!r}, {b!r}, {f!r}, {d!r}, {e!r}</GeoTransform>{''.join(bands)}</VRTDataset>")
        path = folder / VRT_NAMES[name]
        with atomic_output(path) as tmp:
            tmp.write_text(xml, encoding="utf-8")
        if name == "class":
            write_paletted_style(path.with_suffix(".qml"), classes)
        elif name == "value":
            write_ramp_style(path.with_suffix(".qml"), *manifest.get("value", {}).get("range", (0, 1)))
        elif name == "uncertainty":  # no pass over the blocks here: 0 to a quarter of the values' range
            low, high = manifest.get("value", {}).get("range", (0, 1))
            write_ramp_style(path.with_suffix(".qml"), 0.0, (float(high) - float(low)) / 4 or 1.0)
        else:
            write_ramp_style(path.with_suffix(".qml"))
        written[name] = str(path)
    return written
