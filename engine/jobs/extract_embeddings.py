"""The ``extract_embeddings`` operation: an encoder applied to every patch of a raster, written as a GeoTIFF.

The encoding itself (the output grid, strips, batches, nodata and the metadata the file records) is
:mod:`engine.embeddings.encode`'s; this job checks the outputs, stacks the input files, builds the encoder and writes
the optional false-colour preview.
"""

from __future__ import annotations

from pathlib import Path

from ..core.feedback import Feedback
from ..embeddings.encode import EmbeddingResult, encode_raster, prepare_encoder
from ..embeddings.encoders import EncoderOptions
from ..embeddings.preview import write_embedding_preview
from ..io.rasters import check_writable, open_raster, streaming_env
from ..io.region import band_stack


def extract_embeddings(raster: str | list[str], output: str, encoder: str = "rcf_gaussian",
                       patch_size: int | None = None, stride: int | None = None, weights: str | None = None,
                       weights_file: str | None = None, band_map: str | None = None, architecture: str | None = None,
                       features: int = 128, batch_size: int = 64, device: str = "auto", seed: int = 0,
                       output_preview: str | None = None, feedback: Feedback | None = None) -> EmbeddingResult:
    """Encode every patch of ``raster`` with ``encoder`` and write a Float32 GeoTIFF, one band per dimension.

    Args:
        raster: the raster, or several files whose bands are stacked.
        output: the embedding GeoTIFF to write.
        encoder: a name from :data:`engine.embeddings.encoders.ENCODERS`.
        patch_size: pixels a side of each patch (default: the encoder's).
        stride: pixels between patch centres, the output cell size (default: ``patch_size``).
        weights: torchgeo weight name for a torchgeo backbone (e.g. ``SENTINEL2_ALL_MOCO``).
        weights_file: a local weights (state dict) file, read with ``weights_only=True``.
        band_map: explicit band mapping for the weights, e.g. ``"B4=3, B8=4"``.
        architecture: timm architecture name of a ``checkpoint`` encoder.
        features: number of random convolutional features.
        batch_size: patches per forward pass.
        device: ``auto``, ``cpu`` or ``cuda``.
        seed: seed of random filters and empirical patches.
        output_preview: optional RGB GeoTIFF of the embeddings' first three principal components (a false-colour
            view of the embedding raster, see :mod:`engine.embeddings.preview`).
        feedback: progress (per batch) and cancel.

    Returns:
        What was written.

    """
    feedback = feedback or Feedback()
    options = EncoderOptions(encoder, patch_size, stride, weights, weights_file, band_map, architecture, features,
                             seed)
    if output_preview:
        check_writable(output_preview)

    # GDAL's default block cache is 5 % of RAM and fills as a large raster is read: cap it, strips are read once.
    with streaming_env(), band_stack(raster) as path, open_raster(path) as src:
        built, name, patch, step, chosen = prepare_encoder(src, options, device)
        names = [d or f"band {i}" for i, d in enumerate(src.descriptions, start=1)]
        result = encode_raster(src, built, name, Path(output), patch, step, batch_size, chosen,
                               feedback.stage(0.0, 0.95 if output_preview else 1.0), raster, names)
    if output_preview:
        written = write_embedding_preview(output, output_preview, feedback=feedback.stage(0.95, 1.0))
        result.preview = str(written) if written else None
    return result
