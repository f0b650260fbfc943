"""Fine-tune a deep model on labelled polygons: chips or tiles, the probes' polygon split, Lightning, a package.

The split is the probes' (:mod:`engine.samples.validation`): whole polygons are held out, so no pixel of a validation
polygon is trained on. Training stops early on the validation loss and keeps the best epoch; the held-out pixels
are then classified with those weights for the report's confusion matrix, kappa and F1.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.feedback import Feedback
from ..deep.dataset_setup import prepare_data
from ..deep.evaluate import evaluate, write_outputs
from ..deep.logs import DEBUG_LOG, library_log
from ..deep.networks import StartingPoint, backbone_of, check_chip, check_task, default_chip
from ..deep.trainer import FitOptions, fit, run_folder_kept
from ..io.rasters import check_writable, open_raster

logger = logging.getLogger(__name__)

DEEP_VALIDATION = ("polygon_groups", "random_pixels", "none")


@dataclass
class FinetuneResult:
    """What fine-tuning produced."""

    output_model: str
    output_report: str | None
    output_html: str | None
    overall_accuracy: float | None
    kappa: float | None
    macro_f1: float | None
    classes: list[str]
    n_samples: int
    device: str
    epochs_run: int
    seconds_per_epoch: float | None
    run_folder: str


def run_folder(output_model: str | Path) -> Path:
    """The folder of a model's checkpoints and logs: ``<model name>_run`` beside it.

    A run that is cancelled or refused before its first epoch ends removes it again if it made it; the
    libraries' messages are in its ``landprobe-debug.log``.
    """
    path = Path(output_model)
    return path.with_name(path.stem + "_run")


def finetune(raster: str, labels: str, field: str, output_model: str, task: str = "patch",
             backbone: str | None = None, weights: str | None = None, weights_file: str | None = None,
             band_map: str | None = None, architecture: str | None = None, chip_size: int | None = None,
             epochs: int = 20, batch_size: int = 32, learning_rate: float = 1e-3, patience: int = 5,
             freeze_epochs: int = 0, scheduler: str = "plateau", validation: str = "polygon_groups",
             test_fraction: float = 0.3, max_samples_per_class: int = 5000, n_pca: int = 30,
             device: str = "auto", strategy: str = "auto", devices: int = 1, num_nodes: int = 1,
             num_workers: int = 0, seed: int = 0, resume: bool = False, output_report: str | None = None,
             class_colors: dict[str, str] | None = None, feedback: Feedback | None = None) -> FinetuneResult:
    """Fine-tune a network for ``task`` on the pixels under the labels and save it as a ``.lpmodel`` package.

    Args:
        raster: the raster to learn from.
        labels: the polygon layer, optionally ``file|layername=name``.
        field: the class field.
        output_model: the model package to write.
        task: ``patch`` (a chip per pixel), ``segmentation`` (U-Net on tiles) or ``hyperspectral``.
        backbone: see :data:`engine.deep.networks.BACKBONES` (default: the task's first; for patches a small CNN).
        weights: torchgeo weight name (e.g. ``LANDSAT_ETM_SR_MOCO``); none for random initialisation.
        weights_file: a local state-dict file (read with ``weights_only=True``).
        band_map: band mapping for the weights, e.g. ``"B4=3, B8=4"``.
        architecture: timm architecture of a ``checkpoint`` backbone.
        chip_size: chip or tile size in pixels (default: 15 for the small CNN, 32 for other patch backbones, 64
            for segmentation tiles, 11 for hyperspectral chips).
        epochs: at most this many epochs.
        batch_size: chips or tiles per batch.
        learning_rate: AdamW's learning rate.
        patience: epochs without a better validation loss before stopping (0: never stop early).
        freeze_epochs: epochs with the backbone frozen (a linear probe) before it is trained too.
        scheduler: ``plateau`` (ReduceLROnPlateau) or ``cosine``.
        validation: ``polygon_groups``, ``random_pixels`` (optimistic) or ``none``.
        test_fraction: share of each class's polygons (or pixels) held out.
        max_samples_per_class: at most this many labelled pixels per class (chip tasks).
        n_pca: principal components of the hyperspectral network's spatial branch.
        device: ``auto``, ``cpu`` or ``cuda``.
        strategy: Lightning strategy: ``auto``, ``ddp`` or ``ddp_spawn`` (several GPUs or machines).
        devices: devices per machine.
        num_nodes: machines.
        num_workers: DataLoader worker processes (inside the engine process).
        seed: seed of the split, the initialisation and the batches.
        resume: continue the run in :func:`run_folder` from its last checkpoint.
        output_report: optional JSON report (an HTML page with the training curve is written beside it).
        class_colors: ``#rrggbb`` colour of each class value.
        feedback: progress (per batch, with one message for the whole training) and cancel (checked every batch).

    """
    feedback = feedback or Feedback()
    backbone = check_task(task, backbone)
    if validation not in DEEP_VALIDATION:
        raise InputError(f"Fine-tuning validates on one split: choose validation from {', '.join(DEEP_VALIDATION)} "
                         f"(not {validation!r}).")
    if epochs < 1 or batch_size < 1 or learning_rate <= 0:
        raise InputError(f"Epochs and batch size must be at least 1 and the learning rate positive (got {epochs}, "
                         f"{batch_size}, {learning_rate}).")
    check_writable(output_model)
    if output_report:
        check_writable(output_report)
    chip = int(chip_size or default_chip(task, backbone))
    check_chip(task, backbone, chip)
    options = FitOptions(epochs, batch_size, learning_rate, patience, scheduler, freeze_epochs, device, strategy,
                         devices, num_nodes, num_workers, seed, resume)
    start = StartingPoint(weights, weights_file, band_map, architecture, seed)
    folder = run_folder(output_model)
    with run_folder_kept(folder), library_log(folder / DEBUG_LOG):
        with open_raster(raster) as src:
            data = prepare_data(src, raster, labels, field, task, backbone, chip, start, validation, test_fraction,
                                max_samples_per_class, n_pca, seed, class_colors, feedback.stage(0.0, 0.1))
        module = _module(data, options)
        result = _train(data, module, options, folder, feedback.stage(0.1, 0.95))
        if not result.global_zero:  # another process of a distributed run: the first one writes the outputs
            return FinetuneResult(str(output_model), None, None, None, None, None, [c.name for c in data.classes],
                                  int(data.stats["n_samples"]), result.device, result.epochs_run,
                                  result.seconds_per_epoch, str(folder))
        feedback.check_cancel()
        figures = evaluate(data, module, validation, test_fraction, seed)
        manifest = _manifest(data, labels, field, options, result, figures)
        report, html = write_outputs(output_model, output_report, manifest, module.network, result)
    feedback.progress(1.0, "Done")
    return FinetuneResult(
        output_model=str(output_model), output_report=report, output_html=html,
        overall_accuracy=figures["overall_accuracy"] if figures else None,
        kappa=figures["kappa"] if figures else None, macro_f1=figures["macro_f1"] if figures else None,
        classes=[c.name for c in data.classes], n_samples=int(data.stats["n_samples"]), device=result.device,
        epochs_run=result.epochs_run, seconds_per_epoch=result.seconds_per_epoch, run_folder=str(folder),
    )


def _manifest(data: Any, labels: str, field: str, options: FitOptions, result: Any,
              figures: dict[str, Any] | None) -> dict[str, Any]:
    """The package's manifest: classes, input and normalisation, network, starting point, training, figures."""
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "classes": [asdict(c) for c in data.classes],
        "field": field,
        "input": {**data.input_info, "bands_read": data.built.bands, "mean": data.built.mean.tolist(),
                  "std": data.built.std.tolist()},
        "network": data.built.spec.to_dict(),
        "starting_point": data.built.metadata,
        "training": {**data.stats, "labels": labels, "epochs_run": result.epochs_run,
                     "seconds_per_epoch": result.seconds_per_epoch, "device": result.device,
                     "precision": result.precision, "world_size": result.world_size,
                     "options": asdict(options)},
        "history": result.history,
        "validation": figures,
    }


