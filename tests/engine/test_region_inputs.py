"""Region inputs: tiles on another CRS, pixel size or grid regridded onto the first tile's grid through GDAL's warped
VRT (named in the log; tiles that cannot be regridded or have other bands refused, named); tiles read through
/vsis3/ and /vsigs/ from a server on 127.0.0.1, with dummy credentials given to GDAL through its own configuration
and never written into the output folder."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine, from_origin
from rasterio.warp import transform, transform_bounds

from engine.core.errors import InputError
from engine.io.region import region_raster

#: The grid of the first tiles: UTM zone 32N, 30 m pixels, just west of 12 degrees east (zone 33 starts there).
UTM32 = "EPSG:32632"
ORIGIN = (730_020.0, 5_000_010.0)
SIZE = 30.0
NODATA = -9999
#: Dummy credentials: none may end up in a file of the output folder or in the log.
AWS_KEY, AWS_SECRET = "AKIA-TEST-SECRET-123", "aws-TEST-SECRET-456"
GS_KEY, GS_SECRET = "GOOG-TEST-SECRET-789", "gs-TEST-SECRET-012"


def write_tile(path: Path, crs: str | None, grid: Affine, data: np.ndarray, nodata: float | None = NODATA) -> Path:
    """A tiled GeoTIFF of ``data`` (bands, rows, cols) on ``crs`` and ``grid``."""
    profile = {"driver": "GTiff", "count": data.shape[0], "height": data.shape[1], "width": data.shape[2],
               "dtype": data.dtype.name, "crs": crs, "transform": grid, "nodata": nodata}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def seeded(seed: int, shape: tuple[int, int, int] = (3, 40, 64), dtype: str = "int16") -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1000, shape).astype(dtype)


def utm_tiles(folder: Path, other_crs: str = "EPSG:32633") -> list[Path]:
    """Two tiles side by side on UTM 32N and, 300 m east of them, a third on ``other_crs`` (20 m or 0.0003 deg)."""
    folder.mkdir(parents=True, exist_ok=True)
    x, y = ORIGIN
    a = write_tile(folder / "tile_a.tif", UTM32, from_origin(x, y, SIZE, SIZE), seeded(1))
    b = write_tile(folder / "tile_b.tif", UTM32, from_origin(x + 64 * SIZE, y, SIZE, SIZE), seeded(2))
    (cx,), (cy,) = transform(UTM32, other_crs, [x + 128 * SIZE + 300], [y - 150])
    step = 0.0003 if other_crs == "EPSG:4326" else 20.0
    c = write_tile(folder / "tile_c.tif", other_crs, from_origin(cx, cy, step, step), seeded(3, (3, 50, 50)))
    return [a, b, c]


def assert_lands_where_it_should(mosaic: str, tile: Path, margin: float = 0.3) -> int:
    """Every mosaic pixel whose centre falls inside ``tile`` (clear of its pixel edges) holds the tile's pixel there.

    Between two CRSs the warper's approximate transformer may be off by up to 0.125 px, so centres within ``margin``
    of a source pixel's edge are left out. Returns the number of pixels compared.
    """
    with rasterio.open(mosaic) as got, rasterio.open(tile) as src:
        values, source = got.read(), src.read()
        rows, cols = np.mgrid[0:got.height, 0:got.width]
        xs, ys = got.transform * (cols.ravel() + 0.5, rows.ravel() + 0.5)
        sx, sy = transform(got.crs, src.crs, xs.tolist(), ys.tolist())
        scol, srow = ~src.transform * (np.asarray(sx), np.asarray(sy))
    inside = (scol >= 0) & (scol < source.shape[2]) & (srow >= 0) & (srow < source.shape[1])
    clear = inside & (np.abs(scol - np.floor(scol) - 0.5) < 0.5 - margin) & \
        (np.abs(srow - np.floor(srow) - 0.5) < 0.5 - margin)
    assert clear.sum() > 100
    want = source[:, np.floor(srow[clear]).astype(int), np.floor(scol[clear]).astype(int)]
    assert np.array_equal(values[:, rows.ravel()[clear], cols.ravel()[clear]], want)
    return int(clear.sum())


def assert_on_grid(path: Path | str, width: int | None = None, height: int | None = None) -> tuple[int, int]:
    """``path`` is on the first tiles' grid (UTM 32N, 30 m, origin whole pixels from theirs); its pixel offset."""
    with rasterio.open(path) as src:
        assert src.crs == CRS.from_string(UTM32)
        assert (src.transform.a, src.transform.e, src.transform.b, src.transform.d) == (SIZE, -SIZE, 0, 0)
        col, row = (src.transform.c - ORIGIN[0]) / SIZE, (ORIGIN[1] - src.transform.f) / SIZE
        assert col == round(col) and row == round(row)
        if width is not None:
            assert (src.width, src.height) == (width, height)
        return round(col), round(row)


