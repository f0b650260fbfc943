"""Region maps on Dask: the same map as Classify raster, bit for bit, on a LocalCluster and on a real scheduler with
two worker processes; resume after a cancel; a worker killed mid-job; tiles mosaicked, from a STAC ItemCollection
and over HTTP (/vsicurl/ on a server on 127.0.0.1); bad tiles and assets named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterdata import write_like
from rasterio.windows import Window

from engine.core.errors import CancelledError, InputError
from engine.core.feedback import Feedback
from engine.core.seam import TMP_MARKER
from engine.jobs.classify_raster import classify_raster
from engine.jobs.map_region import MANIFEST, map_region

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory, sample_raster: Path) -> Path:
    """The sample tiled 6 x 5 (about 1500 x 1250 px): 3 x 3 blocks of 512 px, the last ones partial."""
    with rasterio.open(sample_raster) as src:
        data = src.read()
    return write_like(sample_raster, tmp_path_factory.mktemp("region") / "region.tif", np.tile(data, (1, 5, 6)))


def block_names(path: Path) -> list[str]:
    with rasterio.open(path) as src:
        return [f"r{row}_c{col}" for row in range(0, src.height, 512) for col in range(0, src.width, 512)]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, region: Path, sample_model: Path) -> dict[str, Path]:
    """Classify raster's maps of the region, in one process: the reference."""
    folder = tmp_path_factory.mktemp("single")
    out = {"class": folder / "map.tif", "probability": folder / "proba.tif", "confidence": folder / "conf.tif"}
    classify_raster(str(region), str(sample_model), str(out["class"]), str(out["probability"]),
                    str(out["confidence"]))
    return out


def assert_same_map(path: Path | str, reference: Path) -> None:
    """Same values, grid, CRS and nodata, every band."""
    with rasterio.open(path) as got, rasterio.open(reference) as want:
        assert (got.width, got.height, got.count) == (want.width, want.height, want.count)
        assert got.transform == want.transform and got.crs == want.crs
        assert got.nodatavals == want.nodatavals and got.dtypes == want.dtypes
        assert np.array_equal(got.read(), want.read())


def no_partials(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if TMP_MARKER in p.name]


def test_a_local_cluster_gives_classify_rasters_map_bit_for_bit(tmp_path: Path, region: Path, sample_model: Path,
                                                                 single: dict[str, Path]) -> None:
    out = tmp_path / "region"
    result = map_region(str(region), str(sample_model), str(out), output_probability=True, output_confidence=True,
                        output_cog=str(tmp_path / "one.tif"), block_size=512, workers=2)
    blocks = block_names(region)
    assert len(blocks) == 9 and (result.blocks, result.blocks_run, result.blocks_skipped) == (9, 9, 0)
    assert "local Dask cluster (2 worker" in result.cluster
    assert_same_map(result.output, single["class"])
    assert_same_map(str(result.output_probability), single["probability"])
    assert_same_map(str(result.output_confidence), single["confidence"])
    assert_same_map(tmp_path / "one.tif", single["class"])
    with rasterio.open(single["class"]) as want:
        counts = np.bincount(want.read(1).ravel(), minlength=256)
    with rasterio.open(result.output) as got:  # the VRT carries the legend: colours and category names
        assert got.colorinterp[0].name == "palette" and got.colormap(1)
        assert got.descriptions[0].startswith("class")
    manifest = json.loads((out / MANIFEST).read_text())
    assert sorted(manifest["blocks"]) == sorted(blocks)
    assert sum(result.class_pixels.values()) + result.nodata_pixels == result.width * result.height
    assert sum(counts[1:]) == sum(result.class_pixels.values())  # codes start at 1, nodata is 0
    assert (out / "map.qml").exists() and (out / "probability.qml").exists()
    no_partials(out)


class CancelAfterFirstBlock(Feedback):
    """Cancels as soon as one block is reported done."""

    def progress(self, fraction: float, message: str | None = None) -> None:
        super().progress(fraction, message)
        if message and message.startswith("Blocks") and not message.startswith("Blocks 0 "):
            self.cancel()


