"""Hyperspectral benchmark data: MATLAB cubes and ground truths, a synthetic cube, the stratified pixel split.

The classic benchmarks (Indian Pines, Pavia University, Salinas) are published as MATLAB ``.mat`` files: a cube of
``(rows, cols, bands)`` and a ground truth of ``(rows, cols)`` class numbers with 0 for unlabelled pixels. They have
no georeferencing; :func:`mat_to_geotiff` gives them an image grid (1 unit per pixel, north up) so QGIS shows them
upright and the rest of Landprobe can read them like any raster.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import rasterio
from rasterio.transform import Affine

from ..core.errors import InputError
from .rasters import atomic_output

if TYPE_CHECKING:
    from collections.abc import Sequence


#: Indian Pines classes whose synthetic spectra are made deliberately alike: the corn and the soybean tillage
#: variants, the grass/pasture classes and the woody classes (class numbers of ``Indian_pines_gt.mat``).
INDIAN_PINES_FAMILIES = ((2, 3, 4), (10, 11, 12), (5, 7, 9), (6, 14, 15), (1, 8, 13))
_INTEGER_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32")


def read_mat_array(path: str | Path, key: str | None = None) -> np.ndarray:
    """One array of a MATLAB ``.mat`` file (v4-v7 with scipy; v7.3 HDF5 files need h5py).

    Args:
        path: the ``.mat`` file.
        key: the variable to read; ``None`` reads the file's only array.

    Returns:
        The array as MATLAB stores it: a cube ``(rows, cols, bands)`` or a ground truth ``(rows, cols)``.

    Raises:
        InputError: when the file is missing or unreadable, the key is absent, or no single array can be chosen.

    """
    # Lazy: scipy takes half a second to import, and not every job needs it here.
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise InputError(f"MATLAB file {path} does not exist.")
    try:
        arrays = {k: v for k, v in scipy.io.loadmat(str(path)).items() if not k.startswith("__")}
    except NotImplementedError:  # scipy's answer to a v7.3 (HDF5) file
        if importlib.util.find_spec("h5py") is None:
            raise InputError(f"{path.name} is a MATLAB v7.3 (HDF5) file: re-save it in MATLAB with "
                             "save(..., '-v7'), or install h5py in the engine's environment (pip install h5py)."
                             ) from None
        # Lazy: only MATLAB v7.3 files need it.
        import h5py

        with h5py.File(path, "r") as f:  # MATLAB writes column-major: h5py sees the axes reversed
            arrays = {k: np.asarray(v).T for k, v in f.items() if isinstance(v, h5py.Dataset)}
    except (ValueError, OSError, TypeError) as exc:
        raise InputError(f"Cannot read {path} as a MATLAB file: {exc}.") from exc
    other = sorted(k for k, v in arrays.items() if not (isinstance(v, np.ndarray) and v.dtype.kind in "biuf"))
    arrays = {k: v for k, v in arrays.items() if k not in other}
    if not arrays and other:
        raise InputError(f"{path.name} holds no array of real numbers ({', '.join(other)}: cell arrays, structs, text "
                         "or complex numbers): save the cube or ground truth as a numeric matrix.")
    if key is not None:
        if key not in arrays:
            raise InputError(f"{path.name} has no array named '{key}'; its arrays are: {', '.join(arrays) or 'none'}.")
        return arrays[key]
    if len(arrays) != 1:
        raise InputError(f"{path.name} holds {len(arrays)} arrays ({', '.join(arrays) or 'none'}); name the one "
                         "to read.")
    return next(iter(arrays.values()))


def mat_to_geotiff(path: str | Path, output: str | Path, key: str | None = None) -> Path:
    """Write a ``.mat`` cube or ground truth as a tiled, deflate-compressed GeoTIFF on an image grid.

    A 3-D array ``(rows, cols, bands)`` becomes a band-sequential raster in its own integer type, or float32, with
    bands described ``band 1``, ``band 2``, ... A 2-D array of non-negative whole numbers is a ground truth: uint8
    (uint16 above 255 classes) with nodata 0 and its band described ``class``. Any other 2-D array is one float32
    band. There is no CRS; the transform ``Affine(1, 0, 0, 0, -1, rows)`` puts one unit per pixel, north up.

    Args:
        path: the ``.mat`` file.
        output: the GeoTIFF to write (atomically: a failure leaves no file).
        key: the variable to read (see :func:`read_mat_array`).

    Returns:
        The path written.

    Raises:
        InputError: when the array cannot be read or is not 2-D or 3-D.

    """
    array = read_mat_array(path, key)
    if array.size == 0:
        raise InputError(f"The array of {Path(path).name} is empty (shape {array.shape}): choose another variable or "
                         "file.")
    nodata = None
    if array.ndim == 3:
        data = np.moveaxis(array, 2, 0)
        dtype = str(array.dtype) if str(array.dtype) in _INTEGER_DTYPES else "float32"
        names = [f"band {i}" for i in range(1, data.shape[0] + 1)]
    elif array.ndim == 2 and array.size and np.all(array >= 0) and np.all(np.mod(array, 1) == 0):
        data = array[None]
        dtype, nodata, names = ("uint8" if array.max() <= 255 else "uint16"), 0, ["class"]
    elif array.ndim == 2:
        data, dtype, names = array[None], "float32", ["band 1"]
    else:
        raise InputError(f"{Path(path).name}: expected a (rows, cols, bands) cube or a (rows, cols) ground truth, "
                         f"got shape {array.shape}.")
    count, rows, cols = data.shape
    profile = {"driver": "GTiff", "width": cols, "height": rows, "count": count, "dtype": dtype, "nodata": nodata,
               "transform": Affine(1, 0, 0, 0, -1, rows), "tiled": True, "blockxsize": 256, "blockysize": 256,
               "compress": "deflate", "predictor": 3 if dtype == "float32" else 2, "interleave": "band",
               "BIGTIFF": "IF_SAFER"}
    with atomic_output(output) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data.astype(dtype, copy=False))
        for i, name in enumerate(names, start=1):
            dst.set_band_description(i, name)
    return Path(output)


@dataclass(frozen=True)
class SyntheticParameters:
    """The knobs of :func:`synthetic_cube` (reflectance units, pixels and bands); the defaults are the benchmark's."""

    family_spread: float = 0.012  # how far a class's spectral parameters stray from its family's
    feature_amplitude: float = 0.015  # height of each class's own Gaussian reflectance features
    border_sigma_px: float = 1.0  # Gaussian blur of the class abundance maps: linear mixing at borders
    field_sigma_px: float = 6.0  # spatial scale of the within-class variability and the illumination field
    field_amplitude: float = 0.02  # std of each of 3 smooth spectral variation modes, per pixel
    illumination_field: float = 0.05  # std of the log-brightness, spatially smooth
    illumination_pixel: float = 0.03  # std of the log-brightness, pixel to pixel
    correlated_noise: float = 0.016  # std of the per-pixel noise that is smooth across bands
    correlated_noise_bands: float = 4.0  # its correlation length along the spectrum, in bands
    snr: float = 60.0  # mean reflectance over the std of the white noise


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """A zero-mean, unit-std Gaussian random field with correlation length ``sigma`` pixels."""
    # Lazy: scipy takes half a second to import, and not every job needs it here.
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    return (field - field.mean()) / (field.std() + 1e-12)