@pytest.mark.parametrize("other_crs", ["EPSG:32633", "EPSG:4326"])
@pytest.mark.parametrize("given", ["folder", "list"])
def test_a_tile_on_another_crs_is_regridded_onto_the_first_tiles_grid(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture,
                                                                       other_crs: str, given: str) -> None:
    tiles = utm_tiles(tmp_path / "tiles", other_crs)
    out = tmp_path / "out"
    out.mkdir()
    with caplog.at_level(logging.WARNING, logger="engine.io.region"):
        mosaic = region_raster(str(tmp_path / "tiles") if given == "folder" else [str(t) for t in tiles], out)
    assert Path(mosaic) == out / "region.vrt"
    assert assert_on_grid(mosaic) == (0, 0)
    with rasterio.open(mosaic) as src:  # the two tiles on the grid, pixel for pixel
        assert src.nodata == NODATA and src.count == 3 and src.dtypes[0] == "int16"
        assert np.array_equal(src.read(window=((0, 40), (0, 64))), seeded(1))
        assert np.array_equal(src.read(window=((0, 40), (64, 128))), seeded(2))
    assert_lands_where_it_should(mosaic, tiles[2])
    # the warped tile: on the grid, its extent the tile's own widened to whole pixels (at most one more each side)
    (warped,) = out.glob("region.warped_*.vrt")
    assert "tile_c" in warped.name
    col, _ = assert_on_grid(warped)
    with rasterio.open(tiles[2]) as src, rasterio.open(warped) as got:
        left, bottom, right, top = transform_bounds(src.crs, got.crs, *src.bounds, densify_pts=21)
        assert got.bounds.left <= left < got.bounds.left + SIZE and got.bounds.right - SIZE < right <= got.bounds.right
        assert got.bounds.bottom <= bottom < got.bounds.bottom + SIZE and got.bounds.top - SIZE < top <= got.bounds.top
        assert got.nodata == NODATA and got.dtypes == src.dtypes
    assert col >= 128  # east of the two tiles, as written
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = record.getMessage()
    assert f"Tile {tiles[2]} is on {other_crs}" in message
    assert "resampled by nearest neighbour onto the first tile's grid" in message and str(tiles[0]) in message


