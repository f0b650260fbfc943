"""The engine's command line, usable without QGIS.

Examples::

    python -m engine train --raster scene.tif --labels labels.gpkg --field class --output-model m.lpmodel
    python -m engine classify --raster scene.tif --model m.lpmodel --output classes.tif
    python -m engine finetune --raster scene.tif --labels labels.gpkg --field class --output-model d.lpmodel
    python -m engine status
    python -m engine worker            # one JSON job on stdin, JSON events on stdout (used by the QGIS plugin)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
from typing import Any

from .core.errors import CancelledError, LandprobeError, user_fault
from .core.feedback import ThrottledFeedback
from .core.workspace import job_workspace


class _ConsoleFeedback(ThrottledFeedback):
    """Progress as lines on standard error, at most one a second unless the message changes."""

    def __init__(self) -> None:
        super().__init__(interval=1.0)

    def emit_progress(self, fraction: float, message: str | None) -> None:
        print(f"[{fraction * 100:3.0f}%] {message or ''}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    from .assess.selection import AUTO, CLASS_WEIGHT_CHOICES, DEFAULT_OBJECTIVE, OBJECTIVES
    from .embeddings.sources import FEATURE_SOURCES
    from .jobs.classify_raster import OUTPUT_GRIDS
    from .probes.registry import PROBES
    from .samples.validation import SCHEMES

    parser = argparse.ArgumentParser(prog="landprobe", description="Landprobe engine: classify rasters.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run one JSON job from stdin, write JSON events to stdout").add_argument(
        "--stdin-control", action="store_true", help="cancel on a 'cancel' line or at the end of stdin")
    sub.add_parser("ping", help="answer at once (start-up check)")
    sub.add_parser("status", help="versions and compute devices")
    train = sub.add_parser("train", help="train a classifier on labelled polygons")
    train.add_argument("--raster", required=True, nargs="+", help="a raster, or several whose bands are stacked")
    train.add_argument("--labels", required=True)
    train.add_argument("--field", required=True)
    train.add_argument("--method", default=AUTO, choices=[AUTO, *sorted(PROBES)],
                       help="a probe, or auto (default): chosen by cross-validation on the training polygons")
    train.add_argument("--objective", default=DEFAULT_OBJECTIVE, choices=list(OBJECTIVES),
                       help="what the automatic choice maximises (default overall_accuracy)")
    train.add_argument("--class-weight", default=AUTO, choices=list(CLASS_WEIGHT_CHOICES),
                       help="weight classes by inverse frequency (balanced), not (none), or choose by "
                       "cross-validation (auto, default)")
    train.add_argument("--output-model", required=True)
    train.add_argument("--output-report")
    train.add_argument("--validation", default="polygon_groups", choices=list(SCHEMES))
    train.add_argument("--n-folds", type=int, default=5)
    train.add_argument("--max-samples-per-class", type=int, default=20_000)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--indices", action="store_true", help="add spectral indices (needs band roles)")
    train.add_argument("--band-roles", help="band roles such as 'red=3, nir=4' where band names do not say")
    train.add_argument("--features", default="raw_bands", choices=list(FEATURE_SOURCES),
                       help="raw bands, an embedding raster (--raster is one), or an encoder run on the fly")
    _encoder_arguments(train)
    train.add_argument("--min-coverage", type=float, default=0.5,
                       help="share of an embedding cell one class must cover (default 0.5)")
    train.add_argument("--learning-curve", action="store_true",
                       help="report accuracy for 5, 10, 25, 50 and all labelled samples per class")
    train.add_argument("--bands", type=int, nargs="+", help="train on these bands only (1-based), e.g. 1 2 3 4 5 7")
    classify = sub.add_parser("classify", help="classify a raster with a model file")
    classify.add_argument("--raster", required=True, nargs="+", help="a raster, or several stacked as at training")
    classify.add_argument("--model", required=True)
    classify.add_argument("--output", required=True)
    classify.add_argument("--output-probability")
    classify.add_argument("--output-confidence")
    classify.add_argument("--output-grid", default="input", choices=list(OUTPUT_GRIDS),
                          help="for an encoder model: map on the raster's pixels or one pixel per embedding cell")
    classify.add_argument("--grid-raster", help="put the map on this raster's grid (nearest neighbour)")
    embed = sub.add_parser("embed", help="write an embedding raster with an encoder")
    embed.add_argument("--raster", required=True, nargs="+", help="a raster, or several whose bands are stacked")
    embed.add_argument("--output", required=True)
    _encoder_arguments(embed)
    embed.add_argument("--features", type=int, default=128, help="random convolutional features")
    embed.add_argument("--batch-size", type=int, default=64)
    embed.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    embed.add_argument("--seed", type=int, default=0)
    embed.add_argument("--output-preview", help="RGB GeoTIFF of the first three principal components")
    _finetune_parser(sub)
    polygons = sub.add_parser("label-polygons", help="a class raster (ground truth) as polygons to train on")
    polygons.add_argument("--raster", required=True)
    polygons.add_argument("--output", required=True, help="GeoPackage to write")
    polygons.add_argument("--unlabelled", type=int, default=0, help="code of unlabelled pixels (default 0)")
    mat = sub.add_parser("import-mat", help="a MATLAB .mat cube or ground truth as a GeoTIFF")
    mat.add_argument("--mat", required=True)
    mat.add_argument("--output", required=True)
    mat.add_argument("--key", help="the variable to read when the file holds several")
    onnx = sub.add_parser("export-onnx", help="write a deep model as ONNX, checked against PyTorch")
    onnx.add_argument("--model", required=True)
    onnx.add_argument("--output", required=True)
    assess = sub.add_parser("assess", help="assess a classified raster against reference polygons")
    assess.add_argument("--classified", required=True)
    assess.add_argument("--reference", required=True)
    assess.add_argument("--field", required=True)
    assess.add_argument("--output-report", required=True)
    return parser


def _finetune_parser(sub: Any) -> None:
    """``finetune``: a deep model trained with Lightning (see :func:`engine.deep.finetune.finetune`)."""
    from .deep.finetune import DEEP_VALIDATION
    from .deep.networks import TASKS
    from .deep.trainer import SCHEDULERS, STRATEGIES

    tune = sub.add_parser("finetune", help="fine-tune a deep model (patch classifier, U-Net, hyperspectral)")
    tune.add_argument("--raster", required=True)
    tune.add_argument("--labels", required=True)
    tune.add_argument("--field", required=True)
    tune.add_argument("--output-model", required=True)
    tune.add_argument("--output-report")
    tune.add_argument("--task", default="patch", choices=list(TASKS))
    tune.add_argument("--backbone", help="patch: resnet18, resnet50, vit_small16, checkpoint, rcf_gaussian; "
                      "segmentation: resnet18, resnet34; hyperspectral: ssan")
    tune.add_argument("--weights", help="torchgeo weight name, e.g. LANDSAT_ETM_SR_MOCO")
    tune.add_argument("--weights-file", help="local state-dict file (loaded with weights_only=True)")
    tune.add_argument("--band-map", help="raster band of each band the weights expect, e.g. 'B4=3, B8=4'")
    tune.add_argument("--architecture", help="timm architecture of a checkpoint backbone")
    tune.add_argument("--chip-size", type=int, help="chip or tile size in pixels")
    tune.add_argument("--epochs", type=int, default=20)
    tune.add_argument("--batch-size", type=int, default=32)
    tune.add_argument("--learning-rate", type=float, default=1e-3)
    tune.add_argument("--patience", type=int, default=5, help="epochs without improvement before stopping")
    tune.add_argument("--freeze-epochs", type=int, default=0, help="epochs with the backbone frozen first")
    tune.add_argument("--scheduler", default="plateau", choices=list(SCHEDULERS))
    tune.add_argument("--validation", default="polygon_groups", choices=list(DEEP_VALIDATION))
    tune.add_argument("--test-fraction", type=float, default=0.3)
    tune.add_argument("--n-pca", type=int, default=30, help="hyperspectral: principal components")
    tune.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    tune.add_argument("--strategy", default="auto", choices=list(STRATEGIES))
    tune.add_argument("--devices", type=int, default=1)
    tune.add_argument("--num-nodes", type=int, default=1)
    tune.add_argument("--num-workers", type=int, default=0)
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--resume", action="store_true", help="continue the last run from its checkpoint")


def _encoder_arguments(parser: argparse.ArgumentParser) -> None:
    """The options choosing an encoder, shared by ``embed`` and ``train --features encoder``."""
    from .embeddings.encoders import ENCODERS

    parser.add_argument("--encoder", default="rcf_gaussian", choices=list(ENCODERS))
    parser.add_argument("--patch-size", type=int)
    parser.add_argument("--stride", type=int)
    parser.add_argument("--weights", help="torchgeo weight name, e.g. SENTINEL2_ALL_MOCO")
    parser.add_argument("--weights-file", help="local state-dict file (loaded with weights_only=True)")
    parser.add_argument("--band-map", help="raster band of each band the weights expect, e.g. 'B4=3, B8=4'")
    parser.add_argument("--architecture", help="timm architecture of a checkpoint encoder")


_OPERATIONS = {"ping": "ping", "status": "engine_status", "train": "train_classifier", "classify": "classify_raster",
               "assess": "assess_accuracy", "embed": "extract_embeddings", "finetune": "finetune",
               "export-onnx": "export_onnx", "label-polygons": "label_polygons",
               "import-mat": "import_mat"}


def _job(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The operation and its parameters from parsed arguments (option names are the parameter names)."""
    params = {k: v for k, v in vars(args).items() if k != "command" and v is not None and v is not False}
    if isinstance(params.get("raster"), list) and len(params["raster"]) == 1:
        params["raster"] = params["raster"][0]
    return _OPERATIONS[args.command], params


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        from .worker import main as worker_main

        return worker_main(argv[1:])
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    from .api import call_operation

    operation, params = _job(args)
    feedback = _ConsoleFeedback()
    signal.signal(signal.SIGINT, lambda *_: feedback.cancel())
    helper = os.environ.get("LOCAL_RANK", "0") != "0"  # a distributed job's extra process: the first one's folder
    try:
        with contextlib.nullcontext() if helper else job_workspace():
            result: dict[str, Any] = call_operation(operation, params, feedback)
    except CancelledError as exc:
        print(f"Cancelled: {exc}", file=sys.stderr)
        return 3
    except LandprobeError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        fault = user_fault(exc)
        if fault is None:
            raise
        print(f"Error: {fault}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) == "0":  # one answer from a distributed run
        print(json.dumps(result, indent=2, default=str))
    return 0