def test_a_cancelled_job_keeps_whole_blocks_and_resumes_to_the_same_map(tmp_path: Path, region: Path,
                                                                       sample_model: Path,
                                                                       single: dict[str, Path]) -> None:
    out = tmp_path / "region"
    with pytest.raises(CancelledError):
        map_region(str(region), str(sample_model), str(out), block_size=512, workers=2,
                   feedback=CancelAfterFirstBlock())
    done = json.loads((out / MANIFEST).read_text())["blocks"]
    assert 1 <= len(done) < 9
    assert not (out / "map.vrt").exists()  # no map until every block is there
    no_partials(out)
    again = map_region(str(region), str(sample_model), str(out), block_size=512, workers=2)
    assert again.blocks_skipped == len(done) and again.blocks_run == 9 - len(done)
    assert_same_map(again.output, single["class"])
    # a third run has nothing left to do
    third = map_region(str(region), str(sample_model), str(out), block_size=512, workers=1)
    assert (third.blocks_skipped, third.blocks_run) == (9, 0)


def test_a_folder_of_another_job_is_refused_and_bad_settings_are_named(tmp_path: Path, region: Path,
                                                                      sample_model: Path) -> None:
    out = tmp_path / "region"
    (out / "blocks" / "class").mkdir(parents=True)
    (out / "blocks" / "class" / "r0_c0.tif").write_bytes(b"")
    with pytest.raises(InputError, match="holds map blocks but no manifest"):
        map_region(str(region), str(sample_model), str(out), block_size=512, workers=1)
    with pytest.raises(InputError, match="Block size 700 is not a multiple of 512"):
        map_region(str(region), str(sample_model), str(tmp_path / "other"), block_size=700)
    (out / MANIFEST).write_text(json.dumps({"format": "landprobe-region", "version": 1, "blocks": {},
                                            "job": {"block_size": 1024}}))
    with pytest.raises(InputError, match="holds the map of another job"):
        map_region(str(region), str(sample_model), str(out), block_size=512, workers=1)


def split_tiles(region: Path, folder: Path, rows: int = 300, cols: int = 600) -> list[Path]:
    """The region cut into 4 tiles of uneven sizes, on its grid (the bottom row split at other columns)."""
    folder.mkdir()
    tiles = []
    with rasterio.open(region) as src:
        bottom = (cols * 3) // 4
        for i, (row, col, height, width) in enumerate([(0, 0, rows, cols), (0, cols, rows, src.width - cols),
                                                       (rows, 0, src.height - rows, bottom),
                                                       (rows, bottom, src.height - rows, src.width - bottom)]):
            window = Window(col, row, width, height)
            profile = src.profile | {"width": width, "height": height, "transform": src.window_transform(window)}
            path = folder / f"tile_{i}.tif"
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(src.read(window=window))
            tiles.append(path)
    return tiles


def test_tiles_in_a_folder_make_the_same_map_and_a_bad_tile_is_named(tmp_path: Path, region: Path,
                                                                    sample_model: Path,
                                                                    single: dict[str, Path]) -> None:
    tiles = split_tiles(region, tmp_path / "tiles")
    result = map_region(str(tmp_path / "tiles"), str(sample_model), str(tmp_path / "out"), block_size=512,
                        workers=2)
    assert_same_map(result.output, single["class"])
    missing = tmp_path / "tiles" / "tile_9.tif"
    with pytest.raises(InputError, match=f"Tile {missing} of the region cannot be read"):
        map_region([*map(str, tiles), str(missing)], str(sample_model), str(tmp_path / "out2"), block_size=512)
    with rasterio.open(tiles[1]) as src:
        profile, data = src.profile, src.read()
    other = tmp_path / "tiles_other" / "utm.tif"
    other.parent.mkdir()
    with rasterio.open(other, "w", **(profile | {"crs": "EPSG:32633"})) as dst:
        dst.write(data)
    with pytest.raises(InputError, match=f"Tile {other} is on another CRS"):
        map_region([str(tiles[0]), str(other)], str(sample_model), str(tmp_path / "out3"), block_size=512)
    # a tile off the grid, or on a CRS it can be warped from, is regridded: tests/engine/test_region_inputs.py