def _gauss(wl: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((wl - centre) / width) ** 2)


def _spectrum(wl: np.ndarray, p: np.ndarray) -> np.ndarray:
    """A vegetation/soil reflectance curve over wavelengths ``wl`` (um) from the 6 parameters unpacked below."""
    # the soil line (rising from 0.10 to 0.30) makes up the share that is not vegetation
    visible, nir, edge, water, swir, veg_fraction = p
    veg = visible + 0.04 * _gauss(wl, 0.55, 0.03) + (nir - visible) / (1 + np.exp(-(wl - edge) / 0.015))
    veg *= (1 - swir * np.clip(wl - 1.0, 0, None)) * (1 - water * (_gauss(wl, 1.4, 0.05) + _gauss(wl, 1.9, 0.07)))
    return veg_fraction * veg + (1 - veg_fraction) * (0.10 + 0.20 * (wl - wl[0]) / (wl[-1] - wl[0]))


def _class_spectra(n_classes: int, n_bands: int, families: Sequence[Sequence[int]], params: SyntheticParameters,
                   rng: np.random.Generator) -> np.ndarray:
    """``(n_classes + 1, n_bands)`` spectra: row 0 the background; classes of one family share base parameters."""
    wl = np.linspace(0.4, 2.5, n_bands)
    low, high = np.array([0.02, 0.25, 0.70, 0.3, 0.15, 0.3]), np.array([0.08, 0.55, 0.73, 0.8, 0.40, 1.0])
    scale = (high - low) / (high - low)[1]  # the spread in each parameter's own units
    family_of = {c: i for i, fam in enumerate(families) for c in fam}
    bases = rng.uniform(low, high, size=(len(families), 6))
    spectra = np.empty((n_classes + 1, n_bands))
    for c in range(n_classes + 1):
        if c in family_of:
            p = bases[family_of[c]] + rng.normal(0, params.family_spread, 6) * scale
        else:
            p = rng.uniform(low, high)
        spectra[c] = _spectrum(wl, np.clip(p, low, high))
        for _ in range(3):
            centre, width = rng.uniform(0.45, 2.4), rng.uniform(0.03, 0.15)
            spectra[c] += rng.normal(0, params.feature_amplitude) * _gauss(wl, centre, width)
    return spectra


