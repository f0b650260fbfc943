"""Whole-raster prediction: windows read and classified in parallel threads, written in order, bounded memory.

Each output is first written as a tiled GeoTIFF, then copied into a Cloud-Optimized GeoTIFF with overviews under
a temporary name, and renamed only when complete.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import shutil
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.shutil import copy
from rasterio.windows import Window

from ..assess.metrics import area_estimate_lines, held_out_area_estimate
from ..core.devices import choose_device, cpu_threads
from ..core.errors import InputError, ModelFileError
from ..core.feedback import Feedback
from ..deep.package import DeepModel, is_deep, load_deep_model
from ..deep.predict import DeepWindowPredictor
from ..embeddings.encode import encode_cells, encode_raster
from ..embeddings.encoders import rebuild_encoder
from ..embeddings.features import RECIPES, compute_features
from ..embeddings.inputs import check_same_embeddings, describe_embeddings
from ..embeddings.support import aggregate_cells
from ..io.legend import write_category_names, write_paletted_style, write_ramp_style
from ..io.rasters import (
    atomic_output,
    band_nodata,
    band_scaling,
    check_writable,
    full_disk_as_output_error,
    iter_windows,
    open_raster,
    pixel_area_m2,
    read_block,
    streaming_env,
    temporary_path,
    valid_mask,
    valid_pixels,
)
from ..io.region import band_stack
from ..io.regrid import regrid_nearest
from ..probes.model_file import LoadedModel, load_model, read_manifest
from ..probes.registry import MODELS

logger = logging.getLogger(__name__)

PROBABILITY_NODATA = -1.0
#: Nodata of a value map (a similarity, a regression's quantity): NaN, which no prediction is.
VALUE_NODATA = float("nan")
#: Window of a chip model (it runs the network once per pixel: smaller windows give progress every few seconds).
DEEP_CHIP_WINDOW = 128
#: Grids a map can be written on, for a model that runs an encoder: the raster's pixels, or one per embedding cell.
OUTPUT_GRIDS = ("input", "embedding")


@dataclass
class ClassifyResult:
    """Where the maps went and how many pixels each class got."""

    output: str
    output_probability: str | None
    output_confidence: str | None
    width: int
    height: int
    class_pixels: dict[str, int]
    nodata_pixels: int
    #: Mapped and area-adjusted class shares from the model's held-out polygons (:func:`held_out_area_estimate`).
    area_estimate: dict[str, Any] | None = None
    #: The per-pixel uncertainty of a value model's map, when asked for.
    output_uncertainty: str | None = None


def output_encoding(codes: list[int]) -> tuple[str, int]:
    """The smallest data type for class ``codes`` and a nodata value that is not one of them."""
    low, high = min(codes), max(codes)
    if low >= 1 and high <= 255:
        return "uint8", 0
    if low >= 0 and high <= 254:
        return "uint8", 255
    if low >= 1 and high <= 65535:
        return "uint16", 0
    return "int32", -(2**31)


def hex_to_rgba(color: str) -> tuple[int, int, int, int]:
    """``#rrggbb`` as an opaque RGBA tuple (a colour table entry)."""
    color = color.lstrip("#")
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16), 255


def check_band_count(manifest: dict[str, Any], src: Any, raster: str) -> None:
    """Refuse a raster whose band count differs from the model's, naming the bands the model expects."""
    expected = manifest["input"]["band_count"]
    if src.count != expected:
        names = ", ".join(manifest["input"].get("band_names", []))
        raise ModelFileError(
            f"The model was trained on {expected} bands ({names}) but raster {raster} has {src.count}. "
            "Apply it to a raster with the same bands in the same order."
        )


def check_compatible(manifest: dict[str, Any], src: Any, raster: str) -> None:
    """Refuse a raster whose band count or embeddings differ from the model's, or a feature recipe unknown here."""
    recipe = manifest.get("features", {}).get("recipe")
    if recipe not in RECIPES:
        raise ModelFileError(f"The model needs features {recipe!r}, unknown to this engine: update Landprobe.")
    if recipe == "embeddings":
        try:
            source = describe_embeddings(raster)
        except InputError as exc:
            raise ModelFileError(f"The model classifies embeddings: {exc}") from None
        check_same_embeddings(manifest["features"]["embedding"], source, raster)
        return
    check_band_count(manifest, src, raster)
    check_scaling(manifest["features"], src, raster)


