"""Running Lightning for a fine-tune: device and precision, callbacks, logs, checkpoints, resume.

A run keeps its files in a run folder beside the model (``<model>_run/``): ``checkpoints/best.ckpt`` (the epoch
with the best validation loss), ``checkpoints/last.ckpt`` (the last completed epoch, what ``resume`` continues
from), ``csv/version_N/metrics.csv`` (Lightning's CSV logger, a version per start or resume) and
``tensorboard/version_N`` (``tensorboard --logdir <run folder>``) and ``landprobe-debug.log`` (the libraries'
messages, :mod:`engine.deep.logs`). The per-epoch history also travels in the checkpoints, so a resumed run reports
every epoch. A run that fails before its first checkpoint removes the run folder it made (:func:`run_folder_kept`).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.devices import choose_device
from ..core.errors import InputError, LandprobeError
from ..core.feedback import Feedback

logger = logging.getLogger(__name__)

STRATEGIES = ("auto", "ddp", "ddp_spawn")
SCHEDULERS = ("plateau", "cosine")


@dataclass
class FitOptions:
    """How to train: epochs, batches, optimiser, early stopping, hardware and resume."""

    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 5
    scheduler: str = "plateau"
    freeze_epochs: int = 0
    device: str = "auto"
    strategy: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    num_workers: int = 0
    seed: int = 0
    resume: bool = False


@dataclass
class FitResult:
    """What a fit produced: the best weights (loaded into the module), history and timing."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_checkpoint: str | None = None
    device: str = "cpu"
    precision: str = "32-true"
    epochs_run: int = 0
    seconds_per_epoch: float | None = None
    stopped_early: bool = False
    world_size: int = 1
    global_zero: bool = True  # False in the other processes of a distributed run: they write nothing


def _accelerator(device: str) -> tuple[str, str]:
    """Lightning accelerator and precision for ``device`` (mixed precision on GPU); never a silent CPU fallback.

    Raises:
        InputError: when a GPU is asked for and there is none.

    """
    # Lazy: the torch stack takes seconds to import.
    import torch


    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"Unknown device {device!r}; choose auto, cpu or cuda.")
    try:
        device = choose_device(device)
    except InputError:
        raise InputError("A GPU (cuda) was asked for but torch sees none; choose the CPU or install a CUDA build of "
                         "torch.") from None
    if device == "cuda":
        return "gpu", "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "cpu", "32-true"


def last_checkpoint(run_dir: Path) -> Path:
    """The checkpoint of a run's last completed epoch (what ``resume`` continues from)."""
    return run_dir / "checkpoints" / "last.ckpt"