def test_a_tile_with_another_pixel_size_or_off_the_grid_is_regridded(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "tiles"
    folder.mkdir()
    x, y = ORIGIN
    first = write_tile(folder / "a.tif", UTM32, from_origin(x, y, SIZE, SIZE), seeded(1))
    coarse = write_tile(folder / "b.tif", UTM32, from_origin(x + 64 * SIZE, y, 60.0, 60.0), seeded(2, (3, 15, 15)))
    shifted = write_tile(folder / "c.tif", UTM32, from_origin(x + 7.5, y - 40 * SIZE - 12.0, SIZE, SIZE),
                         seeded(3, (3, 10, 30)))
    with caplog.at_level(logging.WARNING, logger="engine.io.region"):
        mosaic = region_raster([str(first), str(coarse), str(shifted)], tmp_path)
    # 15 px of 60 m are 30 px of 30 m; the shifted tile widened by one pixel each way it is off the grid
    assert assert_on_grid(tmp_path / "region.warped_00001_b.vrt", 30, 30) == (64, 0)
    assert assert_on_grid(tmp_path / "region.warped_00002_c.vrt", 31, 11) == (0, 40)
    with rasterio.open(mosaic) as src:
        assert (src.width, src.height) == (94, 51)
        assert np.array_equal(src.read(window=((0, 40), (0, 64))), seeded(1))
        coarse_pixels = src.read(window=((0, 30), (64, 94)))
    assert np.array_equal(coarse_pixels, np.repeat(np.repeat(seeded(2, (3, 15, 15)), 2, 1), 2, 2))
    for tile in (coarse, shifted):
        assert_lands_where_it_should(mosaic, tile, margin=0.01)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert f"Tile {coarse} is on EPSG:32632 with pixels of 60 x 60" in warnings[0]
    assert f"Tile {shifted} is on EPSG:32632 with pixels of 30 x 30" in warnings[1]


def test_tiles_that_cannot_be_regridded_or_have_other_bands_are_refused_by_name(tmp_path: Path) -> None:
    tiles = [str(t) for t in utm_tiles(tmp_path / "tiles")]
    x, y = ORIGIN
    east = from_origin(x + 128 * SIZE, y, SIZE, SIZE)
    cases = {
        "bands": (write_tile(tmp_path / "four.tif", UTM32, east, seeded(4, (4, 40, 64))),
                  r"has other bands than tile .*tile_a\.tif \(4 bands of int16 against 3 of int16, or other nodata\): "
                  r"give every tile the same bands"),
        "dtype": (write_tile(tmp_path / "bytes.tif", UTM32, east, seeded(4, dtype="uint8"), nodata=0),
                  r"has other bands than tile .*tile_a\.tif \(3 bands of uint8 against 3 of int16"),
        # on another CRS and with other bands: the bands are told, the tile is never warped
        "warped bands": (write_tile(tmp_path / "far.tif", "EPSG:32633", east, seeded(4, (2, 40, 64))),
                         "has other bands than tile"),
        "no crs": (write_tile(tmp_path / "bare.tif", None, from_origin(x + 7, y, SIZE, SIZE), seeded(4)),
                   r"is not on the pixel grid of tile .*tile_a\.tif and tile .*bare\.tif has no CRS to regrid it "
                   r"with: set the CRS of every tile \(gdal_edit -a_srs\)"),
        # a zone-33 tile placed where zone 32's coordinates are: 108 degrees away from zone 15's meridian
        "far away": (write_tile(tmp_path / "zone15.tif", "EPSG:32615", from_origin(466_000, 1_738_000, SIZE, SIZE),
                                seeded(4)),
                     r"is on another CRS than tile .*tile_a\.tif and lies far outside the area that CRS suits "
                     r"\(EPSG:32632: the tile would be turned by \d+ degrees\)"),
    }
    for name, (tile, message) in cases.items():
        with pytest.raises(InputError, match=f"^Tile {re.escape(str(tile))} {message}") as caught:
            region_raster([*tiles, str(tile)], tmp_path / name)
        assert "\n" not in str(caught.value)
    assert not list(tmp_path.glob("*/region*.vrt"))
    # off the grid and without nodata: the pixels around it once regridded would read as data
    bare_first = write_tile(tmp_path / "first.tif", UTM32, from_origin(x, y, SIZE, SIZE), seeded(1), nodata=None)
    bare_off = write_tile(tmp_path / "off.tif", UTM32, from_origin(x + 64 * SIZE + 5, y, SIZE, SIZE), seeded(2),
                          nodata=None)
    with pytest.raises(InputError, match=f"^Tile {re.escape(str(bare_off))} is not on the pixel grid of tile "
                                         f"{re.escape(str(bare_first))} .* has no single nodata value"):
        region_raster([str(bare_first), str(bare_off)], tmp_path / "bare")
    missing = tmp_path / "tiles" / "tile_z.tif"
    with pytest.raises(InputError, match=f"^Tile {re.escape(str(missing))} of the region cannot be read"):
        region_raster([*tiles, str(missing)], tmp_path / "missing")


#: A bucket server, as S3 and Google Cloud Storage answer in path style (``/bucket/key``): HEAD and GET with or
#: without a byte range, 404 for anything else; every request line (and whether it came signed) goes to a log file.
#: It runs in its own process: GDAL holds the GIL while it reads, so a server thread here would never answer.
BUCKET_SERVER = """
import http.server, sys
from pathlib import Path

root, log = Path(sys.argv[1]), open(sys.argv[2], "a", buffering=1)

class Bucket(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, body):
        signed = "signed" if self.headers.get("Authorization") else "unsigned"
        log.write(f"{self.command} {self.path} {self.headers.get('Range', '-')} {signed}\\n")
        path = root / self.path.split("?")[0].lstrip("/")
        if "?" in self.path or not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = path.read_bytes()
        spec = self.headers.get("Range")
        if spec:
            first, _, last = spec.removeprefix("bytes=").partition("-")
            start, end = int(first), min(int(last or len(data) - 1), len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            data = data[start:end + 1]
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self):
        self.answer(True)

    def do_HEAD(self):
        self.answer(False)

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Bucket)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture()
def bucket(tmp_path: Path) -> Iterator[tuple[Path, int, Path]]:
    """A folder served as buckets on 127.0.0.1 by another process: the folder, the port and the request log."""
    folder, log = tmp_path / "served", tmp_path / "requests.log"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", BUCKET_SERVER, str(folder), str(log)], stdout=subprocess.PIPE,
                            text=True)
    try:
        yield folder, int(proc.stdout.readline()), log  # type: ignore[union-attr]
    finally:
        proc.kill()
        proc.wait(timeout=30)


def cloud_config(monkeypatch: pytest.MonkeyPatch, kind: str, port: int) -> None:
    """Point GDAL's /vsis3/ or /vsigs/ at the local server, with dummy credentials, through environment variables."""
    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
    if kind == "vsis3":
        monkeypatch.setenv("AWS_S3_ENDPOINT", f"127.0.0.1:{port}")
        monkeypatch.setenv("AWS_HTTPS", "NO")
        monkeypatch.setenv("AWS_VIRTUAL_HOSTING", "FALSE")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_NO_SIGN_REQUEST"):
            monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv("CPL_GS_ENDPOINT", f"http://127.0.0.1:{port}/")
        monkeypatch.setenv("GS_ACCESS_KEY_ID", GS_KEY)
        monkeypatch.setenv("GS_SECRET_ACCESS_KEY", GS_SECRET)
        monkeypatch.delenv("GS_NO_SIGN_REQUEST", raising=False)


def assert_no_secret(folder: Path, *texts: str) -> None:
    """No file under ``folder``, and none of ``texts``, holds a dummy credential."""
    secrets = [s.encode() for s in (AWS_KEY, AWS_SECRET, GS_KEY, GS_SECRET)]
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        assert not [s for s in secrets if s in data], path
    for text in texts:
        assert not [s for s in secrets if s.decode() in text]


@pytest.mark.parametrize("kind", ["vsis3", "vsigs"])
def test_tiles_in_a_bucket_through_vsis3_and_vsigs_mosaic_as_the_local_ones(
        tmp_path: Path, bucket: tuple[Path, int, Path], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, kind: str) -> None:
    served, port, log = bucket
    local = utm_tiles(served / "bucket")  # the third tile on zone 33: its warped VRT reads it from the bucket too
    reference = region_raster([str(t) for t in local], tmp_path / "local")
    cloud_config(monkeypatch, kind, port)
    out = tmp_path / "out"
    out.mkdir()
    with caplog.at_level(logging.DEBUG):
        mosaic = region_raster([f"/{kind}/bucket/{t.name}" for t in local], out)
    with rasterio.open(mosaic) as got, rasterio.open(reference) as want:
        assert (got.width, got.height, got.transform, got.crs) == (want.width, want.height, want.transform, want.crs)
        assert np.array_equal(got.read(), want.read())
    assert f"/{kind}/bucket/tile_c.tif" in (out / "region.warped_00002_tile_c.vrt").read_text()
    assert_no_secret(out, caplog.text)
    requests = log.read_text().splitlines()
    assert any(line.startswith("GET /bucket/tile_c.tif bytes=") for line in requests)
    assert all(line.endswith(" signed") for line in requests)  # GDAL signed with the dummy keys it was given


def test_map_region_on_tiles_in_a_bucket_gives_the_map_of_the_local_tiles(
        tmp_path: Path, bucket: tuple[Path, int, Path], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, sample_raster: Path, sample_model: Path) -> None:
    from engine.jobs.classify_raster import classify_raster
    from engine.jobs.map_region import MANIFEST, map_region

    served, port, _ = bucket
    folder = served / "bucket"
    folder.mkdir()
    with rasterio.open(sample_raster) as src:  # the sample cut in two tiles, side by side
        for name, window in (("tile_0.tif", ((0, 250), (0, 130))), ("tile_1.tif", ((0, 250), (130, 250)))):
            profile = src.profile | {"width": window[1][1] - window[1][0], "transform": src.window_transform(window)}
            with rasterio.open(folder / name, "w", **profile) as dst:
                dst.write(src.read(window=window))
    reference = tmp_path / "local.tif"
    classify_raster(str(folder), str(sample_model), str(reference))
    cloud_config(monkeypatch, "vsis3", port)
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        result = map_region(["/vsis3/bucket/tile_0.tif", "/vsis3/bucket/tile_1.tif"], str(sample_model), str(out),
                            block_size=512, workers=1)
    with rasterio.open(result.output) as got, rasterio.open(reference) as want:
        assert (got.transform, got.crs, got.nodatavals) == (want.transform, want.crs, want.nodatavals)
        assert np.array_equal(got.read(), want.read())
    assert (out / MANIFEST).exists() and list(out.rglob("region.vrt"))
    assert_no_secret(out, caplog.text)


def test_tiles_with_nan_nodata_mosaic_and_regrid(tmp_path: Path) -> None:
    """Embedding tiles (float32, nodata NaN) are the same bands; one off the grid is regridded (NaN around it)."""
    from engine.io.region import regrid_onto

    x, y = ORIGIN
    nan = float("nan")
    a = write_tile(tmp_path / "a.tif", UTM32, from_origin(x, y, SIZE, SIZE), seeded(1, dtype="float32"), nan)
    b = write_tile(tmp_path / "b.tif", UTM32, from_origin(x + 64 * SIZE, y, SIZE, SIZE),
                   seeded(2, dtype="float32"), nan)
    (tmp_path / "out").mkdir()
    mosaic = region_raster([str(a), str(b)], tmp_path / "out")
    with rasterio.open(mosaic) as src, rasterio.open(b) as tile:
        assert src.width == 128 and np.array_equal(src.read(window=((0, 40), (64, 128))), tile.read())
    shifted = write_tile(tmp_path / "shifted.tif", UTM32, from_origin(x + 75, y - 75, SIZE, SIZE),
                         seeded(3, dtype="float32"), nan)
    warped = regrid_onto(str(shifted), str(a), tmp_path / "warped.vrt")
    with rasterio.open(warped) as src, rasterio.open(a) as ref:
        assert src.transform == ref.transform and np.isnan(src.nodata)
        assert np.isnan(src.read(1)[0, 0]) and not np.isnan(src.read(1)[5, 5])