def check_scaling(recipe: dict[str, Any], src: Any, raster: str) -> None:
    """Warn when the raster's scale and offset tags differ from those the model recorded (the model's apply)."""
    if recipe.get("recipe") not in ("raw_bands", "raw_bands+indices"):
        return
    tags = band_scaling(src)
    recorded = (list(recipe["scales"]), list(recipe["offsets"])) if "scales" in recipe else None
    if tags == recorded:
        return
    if recorded is None:
        logger.warning("Raster %s has scale and offset tags, but the model was trained on values as stored (by an "
                       "older Landprobe): the values are used as stored.", raster)
    else:
        logger.warning("The scale and offset tags of raster %s differ from those the model was trained with: the "
                       "model's are applied. Retrain if the raster's are right.", raster)


class WindowPredictor:
    """Reads a window and predicts it; safe to call from several threads (one dataset handle per thread)."""

    def __init__(self, raster: str, model: LoadedModel, want_proba: bool) -> None:
        self._raster = raster
        self._model = model
        self._codes = np.array([c["code"] for c in model.manifest["classes"]])
        self._want_proba = want_proba
        self._recipe = model.manifest["features"]
        self._nodata = self._recipe.get("embedding", {}).get("nodata")  # overrides the file's (AlphaEarth's -128)
        self._local = threading.local()
        self._handles: list[Any] = []
        self._lock = threading.Lock()

    def _src(self) -> Any:
        src = getattr(self._local, "src", None)
        if src is None:
            src = self._local.src = open_raster(self._raster)
            with self._lock:
                self._handles.append(src)
        return src

    def __call__(self, window: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Class index per pixel (-1 for nodata) and, when asked for, class probabilities (classes, rows, cols)."""
        src = self._src()
        data = read_block(src, window)
        valid = valid_mask(data, band_nodata(src) if self._nodata is None else self._nodata)
        index = np.full(valid.shape, -1, dtype="int32")
        proba_block = None
        if self._want_proba:
            proba_block = np.full((len(self._codes), *valid.shape), PROBABILITY_NODATA, dtype="float32")
        if valid.any():
            classes, proba = self._model.probe.predict(compute_features(valid_pixels(data, valid), self._recipe),
                                                      proba=self._want_proba)
            index[valid] = classes
            if proba_block is not None and proba is not None:
                proba_block[:, valid] = proba.T
        return index, proba_block

    def close(self) -> None:
        """Close the datasets the threads opened."""
        for src in self._handles:
            src.close()


class EncoderWindowPredictor:
    """Predicts a window of a raster with a model that runs an encoder, as *Classify raster* maps it on the input grid.

    The embedding cells covering the window get the values a whole-raster encode gives them
    (:func:`engine.embeddings.encode.encode_cells`), are classified, and each pixel takes the class and probabilities
    of the cell it lies in: what the nearest-neighbour resampling of the map made on the embedding grid gives. Cells
    on a window's edge are encoded again by the next window (a few percent more work, no state between windows).
    """

    def __init__(self, raster: str, model: LoadedModel, want_proba: bool, device: str, batch_size: int = 64) -> None:
        spec = model.manifest["features"]["encoder"]
        self._built = rebuild_encoder(spec["name"], spec, model.encoder_arrays)
        self._patch, self._step = int(spec["patch_size"]), int(spec["stride"])
        self._raster, self._model, self._want_proba = raster, model, want_proba
        self._device, self._batch_size = device, batch_size
        self._codes = np.array([c["code"] for c in model.manifest["classes"]])
        self._src: Any = None

    def _encode(self, window: Any) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """The embedding cells covering ``window``, which of them hold values, and each pixel's cell (an index)."""
        if self._src is None:
            self._src = open_raster(self._raster)
        step = self._step
        row0, col0, height, width = int(window.row_off), int(window.col_off), int(window.height), int(window.width)
        cells = (row0 // step, -(-(row0 + height) // step), col0 // step, -(-(col0 + width) // step))
        data = encode_cells(self._src, self._built, self._patch, step, cells, self._batch_size, self._device)
        rows = np.arange(row0, row0 + height) // step - cells[0]
        cols = np.arange(col0, col0 + width) // step - cells[2]
        return data, ~np.isnan(data).any(axis=0), np.ix_(rows, cols)

    def __call__(self, window: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Class index per pixel (-1 where the cell is nodata) and, when asked for, class probabilities."""
        data, valid, pixels = self._encode(window)
        index = np.full(valid.shape, -1, dtype="int32")
        proba_cells = np.full((len(self._codes), *valid.shape), PROBABILITY_NODATA, dtype="float32")
        if valid.any():
            features = compute_features(valid_pixels(data, valid), self._model.manifest["features"])
            classes, proba = self._model.probe.predict(features, proba=self._want_proba)
            index[valid] = classes
            if proba is not None:
                proba_cells[:, valid] = proba.T
        return index[pixels], proba_cells[(slice(None), *pixels)] if self._want_proba else None

    def close(self) -> None:
        """Close the raster."""
        if self._src is not None:
            self._src.close()


class EncoderValuePredictor(EncoderWindowPredictor):
    """A value model with its encoder, window by window (Map region), as :class:`EncoderWindowPredictor` classifies.

    Each pixel takes its embedding cell's value and, when asked for, its uncertainty (NaN where the cell is nodata).
    """

    def __init__(self, raster: str, model: LoadedModel, device: str, want_spread: bool = False) -> None:
        super().__init__(raster, model, False, device)
        self._want_spread = want_spread

    def __call__(self, window: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """The value of each pixel (float32, NaN for nodata) and its uncertainty (or ``None``)."""
        data, valid, pixels = self._encode(window)
        values = np.full(valid.shape, np.nan, dtype="float32")
        spread = np.full(valid.shape, np.nan, dtype="float32")
        if valid.any():
            features = compute_features(valid_pixels(data, valid), self._model.manifest["features"])
            probe = self._model.probe
            if self._want_spread:
                values[valid], spread[valid] = probe.predict_value_and_spread(features)
            else:
                values[valid] = probe.predict_value(features)
        return values[pixels], spread[pixels] if self._want_spread else None


def is_value_model(manifest: dict[str, Any]) -> bool:
    """Whether the model maps a value per pixel (a similarity, a quantity) rather than a class."""
    return manifest.get("target") == "value"


class ValueWindowPredictor(WindowPredictor):
    """Reads a window and gives each valid pixel the model's value (NaN elsewhere); safe from several threads.

    A model trained with polygon support (``support`` in its manifest) maps cells of its ``cell_px`` pixels a side
    on a grid from the raster's origin: a window is read out to whole cells, each cell's pixel features aggregated
    (:func:`engine.embeddings.support.aggregate_cells`) and its value given to every valid pixel in it, so that
    windows and Map region's blocks give the same map.
    """

    def __init__(self, raster: str, model: LoadedModel, want_spread: bool = False) -> None:
        super().__init__(raster, model, want_proba=False)
        self._want_spread = want_spread
        support = model.manifest.get("support") or {}
        self._cell = int(support["cell_px"]) if support.get("kind") == "polygon" else 0

    def _predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        probe = self._model.probe
        return probe.predict_value_and_spread(features) if self._want_spread else (probe.predict_value(features), None)

    def __call__(self, window: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """The value of each pixel (float32, NaN for nodata) and, when asked for, its uncertainty (or ``None``).

        The uncertainty is the probe's :meth:`~engine.probes.regressors.Regressor.predict_spread`, NaN for nodata.
        """
        if self._cell:
            return self._cells(window)
        src = self._src()
        data = read_block(src, window)
        valid = valid_mask(data, band_nodata(src) if self._nodata is None else self._nodata)
        values = np.full(valid.shape, np.nan, dtype="float32")
        spread = np.full(valid.shape, np.nan, dtype="float32") if self._want_spread else None
        if valid.any():
            values[valid], cell_spread = self._predict(compute_features(valid_pixels(data, valid), self._recipe))
            if spread is not None:
                spread[valid] = cell_spread
        return values, spread

    def _cells(self, window: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`__call__` for polygon support: the window read out to whole cells, a value per cell."""
        src, cell = self._src(), self._cell
        col, row, width, height = (int(v) for v in (window.col_off, window.row_off, window.width, window.height))
        col0, row0 = col // cell * cell, row // cell * cell
        col1 = min(src.width, -(-(col + width) // cell) * cell)
        row1 = min(src.height, -(-(row + height) // cell) * cell)
        data = read_block(src, Window(col0, row0, col1 - col0, row1 - row0))
        valid = valid_mask(data, band_nodata(src) if self._nodata is None else self._nodata)
        inside = (slice(row - row0, row - row0 + height), slice(col - col0, col - col0 + width))
        values = np.full((height, width), np.nan, dtype="float32")
        spread = np.full((height, width), np.nan, dtype="float32") if self._want_spread else None
        if not valid[inside].any():
            return values, spread
        pixels = compute_features(valid_pixels(data, valid), self._recipe)
        rows, cols = -(-valid.shape[0] // cell) * cell, -(-valid.shape[1] // cell) * cell  # whole cells, NaN-padded
        features = np.full((pixels.shape[1], rows, cols), np.nan, dtype="float32")
        features[:, :valid.shape[0], :valid.shape[1]][:, valid] = pixels.T
        aggregated, ok = aggregate_cells(features, cell, valid.shape)
        cell_values = np.full(ok.shape, np.nan, dtype="float32")
        cell_spread = np.full(ok.shape, np.nan, dtype="float32")
        if ok.any():
            cell_values[ok], predicted_spread = self._predict(aggregated[ok])
            if predicted_spread is not None:
                cell_spread[ok] = predicted_spread
        keep = valid[inside]  # a nodata pixel stays nodata inside a mapped cell

        def expand(per_cell: np.ndarray) -> np.ndarray:
            return np.repeat(np.repeat(per_cell, cell, axis=0), cell, axis=1)[inside]

        values[keep] = expand(cell_values)[keep]
        if spread is not None:
            spread[keep] = expand(cell_spread)[keep]
        return values, spread


def to_cog(work: Path, target: Path, resampling: str, threads: int | None = None) -> None:
    """Copy a tiled GeoTIFF (or a VRT) into a Cloud-Optimized GeoTIFF with overviews, streaming.

    ``threads``: GDAL's compression threads (default: every core; a Dask worker passes its own share, so that two
    workers do not each compress on every core while the other predicts).
    """
    copy(work, target, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=512, OVERVIEW_RESAMPLING=resampling,
         BIGTIFF="IF_SAFER", NUM_THREADS=str(threads) if threads else "ALL_CPUS")


def classify_raster(raster: str | list[str], model: str, output: str, output_probability: str | None = None,
                    output_confidence: str | None = None, output_grid: str = "input", grid_raster: str | None = None,
                    feedback: Feedback | None = None, block: int = 512,
                    threads: int | None = None, output_uncertainty: str | None = None) -> ClassifyResult:
    """Apply a model file to every valid pixel of ``raster``.

    Args:
        raster: the raster to classify (the model's bands, in the same order; a model trained on some bands of a
            raster picks the same bands), or several files whose bands are stacked in order; for a model trained on
            an embedding raster, an embedding raster of the same kind.
        model: a ``.lpmodel`` file.
        output: GeoTIFF of class codes on the input's grid and CRS, nodata where any input band is nodata, with a
            colour table, category names (``.aux.xml``) and a QGIS style (``.qml``).
        output_probability: optional Float32 GeoTIFF with one band per class (band descriptions are class names).
        output_confidence: optional Float32 GeoTIFF with the probability of the mapped class.
        output_grid: for a model that runs an encoder, ``input`` (the raster's pixels, each taking its embedding
            cell's class) or ``embedding`` (one pixel per embedding cell).
        grid_raster: put the maps on this raster's grid instead (nearest neighbour), e.g. a raw raster under an
            embedding raster.
        feedback: progress and cancel (checked once per window).
        block: window size in pixels.
        threads: threads reading and predicting windows (default: all cores).
        output_uncertainty: for a model that maps a value with a spread (a random forest or k-NN regressor from
            *Train regressor*), an optional Float32 GeoTIFF of each pixel's uncertainty in the value's unit (the
            standard deviation of the trees' predictions or of the neighbours' values), NaN where the input is nodata.

    Returns:
        The paths written, the pixel count of each class, and the area-adjusted class shares that the model's
        held-out confusion matrix gives for this map (indicative: see :func:`held_out_area_estimate`).

    """
    manifest = read_manifest(model)
    if is_value_model(manifest) and (output_probability or output_confidence):
        raise InputError(f"Model {model} maps a value ({manifest.get('value', {}).get('name', 'value')}), not "
                         "classes: it has no class probabilities or confidence. Leave those outputs empty.")
    if output_uncertainty:
        check_uncertainty(manifest, model)
        if os.path.normcase(Path(output_uncertainty).resolve()) == os.path.normcase(Path(output).resolve()):
            raise InputError(f"The uncertainty would overwrite the map ({output}): give it another file name.")
        check_writable(output_uncertainty)
    result = _classify_raster(raster, model, manifest, output, output_probability, output_confidence, output_grid,
                              grid_raster, feedback, block, threads, output_uncertainty)
    result.area_estimate = _area_estimate(result, manifest)
    if result.area_estimate:
        logger.info("Class shares of the map, adjusted by the model's held-out confusion matrix (Olofsson et al. "
                    "2014; indicative, the polygons are not a random sample: Assess accuracy with a random sample "
                    "gives the unbiased estimate):")
        for line in area_estimate_lines(result.area_estimate):
            logger.info("  %s", line)
    return result


def check_uncertainty(manifest: dict[str, Any], model: str) -> None:
    """Refuse an uncertainty output for a model that cannot give one, in one sentence, before any work.

    Raises:
        InputError: for a class model, or a value model without a per-pixel spread (ridge, XGBoost, a similarity).

    """
    if not is_value_model(manifest):
        raise InputError(f"Model {model} maps classes: the uncertainty output is for models from Train regressor. "
                         "Ask for Confidence instead (the probability of the mapped class), or leave it empty.")
    probe = MODELS.get(str(manifest.get("method")))
    if getattr(probe, "spread", None) is None:
        label = getattr(probe, "label", manifest.get("method"))
        raise InputError(f"Model {model} ({label}) gives no per-pixel uncertainty: train it with the random "
                         "forest or k-nearest neighbours regressor to get one, or leave the uncertainty output "
                         "empty.")


def _area_estimate(result: ClassifyResult, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """:func:`held_out_area_estimate` for the map just written; ``None`` without a usable held-out matrix."""
    validation = manifest.get("validation")
    if not isinstance(validation, dict) or validation.get("confusion_matrix") is None:
        return None
    with open_raster(result.output) as dst:
        area = pixel_area_m2(dst)
    names = [c["name"] for c in manifest["classes"]]
    try:
        return held_out_area_estimate(validation, names, [result.class_pixels.get(n, 0) for n in names], area)
    except (TypeError, ValueError) as exc:  # a matrix this engine did not write: no estimate, the map stands
        logger.warning("No area-adjusted class shares: the model's held-out confusion matrix is unusable (%s).", exc)
        return None


def _classify_raster(raster: str | list[str], model: str, manifest: dict[str, Any], output: str,
                     output_probability: str | None, output_confidence: str | None, output_grid: str,
                     grid_raster: str | None, feedback: Feedback | None, block: int,
                     threads: int | None, output_uncertainty: str | None = None) -> ClassifyResult:
    """:func:`classify_raster` without the area estimate."""
    if output_grid not in OUTPUT_GRIDS:
        raise InputError(f"Unknown output grid {output_grid!r}; choose one of: {', '.join(OUTPUT_GRIDS)}.")
    feedback = feedback or Feedback()
    outputs = {"class": output, "probability": output_probability, "confidence": output_confidence}
    for path_ in filter(None, outputs.values()):
        check_writable(path_)  # before any work, also when the maps are first made elsewhere
    # GDAL's default block cache is 5 % of RAM: cap it, the windows are read once anyway.
    selection = manifest.get("input", {}).get("band_selection")  # the bands the model was trained on
    with streaming_env(), band_stack(raster, selection) as path:
        if is_deep(manifest):
            return _classify_deep(path, model, outputs, feedback, block)
        loaded = load_model(model)
        with open_raster(path) as src:
            check_compatible(loaded.manifest, src, path)
        if is_value_model(loaded.manifest):
            if loaded.manifest["features"]["recipe"] != "encoder":
                return _map_values(path, loaded, output, feedback, block, threads, output_uncertainty)
            return _map_values_encoded(path, loaded, output, output_uncertainty, grid_raster or (
                path if output_grid == "input" else None), feedback, block, threads)
        encoder = loaded.manifest["features"]["recipe"] == "encoder"
        target = grid_raster or (path if encoder and output_grid == "input" else None)
        if not encoder and target is None:
            return _classify(path, loaded, outputs, feedback, block, threads)
        with tempfile.TemporaryDirectory(prefix="landprobe-classify-") as folder:
            source = path
            if encoder:
                source = str(Path(folder) / "embeddings.tif")
                _encode_with_model(path, loaded, source, feedback.stage(0.0, 0.6))
                feedback = feedback.stage(0.6, 1.0)
            if target is None:
                return _classify(source, loaded, outputs, feedback, block, threads)
            staged = {k: str(Path(folder) / f"{k}.tif") if p else None for k, p in outputs.items()}
            result = _classify(source, loaded, staged, feedback.stage(0.0, 0.7), block, threads)
            return _regrid_outputs(result, staged, outputs, target, loaded, feedback.stage(0.7, 1.0))


def _map_values_encoded(raster: str, loaded: LoadedModel, output: str, output_uncertainty: str | None,
                        target: str | None, feedback: Feedback, block: int, threads: int | None) -> ClassifyResult:
    """A value model with its encoder: the embeddings of ``raster``, the values on their grid, then on ``target``'s.

    ``target`` (the raster's own grid by default, or the grid raster) takes each pixel's embedding cell's value
    (nearest); without one the maps stay on the embedding grid.
    """
    with tempfile.TemporaryDirectory(prefix="landprobe-classify-") as folder:
        source = str(Path(folder) / "embeddings.tif")
        _encode_with_model(raster, loaded, source, feedback.stage(0.0, 0.6))
        if target is None:
            return _map_values(source, loaded, output, feedback.stage(0.6, 1.0), block, threads, output_uncertainty)
        staged = {"value": str(Path(folder) / "value.tif"),
                  "uncertainty": str(Path(folder) / "uncertainty.tif") if output_uncertainty else None}
        result = _map_values(source, loaded, staged["value"], feedback.stage(0.6, 0.8), block, threads,
                             staged["uncertainty"])
        finals = {"value": output, "uncertainty": output_uncertainty}
        keys = [k for k, p in staged.items() if p]
        with contextlib.ExitStack() as stack:  # both renamed into place at the end, or neither
            tmps = {k: stack.enter_context(atomic_output(str(finals[k]))) for k in keys}
            for i, key in enumerate(keys):
                work = Path(str(staged[key]) + ".regrid.tif")
                regrid_nearest(Path(str(staged[key])), target, work, feedback.stage(
                    0.8 + 0.2 * i / len(keys), 0.8 + 0.2 * (i + 1) / len(keys)))
                feedback.check_cancel()  # the copy below is one long step
                to_cog(work, tmps[key], "AVERAGE")
                shutil.copyfile(Path(str(staged[key])).with_suffix(".qml"), tmps[key].with_suffix(".qml"))
        with open_raster(output) as dst:
            result.width, result.height = dst.width, dst.height
    result.output, result.output_uncertainty = output, output_uncertainty
    logger.info("Resampled the maps onto the grid of %s (nearest neighbour).", target)
    return result


def _encode_with_model(raster: str, loaded: LoadedModel, output: str, feedback: Feedback) -> None:
    """Compute the embeddings of ``raster`` with the encoder stored in the model."""
    spec = loaded.manifest["features"]["encoder"]
    built = rebuild_encoder(spec["name"], spec, loaded.encoder_arrays)
    with open_raster(raster) as src:
        names = [d or f"band {i}" for i, d in enumerate(src.descriptions, start=1)]
        encode_raster(src, built, spec["name"], Path(output), int(spec["patch_size"]), int(spec["stride"]), 64,
                      choose_device("auto"), feedback, raster, names)


def _regrid_outputs(result: ClassifyResult, staged: dict[str, str | None], finals: dict[str, str | None],
                    target: str, loaded: LoadedModel, feedback: Feedback) -> ClassifyResult:
    """Resample the maps made on the embedding grid onto ``target``'s grid (nearest) and write them as COGs."""
    classes = loaded.manifest["classes"]
    codes = [int(c["code"]) for c in classes]
    keys = [k for k, p in staged.items() if p]
    for i, key in enumerate(keys):
        work = Path(str(staged[key]) + ".regrid.tif")
        part = feedback.stage(i / len(keys), (i + 1) / len(keys))
        counts = regrid_nearest(Path(str(staged[key])), target, work, part,
                                count_classes=codes if key == "class" else None)
        final = str(finals[key])
        feedback.check_cancel()  # the copy below is one long step
        with atomic_output(final) as tmp:
            to_cog(work, tmp, "NEAREST" if key == "class" else "AVERAGE")
            if key != "class":
                write_ramp_style(tmp.with_suffix(".qml"))
        if counts is not None:
            result.class_pixels = {c["name"]: int(n) for c, n in zip(classes, counts, strict=True)}
            with open_raster(final) as dst:
                result.width, result.height = dst.width, dst.height
                result.nodata_pixels = dst.width * dst.height - int(counts.sum())
            _, nodata = output_encoding(codes)
            write_category_names(Path(final + ".aux.xml"), classes, nodata)
            write_paletted_style(Path(final).with_suffix(".qml"), classes)
    result.output, result.output_probability, result.output_confidence = (finals["class"], finals["probability"],
                                                                           finals["confidence"])
    logger.info("Resampled the maps onto the grid of %s (nearest neighbour).", target)
    return result


def _classify_deep(raster: str, model: str, outputs: dict[str, str | None], feedback: Feedback,
                   block: int) -> ClassifyResult:
    """:func:`classify_raster` with a deep model (see :mod:`engine.deep.predict`)."""
    device = choose_device("auto")
    deep = load_deep_model(model, device)
    with open_raster(raster) as src:
        check_band_count(deep.manifest, src, raster)
    logger.info("Classifying with the %s %s network on %s.", deep.spec.task, deep.spec.backbone, device)
    return _classify(raster, deep, outputs, feedback,
                     block if deep.spec.task == "segmentation" else min(block, DEEP_CHIP_WINDOW), 1)


def _classify(raster: str, loaded: LoadedModel | DeepModel, outputs: dict[str, str | None], feedback: Feedback,
              block: int, threads: int | None) -> ClassifyResult:
    """:func:`classify_raster` on one raster file, on its own grid."""
    # Lazy: only the parallel folds need it.
    from threadpoolctl import threadpool_limits

    classes = loaded.manifest["classes"]
    codes = np.array([c["code"] for c in classes])
    dtype, nodata = output_encoding(codes.tolist())
    counts = np.zeros(len(classes), dtype="int64")
    nodata_pixels = 0
    threads = threads or cpu_threads()
    with open_raster(raster) as src:
        n_bands = src.count
        base = {"driver": "GTiff", "width": src.width, "height": src.height, "crs": src.crs,
                "transform": src.transform, "tiled": True, "blockxsize": 256, "blockysize": 256,
                "compress": "deflate", "BIGTIFF": "IF_SAFER"}
        windows = list(iter_windows(src.width, src.height, block))
    want_proba = bool(outputs["probability"] or outputs["confidence"])
    predictor: Any
    if isinstance(loaded, LoadedModel):
        loaded.probe.set_threads(1)  # parallelism comes from the window threads
        # One prediction in this thread first: the BLAS library allocates its buffers once, not in racing threads.
        warm_up = np.ones((2, n_bands), dtype="float32")
        loaded.probe.predict(compute_features(warm_up, loaded.manifest["features"]))
        predictor = WindowPredictor(raster, loaded, want_proba)
    else:  # torch parallelises inside each window; a reader thread keeps the next window ready

        predictor = DeepWindowPredictor(raster, loaded, want_proba, str(next(loaded.network.parameters()).device),
                                        feedback)
    with contextlib.ExitStack() as stack:
        finals = {k: stack.enter_context(atomic_output(p)) for k, p in outputs.items() if p}
        works = {k: temporary_path(p) for k, p in finals.items()}
        stack.callback(lambda: [w.unlink(missing_ok=True) for w in works.values()])
        stack.enter_context(full_disk_as_output_error(*(Path(p) for p in outputs.values() if p)))
        profiles = {"class": base | {"count": 1, "dtype": dtype, "nodata": nodata},
                    "probability": base | {"count": len(classes), "dtype": "float32", "nodata": PROBABILITY_NODATA},
                    "confidence": base | {"count": 1, "dtype": "float32", "nodata": PROBABILITY_NODATA}}
        dsts = {k: stack.enter_context(rasterio.open(w, "w", **profiles[k])) for k, w in works.items()}
        if dtype != "int32":  # the colour table must be set before any pixel is written
            dsts["class"].write_colormap(1, {c["code"]: hex_to_rgba(c["color"]) for c in classes})
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="landprobe")
        # Callbacks run last-in first-out: stop the threads before closing the datasets they read.
        stack.callback(predictor.close)
        stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        if isinstance(loaded, LoadedModel):  # one BLAS thread per window thread (torch keeps its own)
            stack.enter_context(threadpool_limits(limits=1))
        pending: collections.deque[tuple[Any, Future[Any]]] = collections.deque()
        todo = iter(windows)
        for i in range(len(windows)):
            while len(pending) < 2 * threads:  # bounded look-ahead keeps memory flat
                win = next(todo, None)
                if win is None:
                    break
                pending.append((win, pool.submit(predictor, win)))
            feedback.check_cancel()
            win, future = pending.popleft()
            index, proba = future.result()
            valid = index >= 0
            out = np.full(index.shape, nodata, dtype=dtype)
            out[valid] = codes[index[valid]]
            counts += np.bincount(index[valid], minlength=len(classes))
            nodata_pixels += int((~valid).sum())
            dsts["class"].write(out, 1, window=win)
            if "probability" in dsts:
                dsts["probability"].write(proba, window=win)
            if "confidence" in dsts:
                confidence = np.take_along_axis(proba, np.maximum(index, 0)[None], axis=0)[0]
                dsts["confidence"].write(np.where(valid, confidence, PROBABILITY_NODATA), 1, window=win)
            feedback.progress(0.9 * (i + 1) / len(windows), f"Classifying window {i + 1} of {len(windows)}")
        dsts["class"].update_tags(1, **{f"CLASS_{c['code']}": c["name"] for c in classes})
        dsts["class"].set_band_description(1, f"class ({loaded.manifest.get('field', 'class')})")
        for band, c in enumerate(classes, start=1):
            if "probability" in dsts:
                dsts["probability"].set_band_description(band, f"probability of {c['name']}")
        if "confidence" in dsts:
            dsts["confidence"].set_band_description(1, "confidence (probability of the mapped class)")
        for dst in dsts.values():
            dst.close()
        feedback.progress(0.92, "Writing Cloud-Optimized GeoTIFFs with overviews")
        for key, work in works.items():
            feedback.check_cancel()
            to_cog(work, finals[key], "NEAREST" if key == "class" else "AVERAGE")
            if key != "class":  # probabilities and confidence: 0..1 on a ramp
                write_ramp_style(finals[key].with_suffix(".qml"))
        write_category_names(Path(str(finals["class"]) + ".aux.xml"), classes, nodata)
        write_paletted_style(finals["class"].with_suffix(".qml"), classes)
    feedback.progress(1.0, "Done")
    result = ClassifyResult(output=str(Path(str(outputs["class"]))), output_probability=outputs["probability"],
                            output_confidence=outputs["confidence"], width=base["width"], height=base["height"],
                            class_pixels={c["name"]: int(n) for c, n in zip(classes, counts, strict=True)},
                            nodata_pixels=nodata_pixels)
    logger.info("Wrote %s: %s.", result.output, ", ".join(f"{k} {v} px" for k, v in result.class_pixels.items()))
    return result


def _map_values(raster: str, loaded: LoadedModel, output: str, feedback: Feedback, block: int,
                threads: int | None, output_uncertainty: str | None = None) -> ClassifyResult:
    """:func:`classify_raster` with a value model: one float32 band on a ramp, NaN where the input is nodata.

    When asked for, also the per-pixel uncertainty (:func:`check_uncertainty` has checked the model gives one).
    """
    # Lazy: as in _classify.
    from threadpoolctl import threadpool_limits

    value = loaded.manifest.get("value", {})
    unit = f" ({value['unit']})" if value.get("unit") else ""
    threads = threads or cpu_threads()
    loaded.probe.set_threads(1)
    predictor = ValueWindowPredictor(raster, loaded, want_spread=bool(output_uncertainty))
    with open_raster(raster) as src:
        profile = {"driver": "GTiff", "width": src.width, "height": src.height, "crs": src.crs,
                   "transform": src.transform, "tiled": True, "blockxsize": 256, "blockysize": 256, "count": 1,
                   "dtype": "float32", "nodata": VALUE_NODATA, "BIGTIFF": "IF_SAFER"}
        windows = list(iter_windows(src.width, src.height, block))
    nodata_pixels = 0
    spread_sample: list[np.ndarray] = []  # every 16th valid pixel's spread: the uncertainty ramp's range
    targets = [Path(output)] + ([Path(output_uncertainty)] if output_uncertainty else [])
    with contextlib.ExitStack() as stack:
        finals = [stack.enter_context(atomic_output(t)) for t in targets]
        works = [temporary_path(f) for f in finals]
        for work in works:
            stack.callback(work.unlink, missing_ok=True)
        stack.enter_context(full_disk_as_output_error(Path(output)))
        dsts = [stack.enter_context(rasterio.open(work, "w", **profile)) for work in works]
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="landprobe")
        stack.callback(predictor.close)
        stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        # one BLAS thread per window thread: also the sums Map region's single-threaded workers make, bit for bit
        stack.enter_context(threadpool_limits(limits=1))
        pending: collections.deque[tuple[Any, Future[Any]]] = collections.deque()
        todo = iter(windows)
        for i in range(len(windows)):
            while len(pending) < 2 * threads:  # bounded look-ahead keeps memory flat
                nxt = next(todo, None)
                if nxt is None:
                    break
                pending.append((nxt, pool.submit(predictor, nxt)))
            feedback.check_cancel()
            win, future = pending.popleft()
            values, spread = future.result()
            nodata_pixels += int(np.isnan(values).sum())
            dsts[0].write(values, 1, window=win)
            if spread is not None:
                dsts[1].write(spread, 1, window=win)
                spread_sample.append(spread[np.isfinite(spread)][::16])
            feedback.progress(0.9 * (i + 1) / len(windows), f"Mapping window {i + 1} of {len(windows)}")
        dsts[0].set_band_description(1, value.get("name", "value") + unit)
        spread_words = getattr(loaded.probe, "spread", None) or "spread"
        if output_uncertainty:
            dsts[1].set_band_description(1, f"uncertainty of {value.get('name', 'value')}{unit}: {spread_words}")
        for dst in dsts:
            dst.close()
        feedback.progress(0.92, "Writing Cloud-Optimized GeoTIFFs with overviews")
        for work, final in zip(works, finals, strict=True):
            feedback.check_cancel()
            to_cog(work, final, "AVERAGE")
        write_ramp_style(finals[0].with_suffix(".qml"), *value.get("range", (0.0, 1.0)))
        if output_uncertainty:
            sample = np.concatenate(spread_sample) if spread_sample else np.zeros(0, dtype="float32")
            top = float(np.percentile(sample, 98)) if len(sample) else 1.0
            write_ramp_style(finals[1].with_suffix(".qml"), 0.0, top if top > 0 else 1.0)
            logger.info("Wrote the uncertainty of %s to %s: %s%s, median %.4g, 98th percentile %.4g.",
                        value.get("name", "value"), output_uncertainty, spread_words, unit,
                        float(np.median(sample)) if len(sample) else float("nan"), top)
    feedback.progress(1.0, "Done")
    return ClassifyResult(output=str(output), output_probability=None, output_confidence=None,
                          width=profile["width"], height=profile["height"], class_pixels={},
                          nodata_pixels=nodata_pixels, output_uncertainty=output_uncertainty)
