"""Seeded synthetic scenes for ``bench_scenes.py``: real GeoTIFF files and label GeoPackages, one per trap.

Every scene is drawn by a small seeded function and written into a work folder, so that the engine reads it through
its real loaders. The same recipe underlies all of them, so that they look like land cover rather than blobs of
Gaussian noise:

- Fields: a Voronoi tessellation of random seeds on slightly warped coordinates (irregular field edges, fields of
  very different sizes). Every field gets a class; every class gets at least a few fields.
- Spectra: five reflectance endmembers drawn as smooth functions of wavelength (green vegetation, soil, water,
  built-up, dry vegetation, with the 1450/1940 nm water absorption and a red edge). A class is a mixture of them
  (forest mostly vegetation, cropland vegetation and soil, ...), so some classes resemble each other.
- Within-class variation: every field perturbs its class's mixture and brightness (management, phenology); every
  pixel perturbs its field's mixture with spatially smooth noise, and its brightness with a smooth texture
  (topography, shading). A Gaussian point spread function (sigma 0.6 px) mixes pixels at field edges; sensor noise
  is added last.
- Labels: discs and rectangles of several sizes (about 1.5 to 8 px across half-width), each inside one field of the
  class (at least its size away from the field edge), at most one per field, as an analyst draws them; written in
  the raster's CRS (UTM 33N, 10 m pixels) with a text field ``class``.
- Nodata: a few cloud-like blobs (about 3 % of the image) are nodata in every band; some polygons touch them.

The noise levels are set once per scene so that the best contender lands roughly between 0.6 and 0.95 overall
accuracy. Only scene ``linear_bands`` (trap d) is built so that one family of models wins, because that is its trap.

The traps:

(a) ``empty_bands``: a 224-band hyperspectral-like cube (400-2500 nm, Float32, nodata NaN) whose six bands in the
    1380 and 1880 nm water-vapour absorption are NaN everywhere, as AVIRIS-like products deliver them.
(b) ``mixed_files``: one file per band: six Float32 reflectance bands (nodata -9999, with Landsat 7 SLC-off-like
    diagonal gaps) and an Int16 land surface temperature (0.1 K, nodata -32768, under clouds that differ from the
    gaps), given to the engine as a list of seven files.
(c) ``dominant_class``: one class (forest) holds over 75 % of the labelled pixels: big polygons in it, few small
    ones in the others.
(d) ``linear_bands``: 240 strongly correlated bands (spectrally correlated sensor noise), few labels per class
    (six small polygons, about 70 pixels), four crops that differ only by a weak, broad spectral signature each
    (six 100 nm features, reduced to the part no mixture of the endmembers can mimic), under strong illumination
    and soil/vegetation-fraction variation shared by all: the signal is small in every band and clear only along
    one direction per class, so a linear model finds it and trees and RBF kernels overfit the nuisance. This is the
    one scene built for a family of models to win: that is its trap.
(e) ``pixel_polygons``: a ground-truth raster (whole fields labelled minus their edges, 0 elsewhere, like the
    Indian Pines ground truth) turned into one square polygon per labelled pixel, neighbours touching.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CRS = "EPSG:32633"
RES = 10.0
X0, Y0 = 500_000.0, 5_000_000.0
FIELD = "class"

# Endmember mixtures (vegetation, soil, water, built-up, dry vegetation) and relative brightness of each class.
CLASSES: dict[str, tuple[tuple[float, float, float, float, float], float]] = {
    "forest": ((0.80, 0.05, 0.05, 0.00, 0.10), 0.75),
    "cropland": ((0.55, 0.30, 0.00, 0.00, 0.15), 1.00),
    "grassland": ((0.50, 0.15, 0.00, 0.00, 0.35), 1.00),
    "shrubland": ((0.35, 0.35, 0.00, 0.00, 0.30), 0.95),
    "bare soil": ((0.05, 0.85, 0.00, 0.05, 0.05), 1.05),
    "urban": ((0.10, 0.25, 0.00, 0.65, 0.00), 1.00),
    "water": ((0.00, 0.00, 0.97, 0.03, 0.00), 1.00),
    "wetland": ((0.45, 0.10, 0.40, 0.00, 0.05), 0.90),
}
# Band centres (nm): Sentinel-2 / Landsat-like six bands.
SIX_BANDS = (490.0, 560.0, 665.0, 842.0, 1610.0, 2190.0)


@dataclass
class Scene:
    """A scene ready for the benchmark: what the engine is given, and what the workarounds use."""

    key: str
    title: str
    raster: str | list[str]
    labels: str
    field: str
    otb_image: str  # one image file for Orfeo ToolBox
    fallback_raster: str | None = None  # what a user would give the engine while its loader fails (one file)
    split: str = "polygons"  # "blocks": hold out spatial blocks (one-pixel polygons)
    block_size: int = 40
    notes: list[str] = field(default_factory=list)


def _smooth(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Spatially smooth Gaussian noise over the first two axes, scaled to unit standard deviation."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(rng.normal(size=shape), [sigma, sigma] + [0] * (len(shape) - 2))
    return noise / noise.std()


def _fields(rng: np.random.Generator, h: int, w: int, n: int) -> np.ndarray:
    """Field id of every pixel: a Voronoi tessellation of ``n`` random seeds on slightly warped coordinates."""
    from scipy.spatial import cKDTree

    seeds = rng.uniform([0, 0], [h, w], size=(n, 2))
    rr, cc = np.mgrid[0:h, 0:w].astype("float64")
    rr += 3.0 * _smooth(rng, (h, w), 10.0)
    cc += 3.0 * _smooth(rng, (h, w), 10.0)
    _, fid = cKDTree(seeds).query(np.c_[rr.ravel(), cc.ravel()])
    return fid.reshape(h, w)


def _field_classes(rng: np.random.Generator, n_fields: int, share: list[float], min_fields: int) -> np.ndarray:
    """A class per field: ``min_fields`` of each class, the rest drawn with probabilities ``share``."""
    k = len(share)
    fixed = np.repeat(np.arange(k), min_fields)
    rest = rng.choice(k, size=n_fields - len(fixed), p=np.asarray(share) / np.sum(share))
    return rng.permutation(np.concatenate([fixed, rest]))


def endmembers(wl: np.ndarray) -> np.ndarray:
    """Reflectance (0-1) of vegetation, soil, water, built-up and dry vegetation at wavelengths ``wl`` (nm)."""
    wl = np.asarray(wl, dtype="float64")

    def g(c: float, w: float) -> np.ndarray:
        return np.exp(-0.5 * ((wl - c) / w) ** 2)

    def s(c: float, w: float) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(wl - c) / w))

    leaf_water = 1.0 - 0.45 * g(1450, 60) - 0.65 * g(1940, 80) - 0.2 * g(1200, 40)
    veg = (0.03 + 0.06 * g(550, 35) - 0.02 * g(670, 25) + 0.42 * s(715, 18) * (1 - 0.6 * s(1350, 200))) * leaf_water
    soil = (0.07 + 0.28 * s(900, 350)) * (1 - 0.2 * g(1420, 50) - 0.3 * g(1920, 70) - 0.15 * g(2200, 40))
    water = 0.015 + 0.06 * g(500, 90) + 0.01 * np.exp(-(wl - 700) / 80).clip(0, 1)
    built = (0.16 + 0.08 * s(600, 250)) * (1 - 0.15 * g(1900, 100) - 0.1 * g(2300, 60))
    dry = (0.07 + 0.25 * s(650, 150)) * (1 - 0.3 * g(2100, 60) - 0.2 * g(1450, 60) - 0.25 * g(1940, 80))
    return np.stack([veg, soil, water, built, dry])


def _render(rng: np.random.Generator, fid: np.ndarray, fclass: np.ndarray, names: list[str], spectra: np.ndarray,
            field_sd: float, pixel_sd: float, bright_sd: float = 0.08, texture_sd: float = 0.05,
            noise_sd: float = 0.004) -> np.ndarray:
    """Reflectance cube (bands, rows, cols) of a field map: mixtures of ``spectra`` perturbed per field and pixel."""
    from scipy.ndimage import gaussian_filter

    h, w = fid.shape
    mixes = np.array([CLASSES[n][0] for n in names])
    bright = np.array([CLASSES[n][1] for n in names])
    n_fields, m = len(fclass), spectra.shape[0]
    frac_f = np.clip(mixes[fclass] + field_sd * rng.normal(size=(n_fields, m)), 0, None)
    frac_f /= frac_f.sum(axis=1, keepdims=True)
    bright_f = bright[fclass] * (1 + bright_sd * rng.normal(size=n_fields))
    frac = np.clip(frac_f[fid] + pixel_sd * _smooth(rng, (h, w, m), 1.2), 0, None)
    frac /= frac.sum(axis=-1, keepdims=True) + 1e-9
    shade = bright_f[fid] * (1 + texture_sd * _smooth(rng, (h, w), 3.0))
    cube = (frac @ spectra) * shade[..., None]
    cube = gaussian_filter(cube, (0.6, 0.6, 0))  # the sensor's point spread: mixed pixels at field edges
    cube += noise_sd * rng.normal(size=cube.shape)
    return np.ascontiguousarray(cube.transpose(2, 0, 1)).astype("float32")


def _clouds(rng: np.random.Generator, h: int, w: int, share: float = 0.03) -> np.ndarray:
    """Cloud-like blobs covering about ``share`` of the image."""
    blob = _smooth(rng, (h, w), 8.0)
    return blob > np.quantile(blob, 1 - share)


def _transform() -> Any:
    from rasterio.transform import from_origin

    return from_origin(X0, Y0, RES, RES)


def write_tif(path: Path, data: np.ndarray, dtype: str, nodata: float | None,
              names: list[str] | None = None) -> Path:
    """A GeoTIFF in :data:`CRS` with the bands of ``data`` (bands, rows, cols) and optional band descriptions."""
    import rasterio

    count, h, w = data.shape
    profile = {"driver": "GTiff", "width": w, "height": h, "count": count, "dtype": dtype, "crs": CRS,
               "transform": _transform(), "nodata": nodata, "interleave": "pixel"}
    if count > 1:
        profile |= {"tiled": True, "blockxsize": 256, "blockysize": 256}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(dtype))
        for i, name in enumerate(names or [], start=1):
            dst.set_band_description(i, name)
    return path


def write_vrt(path: Path, files: list[Path], dtype: str | None = None, keep: list[int] | None = None) -> Path:
    """A VRT stacking the bands of ``files``, each with its file's nodata value.

    ``keep``: 1-based band numbers of the stack to keep; ``dtype``: read every band as this type (GDAL converts).
    """
    from xml.sax.saxutils import escape

    import rasterio

    gdal_types = {"uint8": "Byte", "int16": "Int16", "uint16": "UInt16", "int32": "Int32", "float32": "Float32",
                  "float64": "Float64"}
    sources = []
    for f in files:
        with rasterio.open(f) as src:
            sources += [(f, b, src.dtypes[b - 1], src.nodatavals[b - 1], src.descriptions[b - 1])
                        for b in range(1, src.count + 1)]
            width, height, crs, transform = src.width, src.height, src.crs.to_wkt(), src.transform
    if keep:
        sources = [sources[b - 1] for b in keep]
    bands = []
    for i, (f, b, band_type, nodata, desc) in enumerate(sources, start=1):
        nd = "" if nodata is None else f"<NoDataValue>{nodata!r}</NoDataValue>"
        bands.append(f'  <VRTRasterBand dataType="{gdal_types[dtype or band_type]}" band="{i}">{nd}'
                     f"<Description>{escape(desc or f.stem)}</Description><SimpleSource><SourceFilename "
                     f'relativeToVRT="0">{escape(str(Path(f).resolve()))}</SourceFilename><SourceBand>{b}'
                     "</SourceBand></SimpleSource></VRTRasterBand>")
    geo = ", ".join(repr(v) for v in transform.to_gdal())
    path.write_text(f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">\n  <SRS>{escape(crs)}</SRS>\n'
                    f"  <GeoTransform>{geo}</GeoTransform>\n" + "\n".join(bands) + "\n</VRTDataset>\n")
    return path


def _edge_distance(fid: np.ndarray) -> np.ndarray:
    """Distance (px) of every pixel to the nearest pixel of another field."""
    from scipy.ndimage import distance_transform_edt

    edge = np.zeros(fid.shape, dtype=bool)
    edge[:-1] |= fid[:-1] != fid[1:]
    edge[1:] |= fid[:-1] != fid[1:]
    edge[:, :-1] |= fid[:, :-1] != fid[:, 1:]
    edge[:, 1:] |= fid[:, :-1] != fid[:, 1:]
    return distance_transform_edt(~edge)


def _pixel_to_map(r: float, c: float) -> tuple[float, float]:
    return X0 + c * RES, Y0 - r * RES


def draw_polygons(rng: np.random.Generator, fid: np.ndarray, fclass: np.ndarray, names: list[str],
                  per_class: list[int], radius: list[tuple[float, float]]) -> Any:
    """Discs and rectangles inside fields, as an analyst draws them.

    ``per_class[k]`` polygons of class ``k`` with half-widths drawn from ``radius[k]`` (px), each in its own field
    and at least its size away from the field's edge.
    """
    import geopandas as gpd
    from shapely.geometry import Point, box

    dist = _edge_distance(fid)
    geoms, labels = [], []
    for k, name in enumerate(names):
        made = 0
        for f in rng.permutation(np.flatnonzero(fclass == k)):
            if made >= per_class[k]:
                break
            rows, cols = np.nonzero((fid == f) & (dist >= 2.0))
            if not len(rows):
                continue
            lo, hi = radius[k]
            want = rng.uniform(lo, hi)
            order = rng.permutation(len(rows))[:50]  # try a few centres; keep the first that holds the shape
            best = max(order, key=lambda i: min(dist[rows[i], cols[i]] - 1.0, want))
            r, c = rows[best] + 0.5, cols[best] + 0.5
            size = min(dist[rows[best], cols[best]] - 1.0, want)
            if rng.random() < 0.5:
                geom = Point(*_pixel_to_map(r, c)).buffer(size * RES)
            else:
                aspect = rng.uniform(0.5, 2.0)  # a rectangle inscribed in the disc of radius ``size``
                hc = size / np.sqrt(1 + aspect**2)
                hr = aspect * hc
                x0, y1 = _pixel_to_map(r - hr, c - hc)
                x1, y0 = _pixel_to_map(r + hr, c + hc)
                geom = box(x0, y0, x1, y1)
            geoms.append(geom)
            labels.append(name)
            made += 1
    return gpd.GeoDataFrame({FIELD: labels}, geometry=geoms, crs=CRS)


def _scene_empty_bands(folder: Path, rng: np.random.Generator) -> Scene:
    """(a) 224 bands, the six water-vapour bands NaN everywhere."""
    h = w = 200
    names = ["forest", "cropland", "grassland", "shrubland", "bare soil", "water", "urban"]
    wl = np.linspace(400, 2500, 224)
    fid = _fields(rng, h, w, 130)
    fclass = _field_classes(rng, 130, [3, 3, 2, 2, 1, 1, 1], 8)
    cube = _render(rng, fid, fclass, names, endmembers(wl), field_sd=0.08, pixel_sd=0.05, noise_sd=0.01)
    empty = np.sort(np.concatenate([np.argsort(np.abs(wl - 1380))[:3], np.argsort(np.abs(wl - 1880))[:3]]))
    cube[empty] = np.nan
    cube[:, _clouds(rng, h, w)] = np.nan
    path = write_tif(folder / "hsi_224.tif", cube, "float32", float("nan"), [f"{v:.0f} nm" for v in wl])
    polygons = draw_polygons(rng, fid, fclass, names, [6] * len(names), [(1.2, 3.5)] * len(names))
    labels = folder / "labels.gpkg"
    polygons.to_file(labels, layer="labels", driver="GPKG")
    kept = [b + 1 for b in range(len(wl)) if b not in set(empty)]
    fallback = write_vrt(folder / "hsi_218.vrt", [path], keep=kept)
    return Scene("empty_bands", "(a) empty bands: 224-band cube, 6 water-absorption bands all NaN", str(path),
                 str(labels), FIELD, str(fallback), str(fallback),
                 notes=[f"NaN bands {', '.join(str(b + 1) for b in empty)} ({', '.join(f'{wl[b]:.0f}' for b in empty)}"
                        " nm); workaround: the other 218 bands (VRT), also given to OTB"])


def _scene_mixed_files(folder: Path, rng: np.random.Generator) -> Scene:
    """(b) Six Float32 band files (nodata -9999, SLC-off gaps) and an Int16 temperature file (nodata -32768)."""
    from scipy.ndimage import gaussian_filter

    h = w = 240
    names = ["forest", "cropland", "grassland", "bare soil", "urban", "water"]
    fid = _fields(rng, h, w, 160)
    fclass = _field_classes(rng, 160, [3, 4, 2, 1, 1, 1], 10)
    cube = _render(rng, fid, fclass, names, endmembers(np.array(SIX_BANDS)), field_sd=0.16, pixel_sd=0.06,
                   noise_sd=0.006)
    rr, cc = np.mgrid[0:h, 0:w]
    gaps = ((rr + cc // 4) % 23) < 2  # Landsat 7 SLC-off-like wedge stripes
    cube[:, gaps] = -9999.0
    # Land surface temperature (K): class-dependent, a smooth regional gradient, read at coarse resolution.
    kelvin = {"forest": 293.0, "cropland": 297.0, "grassland": 298.0, "bare soil": 303.0, "urban": 304.0,
              "water": 289.0}
    temp = np.array([kelvin[n] for n in names])[fclass][fid] + 1.5 * rng.normal(size=len(fclass))[fid]
    temp = gaussian_filter(temp, 2.5) + 2.0 * _smooth(rng, (h, w), 40.0) + 0.4 * rng.normal(size=(h, w))
    lst = np.round(temp * 10).astype("int16")
    lst[_clouds(rng, h, w, 0.05)] = -32768
    files = []
    for b, centre in enumerate(SIX_BANDS):
        files.append(write_tif(folder / f"refl_{centre:.0f}nm.tif", cube[b:b + 1], "float32", -9999.0,
                               [f"reflectance {centre:.0f} nm"]))
    files.append(write_tif(folder / "lst_decikelvin.tif", lst[None], "int16", -32768, ["LST (0.1 K)"]))
    polygons = draw_polygons(rng, fid, fclass, names, [7, 7, 6, 6, 6, 6], [(1.5, 4.5)] * len(names))
    labels = folder / "labels.gpkg"
    polygons.to_file(labels, layer="labels", driver="GPKG")
    stack = write_vrt(folder / "stack_float32.vrt", files, dtype="float32")
    return Scene("mixed_files", "(b) per-band files: 6 Float32 (nodata -9999) + 1 Int16 (nodata -32768)",
                 [str(f) for f in files], str(labels), FIELD, str(stack), str(stack),
                 notes=["engine input: a list of 7 files; workaround and OTB: one VRT of the 7 files read as "
                        "Float32, each band with its file's nodata"])


def _scene_dominant_class(folder: Path, rng: np.random.Generator) -> Scene:
    """(c) forest over 75 % of the labelled pixels."""
    h = w = 240
    names = ["forest", "cropland", "grassland", "shrubland", "urban"]
    fid = _fields(rng, h, w, 150)
    fclass = _field_classes(rng, 150, [5, 2, 2, 2, 1], 10)
    cube = _render(rng, fid, fclass, names, endmembers(np.array(SIX_BANDS)), field_sd=0.14, pixel_sd=0.05,
                   noise_sd=0.005)
    scaled = np.round(cube * 10000)
    scaled[:, _clouds(rng, h, w)] = -9999
    path = write_tif(folder / "six_bands_int16.tif", scaled, "int16", -9999,
                     [f"B{i + 1} ({c:.0f} nm)" for i, c in enumerate(SIX_BANDS)])
    polygons = draw_polygons(rng, fid, fclass, names, [10, 6, 6, 6, 6],
                             [(4.0, 8.0), (1.2, 2.5), (1.2, 2.5), (1.2, 2.5), (1.2, 2.5)])
    labels = folder / "labels.gpkg"
    polygons.to_file(labels, layer="labels", driver="GPKG")
    return Scene("dominant_class", "(c) one class (forest) over 75 % of the labelled pixels", str(path),
                 str(labels), FIELD, str(path))


def _scene_linear_bands(folder: Path, rng: np.random.Generator) -> Scene:
    """(d) 240 correlated bands; four crops told apart by weak broad signatures; few labels."""
    from scipy.ndimage import gaussian_filter1d

    h = w = 200
    wl = np.linspace(400, 2500, 240)
    crops = ["maize", "soybean", "sunflower", "wheat"]
    fid = _fields(rng, h, w, 120)
    fclass = _field_classes(rng, 120, [1, 1, 1, 1], 20)
    spectra = endmembers(wl)
    # Every field is cropland: its soil/vegetation fractions and illumination vary strongly (the nuisance, which
    # lies in the span of the five endmembers). A crop adds its own signature: six broad (100 nm) absorption or
    # reflectance features, kept to the part that no mixture of the endmembers can mimic. Small in every band, it
    # is clear only along that direction of the 240-band space.
    nuisance = np.linalg.qr(np.c_[spectra.T, np.ones(len(wl))])[0]
    signatures = []
    for _ in crops:
        curve = sum(rng.choice([-1.0, 1.0]) * np.exp(-0.5 * ((wl - c) / 100.0) ** 2)
                    for c in rng.uniform(450, 2450, 6))
        curve = curve - nuisance @ (nuisance.T @ curve)
        signatures.append(curve / np.abs(curve).max())
    n_fields = len(fclass)
    base = np.array(CLASSES["cropland"][0])
    frac_f = np.clip(base + 0.15 * rng.normal(size=(n_fields, 5)), 0, None)
    frac = np.clip(frac_f[fid] + 0.1 * _smooth(rng, (h, w, 5), 1.5), 0, None)
    frac /= frac.sum(axis=-1, keepdims=True) + 1e-9
    shade = (1 + 0.1 * rng.normal(size=n_fields))[fid] * (1 + 0.1 * _smooth(rng, (h, w), 2.0))
    strength = 0.02 * (1 + 0.3 * rng.normal(size=n_fields))  # how strongly each field shows its crop's signature
    cube = (frac @ spectra) * shade[..., None] + (strength[:, None] * np.array(signatures)[fclass])[fid]
    noise = gaussian_filter1d(rng.normal(size=cube.shape), 3.0, axis=-1)  # sensor noise, correlated over bands
    cube += 0.01 * noise / noise.std()
    cube = np.ascontiguousarray(cube.transpose(2, 0, 1)).astype("float32")
    cube[:, _clouds(rng, h, w)] = -9999.0
    path = write_tif(folder / "hsi_240.tif", cube, "float32", -9999.0, [f"{v:.0f} nm" for v in wl])
    polygons = draw_polygons(rng, fid, fclass, crops, [6] * 4, [(1.5, 3.0)] * 4)
    labels = folder / "labels.gpkg"
    polygons.to_file(labels, layer="labels", driver="GPKG")
    return Scene("linear_bands", "(d) 240 correlated bands, few labels, class signal along linear directions",
                 str(path), str(labels), FIELD, str(path))


def _scene_pixel_polygons(folder: Path, rng: np.random.Generator) -> Scene:
    """(e) a ground-truth raster turned into one square polygon per labelled pixel."""
    import geopandas as gpd
    from shapely.geometry import box

    h = w = 200
    names = ["forest", "cropland", "grassland", "shrubland", "bare soil", "wetland", "water"]
    fid = _fields(rng, h, w, 120)
    fclass = _field_classes(rng, 120, [3, 4, 3, 2, 1, 1, 1], 8)
    cube = _render(rng, fid, fclass, names, endmembers(np.array(SIX_BANDS)), field_sd=0.13, pixel_sd=0.06,
                   noise_sd=0.005)
    scaled = np.round(cube * 10000)
    cloud = _clouds(rng, h, w)
    scaled[:, cloud] = -9999
    path = write_tif(folder / "six_bands_int16.tif", scaled, "int16", -9999,
                     [f"B{i + 1} ({c:.0f} nm)" for i, c in enumerate(SIX_BANDS)])
    # Ground truth: about a sixth of each class's fields (at least two), minus a one-pixel rim, as surveyed.
    labelled_fields = np.concatenate([rng.permutation(np.flatnonzero(fclass == k))[:max(2, int(np.sum(fclass == k))
                                                                                         // 6)]
                                      for k in range(len(names))])
    gt = np.where(np.isin(fid, labelled_fields) & (_edge_distance(fid) >= 1.5) & ~cloud, fclass[fid] + 1, 0)
    write_tif(folder / "ground_truth.tif", gt[None].astype("uint8"), "uint8", 0, ["class (0 = none)"])
    rows, cols = np.nonzero(gt)
    geoms = [box(X0 + c * RES, Y0 - (r + 1) * RES, X0 + (c + 1) * RES, Y0 - r * RES) for r, c in zip(rows, cols,
                                                                                                     strict=True)]
    polygons = gpd.GeoDataFrame({FIELD: [names[k - 1] for k in gt[rows, cols]]}, geometry=geoms, crs=CRS)
    labels = folder / "labels.gpkg"
    polygons.to_file(labels, layer="labels", driver="GPKG")
    return Scene("pixel_polygons", "(e) one-pixel polygons from a ground-truth raster", str(path), str(labels),
                 FIELD, str(path), split="blocks", block_size=40,
                 notes=[f"{len(geoms)} one-pixel polygons from {len(labelled_fields)} labelled fields; split by "
                        "40 px spatial blocks (stratified by each block's majority class), not by polygon"])


#: The classes of :func:`land_cover_arrays`: three vegetated ones alike (cropland, grassland, shrubland), wetland
#: between vegetation and water.
LAND_COVER = ["forest", "cropland", "grassland", "shrubland", "bare soil", "urban", "water", "wetland"]


def land_cover_arrays(seed: int, size: int = 150, n_fields: int = 90) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A fully labelled six-band land-cover scene in memory (no files): the cube and its class map.

    The recipe of the scenes above (warped Voronoi fields, a class per field with at least four fields per class,
    endmember mixtures of :data:`LAND_COVER`'s classes varied per field and per pixel, point spread and sensor
    noise) at Sentinel-2 / Landsat-like :data:`SIX_BANDS`, without clouds or nodata, so that every pixel has a known
    class (a full reference, for benchmarks that ask the map for labels, such as ``bench_active_learning.py``).

    Args:
        seed: the random seed; the same seed gives the same scene.
        size: rows and columns.
        n_fields: fields in the tessellation.

    Returns:
        The reflectance cube ``(rows, cols, 6)`` float32, the class index of every pixel ``(rows, cols)`` int64
        (``0..len(names) - 1``) and the class names.

    """
    rng = np.random.default_rng([seed, 1021])
    fid = _fields(rng, size, size, n_fields)
    fclass = _field_classes(rng, n_fields, [3, 4, 3, 2, 2, 1, 1, 1], 4)
    cube = _render(rng, fid, fclass, LAND_COVER, endmembers(np.array(SIX_BANDS)), field_sd=0.13, pixel_sd=0.06,
                   noise_sd=0.005)  # the noise levels of scene (e), ``pixel_polygons``
    return np.ascontiguousarray(cube.transpose(1, 2, 0)), fclass[fid].astype("int64"), list(LAND_COVER)


SYNTHETIC: dict[str, Callable[[Path, np.random.Generator], Scene]] = {
    "empty_bands": _scene_empty_bands,
    "mixed_files": _scene_mixed_files,
    "dominant_class": _scene_dominant_class,
    "linear_bands": _scene_linear_bands,
    "pixel_polygons": _scene_pixel_polygons,
}


def make_scene(key: str, workdir: Path, seed: int = 0) -> Scene:
    """Write synthetic scene ``key`` (seeded by ``seed`` and the key) into ``workdir/key``."""
    folder = workdir / key
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, list(SYNTHETIC).index(key)])
    return SYNTHETIC[key](folder, rng)