def prepare_run_folder(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (``None`` for a new run, whose old checkpoints are removed).

    Raises:
        InputError: when resuming and the run folder has no checkpoint.

    """
    last = last_checkpoint(run_dir)
    if resume:
        if not last.is_file():
            raise InputError(f"Nothing to resume: {last} does not exist. Train without resume first.")
        logger.info("Resuming from %s.", last)
        return last
    old = [run_dir / d for d in ("checkpoints", "csv", "tensorboard") if (run_dir / d).exists()]
    for folder in old:
        shutil.rmtree(folder)
    if old:
        logger.info("A new run: the previous checkpoints and logs in %s were removed.", run_dir)
    return None


@contextlib.contextmanager
def run_folder_kept(run_dir: Path) -> Iterator[Path]:
    """Make ``run_dir`` if needed; remove it again when the run fails before it holds a checkpoint.

    Only a folder this call made is removed, and only when the run was cancelled or refused (a
    :class:`~engine.core.errors.LandprobeError`) before an epoch completed: a folder that existed (a run being resumed,
    an earlier run's files) is never removed, a checkpoint stays for ``resume``, and after an unexpected error the
    folder stays with its debug log.
    """
    created = not run_dir.exists()
    run_dir.mkdir(exist_ok=True)
    try:
        yield run_dir
    except LandprobeError:
        if created and not last_checkpoint(run_dir).exists():
            shutil.rmtree(run_dir, ignore_errors=True)
            if run_dir.exists():  # a file still open elsewhere (Windows): say so rather than claim it is gone
                logger.warning("Could not remove the run folder %s; it holds no checkpoint and may be deleted.",
                               run_dir)
            else:
                logger.info("Removed the run folder %s: no epoch was completed, so there is nothing to resume.",
                            run_dir)
        raise


def fit(module: Any, train_loader: Any, val_loader: Any | None, run_dir: Path, options: FitOptions,
        feedback: Feedback, backbone: Any = None) -> FitResult:
    """Train the Lightning ``module``; on return its weights are those of the best (or last) epoch.

    Raises:
        CancelledError: when cancelled (the checkpoint of the last completed epoch, if any, stays in ``run_dir``).

    """
    # Lazy: the torch stack takes seconds to import.
    import lightning as L

    # Lazy: the torch stack takes seconds to import.
    import torch

    # Lazy: the torch stack takes seconds to import.
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    # Lazy: the torch stack takes seconds to import.
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    # Lazy: it loads lightning: the torch stack takes seconds to import.
    from .lit import FeedbackCallback, FreezeCallback

    accelerator, precision = _accelerator(options.device)
    if options.strategy not in STRATEGIES:
        raise InputError(f"Unknown strategy {options.strategy!r}; choose one of: {', '.join(STRATEGIES)}.")
    resume_from = prepare_run_folder(run_dir, options.resume)
    monitor = "val_loss" if val_loader is not None else "train_loss"
    reporter = FeedbackCallback(feedback, options.epochs)
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=monitor, mode="min",
                                 save_top_k=1, save_last=True, enable_version_counter=False)
    callbacks: list[Any] = [reporter, checkpoint]
    if options.patience > 0:
        callbacks.append(EarlyStopping(monitor=monitor, mode="min", patience=options.patience))
    if backbone is not None and options.freeze_epochs > 0:
        callbacks.append(FreezeCallback(backbone, options.freeze_epochs))
    torch.use_deterministic_algorithms(accelerator == "cpu", warn_only=True)
    L.seed_everything(options.seed, workers=True, verbose=False)
    trainer = L.Trainer(
        accelerator=accelerator, devices=options.devices, num_nodes=options.num_nodes, strategy=options.strategy,
        precision=precision, max_epochs=options.epochs, callbacks=callbacks, default_root_dir=run_dir,
        logger=[CSVLogger(run_dir, name="csv"), TensorBoardLogger(run_dir, name="tensorboard")],  # a version a try
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=1,
        deterministic=accelerator == "cpu",
    )
    device_name = torch.cuda.get_device_name(0) if accelerator == "gpu" else "CPU"
    logger.info("%s", describe_device(device_name, precision, options, torch.get_num_threads()))
    start = time.perf_counter()
    trainer.fit(module, train_loader, val_loader, ckpt_path=resume_from, weights_only=True)
    elapsed = time.perf_counter() - start
    best = checkpoint.best_model_path or checkpoint.last_model_path
    stopped_early = any(isinstance(c, EarlyStopping) and c.stopped_epoch > 0 for c in callbacks)
    if best and trainer.is_global_zero:
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
        logger.info("%s", describe_best(reporter.history, monitor, options, stopped_early))
    ran = reporter.epochs_now
    return FitResult(history=reporter.history, best_checkpoint=best or None, device=device_name,
                     precision=precision, epochs_run=ran, seconds_per_epoch=elapsed / ran if ran else None,
                     stopped_early=stopped_early, world_size=trainer.world_size, global_zero=trainer.is_global_zero)


def describe_device(device_name: str, precision: str, options: FitOptions, threads: int) -> str:
    """The log line that says where training runs, e.g. ``Training on CPU (2 threads).``."""
    if device_name == "CPU":
        where = f"CPU ({threads} thread{'s' if threads != 1 else ''})"
    else:
        mixed = {"16-mixed": "fp16", "bf16-mixed": "bf16"}.get(precision)
        where = f"GPU: {device_name} ({mixed} mixed precision)" if mixed else f"GPU: {device_name}"
    if options.devices * options.num_nodes > 1:
        unit = "process" if device_name == "CPU" else "GPU"
        where += f", {_count(options.devices, unit)}"
        if options.num_nodes > 1:
            where += f" on each of {options.num_nodes} machines"
        where += f", strategy {options.strategy}"
    return f"Training on {where}."


def _count(n: int, unit: str) -> str:
    """``1 GPU``, ``2 GPUs``, ``2 processes``."""
    return f"{n} {unit}" if n == 1 else f"{n} {unit}{'es' if unit.endswith('s') else 's'}"


def describe_best(history: list[dict[str, float]], monitor: str, options: FitOptions, stopped_early: bool) -> str:
    """The log line of the epoch whose weights are kept, and why training stopped."""
    rows = [r for r in history if monitor in r]
    if not rows:
        return "Kept the weights of the last epoch."
    best = min(rows, key=lambda r: r[monitor])
    loss = "validation loss" if monitor == "val_loss" else "training loss"
    figures = [f"{loss} {best[monitor]:.3f}"]
    if "val_acc" in best:
        figures.append(f"validation accuracy {100 * best['val_acc']:.1f} %")
    why = (f"Stopped early after epoch {history[-1]['epoch']}: the {loss} had not improved for {options.patience} "
           "epochs. ") if stopped_early else ""
    return f"{why}Kept the weights of epoch {best['epoch']} ({', '.join(figures)})."
