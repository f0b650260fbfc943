"""What changed: a seeded pair with a known changed area (recovered within 10 % by the automatic threshold, the
second date on another grid), the two Landsat 7 dates with a model (larger change where the model's class changes,
transition map and matrix), embeddings compared by cosine distance, and rasters of different kinds refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from engine.core.errors import InputError
from engine.jobs.change import change

SPECTRA = np.array([[400, 700, 500, 3500, 1800], [900, 800, 700, 600, 400], [1500, 1700, 1900, 2300, 2900],
                    [2200, 2200, 2300, 2400, 2600]])


def write(path: Path, data: np.ndarray, left: float = 500_000, top: float = 4_000_000, **extra: object) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs="EPSG:32633", transform=from_origin(left, top, 10, 10), **extra) as dst:
        dst.write(data)
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """Two dates of a 200 x 240 px scene; on the second, three rectangles changed cover. The second date is on a
    larger grid (10 px more on each side). Returns both files and the truth mask of change on the first grid."""
    folder = tmp_path_factory.mktemp("pair")
    rng = np.random.default_rng(5)
    cover = np.kron(rng.integers(0, 4, size=(10, 12)), np.ones((20, 20), dtype=int))
    later = cover.copy()
    changed = np.zeros(cover.shape, dtype=bool)
    for r, c, h, w in ((20, 30, 40, 50), (120, 150, 50, 60), (60, 180, 30, 40)):
        later[r:r + h, c:c + w] = (cover[r:r + h, c:c + w] + 1 + rng.integers(0, 3)) % 4
        changed[r:r + h, c:c + w] = True
    changed &= later != cover

    def image(truth: np.ndarray) -> np.ndarray:
        return np.round(SPECTRA[truth].transpose(2, 0, 1) + rng.normal(0, 100, (5, *truth.shape))).astype("int16")

    first = write(folder / "1999.tif", image(cover), nodata=-9999)
    big = np.full((5, 220, 260), -9999, dtype="int16")
    big[:, 10:210, 10:250] = image(later)
    second = write(folder / "2002.tif", big, left=500_000 - 100, top=4_000_000 + 100, nodata=-9999)
    return first, second, changed


def test_a_known_changed_area_is_recovered_by_the_automatic_threshold(tmp_path: Path,
                                                                      pair: tuple[Path, Path, np.ndarray]) -> None:
    first, second, truth = pair
    result = change(str(first), str(second), str(tmp_path / "change.tif"), output_report=str(tmp_path / "c.json"))
    with rasterio.open(first) as src, rasterio.open(result.output) as out:
        assert (out.crs, out.transform, out.shape) == (src.crs, src.transform, src.shape)
        magnitude = out.read(1)
    print(f"CHANGE synthetic: {result.changed_pixels} px changed against {int(truth.sum())} true, threshold "
          f"{result.threshold:.3f}")
    assert result.changed_pixels == pytest.approx(int(truth.sum()), rel=0.10)
    assert result.changed_area_m2 == pytest.approx(result.changed_pixels * 100)
    assert magnitude[truth].mean() > 3 * magnitude[~truth].mean()
    assert "Otsu" in result.threshold_method and result.measure.startswith("change-vector")
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["change"]["changed_pixels"] == result.changed_pixels
    assert "Otsu" in (tmp_path / "c.html").read_text()


def test_the_landsat_dates_change_more_where_the_model_changes_class(tmp_path: Path, sample_raster: Path,
                                                                     sample_model: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    after = sample_raster.with_name("LE70220492002106EDC00_stack.gtif")
    with rasterio.open(after) as src:  # band 8: all zero in 1999, a blocky mask of 0, 2 and 4 in 2002
        assert len(np.unique(src.read(8))) > 1
    caplog.set_level("WARNING")
    result = change(str(sample_raster), str(after), str(tmp_path / "change.tif"), model=str(sample_model),
                    output_transitions=str(tmp_path / "fromto.tif"), output_report=str(tmp_path / "c.json"))
    with rasterio.open(result.output) as m, rasterio.open(str(result.output_transitions)) as t:
        magnitude, transitions = m.read(1), t.read(1)
        names = t.tags(1) | {}
        legend = t.colormap(1)
    report = json.loads((tmp_path / "c.json").read_text())["change"]["transitions"]
    n = len(report["classes"])
    same = np.isin(transitions, [i * n + i + 1 for i in range(n)])
    moved = (transitions > 0) & ~same
    print(f"CHANGE Landsat 1999 -> 2002: mean magnitude {magnitude[moved].mean():.2f} where the class changed, "
          f"{magnitude[same].mean():.2f} where it did not; {int(moved.sum())} px changed class")
    assert moved.any() and magnitude[moved].mean() > 1.5 * magnitude[same].mean()
    # the band constant on one date is left out, named: its tiny spread would have made it the whole change
    assert "Left out of the change, constant on one of the dates" in caplog.text and "band 8" in caplog.text
    assert report["changed_class_pixels"] == int(moved.sum())
    assert np.array(report["pixels"]).sum() == int((transitions > 0).sum())
    assert legend[1][:3] == (217, 217, 217) and names is not None
    html = (tmp_path / "c.html").read_text()
    assert "From-to transitions (ha)" in html and "forest" in html


def test_embeddings_are_compared_by_cosine_and_kinds_must_match(tmp_path: Path,
                                                                pair: tuple[Path, Path, np.ndarray]) -> None:
    first, _, _ = pair
    rng = np.random.default_rng(1)
    a = rng.normal(size=(8, 30, 40)).astype("float32")
    b = a.copy()
    b[:, :10] = -a[:, :10]  # the top third turned around: cosine distance 2; the rest 0
    tag = json.dumps({"encoder": "rcf_gaussian", "dim": 8, "patch_size": 8, "stride": 8})
    for name, data in (("a.tif", a), ("b.tif", b)):
        with rasterio.open(write(tmp_path / name, data, nodata=float("nan")), "r+") as dst:
            dst.update_tags(LANDPROBE_EMBEDDING=tag)
    result = change(str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), str(tmp_path / "c.tif"))
    with rasterio.open(result.output) as out:
        magnitude = out.read(1)
    assert np.allclose(magnitude[:10], 2, atol=1e-5) and np.allclose(magnitude[10:], 0, atol=1e-5)
    assert result.measure.startswith("cosine") and result.changed_pixels == 10 * 40
    with pytest.raises(InputError, match=r"holds embeddings but .* holds raw bands: compare two rasters of the same"):
        change(str(tmp_path / "a.tif"), str(first), str(tmp_path / "x.tif"))
    with rasterio.open(first) as src:
        write(tmp_path / "three.tif", src.read()[:3], nodata=-9999)
    with pytest.raises(InputError, match=r"has 5 bands but .*three\.tif has 3"):
        change(str(first), str(tmp_path / "three.tif"), str(tmp_path / "x.tif"))
    with pytest.raises(InputError, match=r"transition raster needs a model"):
        change(str(first), str(first), str(tmp_path / "x.tif"), output_transitions=str(tmp_path / "t.tif"))
    assert not (tmp_path / "x.tif").exists()


def test_a_change_model_maps_stacked_dates_on_dask_as_on_one_raster(tmp_path: Path, sample_raster: Path) -> None:
    from engine.io.rasters import write_stack_vrt
    from engine.jobs.map_region import map_region

    after = sample_raster.with_name("LE70220492002106EDC00_stack.gtif")
    single = change(str(sample_raster), str(after), str(tmp_path / "change.tif"),
                    output_model=str(tmp_path / "change.lpmodel"))
    pair = write_stack_vrt([str(sample_raster), str(after)], tmp_path / "pair.vrt")
    region = map_region(str(pair), str(tmp_path / "change.lpmodel"), str(tmp_path / "region"), block_size=512,
                        workers=1)
    with rasterio.open(region.output) as got, rasterio.open(single.output) as want:
        assert got.transform == want.transform
        assert np.array_equal(got.read(), want.read(), equal_nan=True)


def test_alphaearth_nodata_is_nodata_and_a_value_model_is_refused(tmp_path: Path, sample_raster: Path) -> None:
    """AlphaEarth files may not declare their nodata (-128): those pixels are nodata in the change, not change."""
    rng = np.random.default_rng(4)
    a = rng.integers(-100, 100, size=(64, 30, 40)).astype("int8")
    b = a.copy()
    b[:, 20:] = rng.integers(-100, 100, size=(64, 10, 40)).astype("int8")  # the bottom third changed
    a[:, :5] = -128  # masked on the first date only
    write(tmp_path / "a.tif", a)
    write(tmp_path / "b.tif", b)
    result = change(str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), str(tmp_path / "c.tif"),
                    output_model=str(tmp_path / "c.lpmodel"))
    with rasterio.open(result.output) as out:
        magnitude = out.read(1)
    assert np.isnan(magnitude[:5]).all() and not np.isnan(magnitude[5:]).any()
    assert magnitude[20:].mean() > 0.5 > magnitude[5:20].max()
    with pytest.raises(InputError, match=r"maps a value .* not classes"):
        change(str(sample_raster), str(sample_raster), str(tmp_path / "x.tif"), model=str(tmp_path / "c.lpmodel"))