def synthetic_cube(gt: np.ndarray, n_bands: int = 200, seed: int = 0, families: Sequence[Sequence[int]] | None = None,
                   params: SyntheticParameters | None = None) -> np.ndarray:
    """A seeded synthetic hyperspectral cube laid out on a real ground-truth map.

    How each pixel is made (``params`` holds every number, :class:`SyntheticParameters` the defaults):

    1. Spectra: the background (class 0) and each class get a smooth reflectance curve over 0.4-2.5 um
       (:func:`_spectrum`: visible level with a green bump, red edge, NIR plateau, water absorptions at 1.4 and
       1.9 um, SWIR decline, mixed with a soil line by a vegetation fraction) plus three Gaussian features of their
       own. Classes of one family (``families``; by default :data:`INDIAN_PINES_FAMILIES` when the map has 16
       classes, else none) draw their parameters close to a shared base (``family_spread``), like the real
       corn and soybean variants.
    2. Mixing: the one-hot class maps are blurred with a Gaussian of ``border_sigma_px`` pixels and used as
       abundances, so pixels at class borders are linear mixtures of their neighbours' spectra.
    3. Within-class variability: three smooth spectral modes, each weighted per pixel by a Gaussian random field of
       correlation length ``field_sigma_px``, with std ``field_amplitude``.
    4. Illumination: each pixel is scaled by ``exp(illumination_field * smooth field + illumination_pixel * N(0, 1))``.
    5. Noise: per-pixel noise that is smooth across bands (``correlated_noise``, correlation length
       ``correlated_noise_bands`` bands) plus white noise of std ``mean reflectance / snr``.

    Neighbouring pixels therefore share a class and most of its variability while the noise is independent, so a
    per-pixel classifier errs and spatial context helps. With the defaults on Indian Pines an RBF SVM on 10 % of
    the labelled pixels reaches an overall accuracy in the range published for the real cube (see
    ``benchmarks/bench_hsi.py``). It takes well under a second for 145 x 145 x 200.

    Args:
        gt: ``(rows, cols)`` class numbers, 0 for unlabelled.
        n_bands: bands of the cube.
        seed: the random seed; the same seed gives the same cube.
        families: groups of class numbers whose spectra are alike.
        params: the generator's knobs; the defaults of :class:`SyntheticParameters` when not given.

    Returns:
        ``(rows, cols, n_bands)`` float32 reflectance.

    Raises:
        InputError: when ``gt`` is not a 2-D map of non-negative whole numbers.

    """
    # Lazy: scipy takes half a second to import, and not every job needs it here.
    from scipy.ndimage import gaussian_filter, gaussian_filter1d

    gt = np.asarray(gt)
    if gt.ndim != 2 or gt.size == 0 or gt.min() < 0 or np.any(np.mod(gt, 1) != 0):
        raise InputError("synthetic_cube needs a 2-D ground truth of non-negative class numbers.")
    params = params or SyntheticParameters()
    gt = gt.astype("int64")
    n_classes, (rows, cols) = int(gt.max()), gt.shape
    if families is None:
        families = INDIAN_PINES_FAMILIES if n_classes == 16 else ()
    rng = np.random.default_rng(seed)
    spectra = _class_spectra(n_classes, n_bands, families, params, rng)

    onehot = (gt[None] == np.arange(n_classes + 1)[:, None, None]).astype("float64")
    abundance = gaussian_filter(onehot, (0, params.border_sigma_px, params.border_sigma_px), mode="nearest")
    cube = abundance.reshape(n_classes + 1, -1).T @ spectra  # (pixels, bands)

    modes = gaussian_filter1d(rng.standard_normal((3, n_bands)), n_bands / 12, axis=1, mode="nearest")
    modes /= modes.std(axis=1, keepdims=True)
    fields = np.stack([_smooth_field(rng, (rows, cols), params.field_sigma_px).ravel() for _ in range(3)], axis=1)
    cube += params.field_amplitude * fields @ modes

    log_brightness = (params.illumination_field * _smooth_field(rng, (rows, cols), params.field_sigma_px).ravel()
                      + params.illumination_pixel * rng.standard_normal(rows * cols))
    cube *= np.exp(log_brightness)[:, None]

    correlated = gaussian_filter1d(rng.standard_normal(cube.shape), params.correlated_noise_bands, axis=1)
    cube += params.correlated_noise * correlated / correlated.std()
    cube += rng.normal(0, cube.mean() / params.snr, cube.shape)
    return cube.reshape(rows, cols, n_bands).astype("float32")


def stratified_pixel_split(gt: np.ndarray, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The usual hyperspectral protocol: per class, a random fraction of its labelled pixels to train, the rest to test.

    Each class gets ``max(1, round(train_fraction * n))`` training pixels; unlabelled pixels (0) are in neither set.

    Args:
        gt: ``(rows, cols)`` class numbers, 0 for unlabelled.
        train_fraction: share of each class's pixels for training, between 0 and 1.
        seed: the random seed.

    Returns:
        Sorted flat indices into ``gt`` of the training and of the test pixels.

    Raises:
        InputError: when ``train_fraction`` is not between 0 and 1.

    """
    if not 0 < train_fraction < 1:
        raise InputError(f"The training fraction must be between 0 and 1, got {train_fraction}.")
    flat = np.asarray(gt).ravel()
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(flat[flat > 0]):
        idx = rng.permutation(np.flatnonzero(flat == c))
        n_train = max(1, round(train_fraction * idx.size))
        train.append(idx[:n_train])
        test.append(idx[n_train:])
    if not train:
        raise InputError("The ground truth has no labelled pixels (all 0).")
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