def _module(data: Any, options: FitOptions) -> Any:
    """The Lightning module: the network, class-weighted loss, AdamW and the schedule."""
    # Lazy: it loads lightning: the torch stack takes seconds to import.
    from ..deep.lit import DeepModule, class_weights

    weights = class_weights(data.class_counts)
    logger.info("Class weights of the loss: %s.", ", ".join(f"{c.name} {w:.2f}" for c, w in
                                                            zip(data.classes, weights, strict=True)))
    return DeepModule(data.built.module, weights, options.learning_rate, scheduler=options.scheduler,
                      epochs=options.epochs, monitor="val_loss" if data.val is not None else "train_loss")


def _train(data: Any, module: Any, options: FitOptions, folder: Path, feedback: Feedback) -> Any:
    """Loaders and the Lightning fit."""
    # Lazy: the torch stack takes seconds to import.
    import torch

    # Lazy: the torch stack takes seconds to import.
    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(options.seed)
    common = {"batch_size": options.batch_size, "num_workers": options.num_workers,
              "persistent_workers": options.num_workers > 0}
    train = DataLoader(data.train, shuffle=True, generator=generator, drop_last=len(data.train) > options.batch_size,
                       **common)
    val = DataLoader(data.val, shuffle=False, **common) if data.val is not None and len(data.val) else None
    if val is None:
        logger.warning("No validation data: training stops on the training loss and no accuracy is reported.")
    freeze = backbone_of(data.built.spec, module.network) if options.freeze_epochs else None
    return fit(module, train, val, folder, options, feedback, freeze)