@pytest.fixture()
def dask_processes(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 (one thread each)."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    scheduler_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    deadline = time.monotonic() + 60
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    address = json.loads(scheduler_file.read_text())["address"]
    for _ in range(2):
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads",
                                       "1", "--no-dashboard", "--no-nanny", "--host", "127.0.0.1"],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(2, timeout=60)
    try:
        yield address, procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=30)


class KillAWorkerAfterFirstBlock(Feedback):
    """Kills one worker process as soon as one block is done (its running block is re-run by Dask elsewhere)."""

    def __init__(self, worker: subprocess.Popen[bytes]) -> None:
        super().__init__()
        self.worker, self.killed = worker, False

    def progress(self, fraction: float, message: str | None = None) -> None:
        super().progress(fraction, message)
        if not self.killed and message and message.startswith("Blocks") and not message.startswith("Blocks 0 "):
            self.worker.send_signal(signal.SIGKILL)
            self.killed = True


def test_a_real_scheduler_and_two_workers_give_the_same_map_even_when_a_worker_dies(
        tmp_path: Path, region: Path, sample_model: Path, single: dict[str, Path],
        dask_processes: tuple[str, list[subprocess.Popen[bytes]]]) -> None:
    address, procs = dask_processes
    result = map_region(str(region), str(sample_model), str(tmp_path / "a"), block_size=512, scheduler=address)
    assert address in result.cluster and "2 workers" in result.cluster
    assert_same_map(result.output, single["class"])
    killer = KillAWorkerAfterFirstBlock(procs[1])
    again = map_region(str(region), str(sample_model), str(tmp_path / "b"), block_size=512, scheduler=address,
                       feedback=killer)
    assert killer.killed and procs[1].wait(timeout=30) == -signal.SIGKILL
    assert again.blocks_run == 9
    assert_same_map(again.output, single["class"])
    no_partials(tmp_path / "b")


def test_an_unreachable_scheduler_is_one_sentence(tmp_path: Path, region: Path, sample_model: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.core.cluster as cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(InputError, match=r"Cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        map_region(str(region), str(sample_model), str(tmp_path / "out"), block_size=512,
                   scheduler="tcp://127.0.0.1:9")


def test_a_deep_chip_model_reads_its_context_across_block_edges(tmp_path: Path, sample_raster: Path,
                                                                sample_labels: Path) -> None:
    from engine.jobs.finetune import finetune

    model = tmp_path / "cnn.lpmodel"
    finetune(str(sample_raster), str(sample_labels), "class", str(model), task="patch", chip_size=15, epochs=1,
             batch_size=32, max_samples_per_class=40, patience=0, device="cpu")
    with rasterio.open(sample_raster) as src:
        data = np.tile(src.read(), (1, 1, 3))[:, :40, :600]  # 2 blocks, 512 and 88 px wide: a chip model is slow
    raster = write_like(sample_raster, tmp_path / "small.tif", data)
    reference = tmp_path / "single.tif"
    classify_raster(str(raster), str(model), str(reference), output_probability=str(tmp_path / "p.tif"))
    result = map_region(str(raster), str(model), str(tmp_path / "out"), output_probability=True, block_size=512,
                        workers=2)
    assert result.blocks == 2
    assert_same_map(result.output, reference)
    with rasterio.open(str(result.output_probability)) as got, rasterio.open(tmp_path / "p.tif") as want:
        assert np.allclose(got.read(), want.read(), atol=1e-6)


@pytest.mark.parametrize(("patch", "stride"), [(8, 8), (12, 6)])
def test_a_model_that_runs_an_encoder_maps_the_region_as_classify_raster_does(
        tmp_path: Path, sample_raster: Path, sample_labels: Path, patch: int, stride: int) -> None:
    """Cells of 8 px divide the 512 px windows; cells of 6 px (patches of 12) straddle them (encoded in both, the
    same values)."""
    from engine.jobs.train_classifier import train_classifier

    model = tmp_path / "fly.lpmodel"
    train_classifier(str(sample_raster), str(sample_labels), "class", str(model), features="encoder",
                     encoder="rcf_gaussian", patch_size=patch, stride=stride, method="logistic_regression")
    with rasterio.open(sample_raster) as src:
        data = np.tile(src.read(), (1, 2, 3))[:, :, :700]  # 2 blocks of 512 px, the second one partial
        data[:, :30, :40] = src.nodata  # a corner of nodata: cells without enough valid pixels stay nodata
    raster = write_like(sample_raster, tmp_path / "small.tif", data)
    reference = tmp_path / "single.tif"
    classify_raster(str(raster), str(model), str(reference), output_probability=str(tmp_path / "p.tif"),
                    output_confidence=str(tmp_path / "c.tif"))
    result = map_region(str(raster), str(model), str(tmp_path / "out"), output_probability=True,
                        output_confidence=True, block_size=512, workers=2)
    assert result.blocks == 2 and result.nodata_pixels > 0
    assert_same_map(result.output, reference)
    for got, want in ((result.output_probability, "p.tif"), (result.output_confidence, "c.tif")):
        with rasterio.open(str(got)) as out, rasterio.open(tmp_path / want) as ref:
            assert np.allclose(out.read(), ref.read(), atol=1e-6)


def write_item_collection(tiles: list[Path], folder: Path, href: Callable[[Path], str]) -> Path:
    """A STAC ItemCollection: one item per tile, one asset per band (``B1``...), written as single-band files."""
    features = []
    for i, tile in enumerate(tiles):
        with rasterio.open(tile) as src:
            profile, data, bounds = src.profile, src.read(), src.bounds
        assets = {}
        for band in range(data.shape[0]):
            path = folder / f"item{i}_B{band + 1}.tif"
            with rasterio.open(path, "w", **(profile | {"count": 1})) as dst:
                dst.write(data[band:band + 1])
            assets[f"B{band + 1}"] = {"href": href(path), "type": "image/tiff; application=geotiff",
                                      "roles": ["data"]}
        assets["thumbnail"] = {"href": "thumb.png", "type": "image/png", "roles": ["thumbnail"]}
        polygon = [[bounds.left, bounds.bottom], [bounds.right, bounds.bottom], [bounds.right, bounds.top],
                   [bounds.left, bounds.top], [bounds.left, bounds.bottom]]
        features.append({"type": "Feature", "stac_version": "1.0.0", "id": f"tile-{i}", "links": [],
                         "geometry": {"type": "Polygon", "coordinates": [polygon]}, "bbox": list(bounds),
                         "properties": {"datetime": "1999-11-18T00:00:00Z"}, "assets": assets})
    path = folder / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def test_a_stac_item_collection_on_disk_makes_the_same_map_and_names_a_missing_asset(
        tmp_path: Path, region: Path, sample_model: Path, single: dict[str, Path]) -> None:
    tiles = split_tiles(region, tmp_path / "tiles")
    (tmp_path / "stac").mkdir()
    items = write_item_collection(tiles, tmp_path / "stac", lambda p: p.name)  # links relative to the file
    result = map_region(str(items), str(sample_model), str(tmp_path / "out"), block_size=512, workers=2,
                        assets="B1..B8")
    assert_same_map(result.output, single["class"])
    with pytest.raises(InputError, match=r"STAC item tile-0 of .* has no asset 'B9' \(it has: B1, B2"):
        map_region(str(items), str(sample_model), str(tmp_path / "out2"), block_size=512, assets="B1..B9")
    # without asset keys, the assets with the role 'data' are read, in order
    again = map_region(str(items), str(sample_model), str(tmp_path / "out3"), block_size=512, workers=1)
    assert_same_map(again.output, single["class"])


#: A static file server that answers HTTP range requests, as cloud storage does (GDAL's /vsicurl/ needs them). It runs
#: in its own process: GDAL holds the GIL while it opens a file, so a server thread in this process would never answer.
SERVER = """
import http.server, io, sys
from pathlib import Path

class RangeHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send_head(self):
        path = Path(self.translate_path(self.path))
        spec = self.headers.get("Range")
        if not spec or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first, _, last = spec.removeprefix("bytes=").partition("-")
        start, end = int(first), min(int(last or size - 1), size - 1)
        with path.open("rb") as stream:
            stream.seek(start)
            body = stream.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return io.BytesIO(body)

handler = lambda *a, **k: RangeHandler(*a, directory=sys.argv[1], **k)
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture()
def http_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1 (a port the system chooses) by another process, stopped after."""
    folder = tmp_path / "served"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        yield folder, f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_tiles_over_http_through_vsicurl_and_a_stac_of_urls(tmp_path: Path, region: Path, sample_model: Path,
                                                            single: dict[str, Path],
                                                            http_folder: tuple[Path, str]) -> None:
    folder, url = http_folder
    tiles = split_tiles(region, folder / "tiles")
    urls = [f"/vsicurl/{url}/tiles/{tile.name}" for tile in tiles]
    result = map_region(urls, str(sample_model), str(tmp_path / "out"), block_size=512, workers=2)
    assert_same_map(result.output, single["class"])
    items = write_item_collection(tiles, folder, lambda p: f"{url}/{p.name}")  # absolute http links
    from_stac = map_region(f"{url}/items.json", str(sample_model), str(tmp_path / "out2"), block_size=512,
                           workers=2, assets="B1..B8")
    assert_same_map(from_stac.output, single["class"])
    assert items.exists()
    missing = f"/vsicurl/{url}/tiles/tile_9.tif"
    with pytest.raises(InputError, match=f"Tile {missing} of the region cannot be read"):
        map_region([*urls, missing], str(sample_model), str(tmp_path / "out3"), block_size=512)


def test_training_on_a_folder_of_tiles_samples_the_tiles_the_labels_fall_in(tmp_path: Path, sample_raster: Path,
                                                                             sample_labels: Path) -> None:
    from engine.jobs.train_classifier import train_classifier

    tiles = split_tiles(sample_raster, tmp_path / "tiles", rows=120, cols=130)  # the 30 polygons span all four
    whole = train_classifier(str(sample_raster), str(sample_labels), "class", str(tmp_path / "whole.lpmodel"),
                             method="logistic_regression")
    tiled = train_classifier(str(tmp_path / "tiles"), str(sample_labels), "class", str(tmp_path / "tiled.lpmodel"),
                             method="logistic_regression")
    assert len(tiles) == 4
    assert (tiled.n_samples, tiled.n_polygons, tiled.classes) == (whole.n_samples, whole.n_polygons, whole.classes)
    assert tiled.overall_accuracy == whole.overall_accuracy and tiled.kappa == whole.kappa


def test_training_with_a_scheduler_reads_the_labelled_blocks_as_tasks_on_its_workers(
        tmp_path: Path, sample_raster: Path, sample_labels: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch, dask_processes: tuple[str, list[subprocess.Popen[bytes]]]) -> None:
    from distributed import Client

    from engine.core.seam import SCHEDULER_VARIABLE
    from engine.jobs.train_classifier import train_classifier
    from engine.samples.cells import sample_cells

    address, _ = dask_processes
    split_tiles(sample_raster, tmp_path / "tiles", rows=120, cols=130)
    here = train_classifier(str(tmp_path / "tiles"), str(sample_labels), "class", str(tmp_path / "here.lpmodel"),
                            method="logistic_regression")
    monkeypatch.setenv(SCHEDULER_VARIABLE, address)
    with caplog.at_level("INFO"):
        there = train_classifier(str(tmp_path / "tiles"), str(sample_labels), "class",
                                 str(tmp_path / "there.lpmodel"), method="logistic_regression")
    assert f"as tasks on the Dask scheduler at {address} (2 workers" in caplog.text
    assert (there.n_samples, there.n_polygons, there.classes) == (here.n_samples, here.n_polygons, here.classes)
    assert there.overall_accuracy == here.overall_accuracy and there.kappa == here.kappa
    with Client(address) as client:
        assert "sample_block" in client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
        # cells of an embedding grid: the same samples, in the same order, read here or on the workers
        local = sample_cells(str(sample_raster), str(sample_labels), "class", supersample=4)
        remote = sample_cells(str(sample_raster), str(sample_labels), "class", supersample=4, client=client)
    for name in ("x", "y", "groups", "rows", "cols"):
        assert np.array_equal(getattr(local, name), getattr(remote, name))
    assert local.stats == remote.stats and len(local.y) > 100


def test_a_model_trained_on_some_bands_maps_the_region_with_the_same_bands(tmp_path: Path, sample_raster: Path,
                                                                            sample_labels: Path) -> None:
    from engine.jobs.train_classifier import train_classifier

    model = tmp_path / "bands.lpmodel"
    train_classifier(str(sample_raster), str(sample_labels), "class", str(model), method="logistic_regression",
                     bands=[1, 2, 3, 4, 5, 7])
    classify_raster(str(sample_raster), str(model), str(tmp_path / "single.tif"))
    result = map_region(str(sample_raster), str(model), str(tmp_path / "out"), block_size=512, workers=1)
    assert_same_map(result.output, tmp_path / "single.tif")


def test_an_engine_killed_mid_job_resumes_from_its_manifest(tmp_path: Path, region: Path, sample_model: Path,
                                                           single: dict[str, Path]) -> None:
    out = tmp_path / "region"
    command = [sys.executable, "-m", "engine", "map-region", "--raster", str(region), "--model", str(sample_model),
               "--output-folder", str(out), "--block-size", "512", "--workers", "2"]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        manifest = out / MANIFEST
        if manifest.exists() and json.loads(manifest.read_text())["blocks"]:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # as hard as a crash: no handler runs
    proc.wait(timeout=30)
    done = json.loads((out / MANIFEST).read_text())["blocks"]
    assert 1 <= len(done) <= 9
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"Resuming: {len(done)} of 9 blocks are already done" in again.stderr
    assert_same_map(out / "map.vrt", single["class"])
    no_partials(out)


def test_other_tiles_in_the_same_folder_are_another_job_and_a_lost_block_is_run_again(
        tmp_path: Path, region: Path, sample_model: Path, single: dict[str, Path]) -> None:
    tiles = split_tiles(region, tmp_path / "tiles")
    out = tmp_path / "out"
    first = map_region(str(tmp_path / "tiles"), str(sample_model), str(out), block_size=512, workers=2)
    vrts = {p: p.read_bytes() for p in (out / "inputs").rglob("*.vrt")}
    # the same grid, other tiles (one left out): refused, and the first job's files are untouched
    with pytest.raises(InputError, match="holds the map of another job"):
        map_region([str(t) for t in tiles[:3]], str(sample_model), str(out), block_size=512, workers=1)
    assert {p: p.read_bytes() for p in (out / "inputs").rglob("*.vrt")} == vrts
    # a block the manifest lists but whose file is gone is mapped again, not skipped
    (out / "blocks" / "class" / "r512_c512.tif").unlink()
    again = map_region(str(tmp_path / "tiles"), str(sample_model), str(out), block_size=512, workers=1)
    assert (again.blocks_run, again.blocks_skipped) == (1, first.blocks - 1)
    assert_same_map(again.output, single["class"])


def test_tiles_without_nodata_that_leave_holes_are_refused(tmp_path: Path, region: Path,
                                                           sample_model: Path) -> None:
    tiles = split_tiles(region, tmp_path / "tiles")
    bare = []
    for tile in (tiles[0], tiles[3]):  # two corners: the other two are holes in the rectangle
        with rasterio.open(tile) as src:
            profile, data = src.profile | {"nodata": None}, src.read()
        bare.append(tmp_path / f"bare_{tile.name}")
        with rasterio.open(bare[-1], "w", **profile) as dst:
            dst.write(data)
    with pytest.raises(InputError, match="leave holes in the region's rectangle"):
        map_region([str(b) for b in bare], str(sample_model), str(tmp_path / "out"), block_size=512)
    assert not (tmp_path / "out").exists()
