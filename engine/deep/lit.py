"""The Lightning side of fine-tuning: the training module and the callbacks that report, cancel and freeze.

:class:`DeepModule` wraps any network that maps (B, C, H, W) to class scores, per sample (B, K) or per pixel
(B, K, H, W), with a class-weighted cross-entropy that ignores target ``-1``, AdamW, and ReduceLROnPlateau or
cosine decay. It accumulates a confusion matrix over each validation epoch, so the validation accuracy is over all
held-out pixels, not an average of batch accuracies.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L
import torch

from ..core.errors import CancelledError
from ..core.feedback import Feedback
from .data import IGNORE

logger = logging.getLogger(__name__)


class DeepModule(L.LightningModule):
    """A network, its loss and its optimiser."""

    def __init__(self, network: torch.nn.Module, class_weights: list[float], lr: float = 1e-3,
                 weight_decay: float = 1e-4, scheduler: str = "plateau", epochs: int = 20,
                 monitor: str = "val_loss") -> None:
        """Train ``network`` with class weights ``class_weights`` (one per class)."""
        super().__init__()
        self.network = network
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32))
        self.lr, self.weight_decay, self.scheduler, self.epochs, self.monitor = lr, weight_decay, scheduler, epochs, \
            monitor
        n = len(class_weights)
        self.register_buffer("confusion", torch.zeros(n, n, dtype=torch.int64), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores."""
        return self.network(x)

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(logits.float(), target, weight=self.class_weights,
                                                 ignore_index=IGNORE)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One optimisation step's loss."""
        x, target = batch
        loss = self._loss(self(x), target)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        """Reset the confusion matrix."""
        self.confusion.zero_()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Loss and confusion counts of a held-out batch."""
        x, target = batch
        logits = self(x)
        if (target != IGNORE).any():
            self.log("val_loss", self._loss(logits, target), on_step=False, on_epoch=True, batch_size=len(x),
                     sync_dist=True)
        pred = logits.argmax(dim=1)
        keep = target != IGNORE
        n = self.confusion.shape[0]
        self.confusion += torch.bincount(target[keep] * n + pred[keep], minlength=n * n).reshape(n, n)

    def on_validation_epoch_end(self) -> None:
        """Log the overall validation accuracy of the epoch (over every process's held-out pixels)."""
        confusion = self.confusion
        if self.trainer.world_size > 1:
            confusion = self.trainer.strategy.reduce(confusion.clone(), reduce_op="sum")
        total = confusion.sum()
        if total > 0:
            self.log("val_acc", confusion.trace().float() / total.float(), sync_dist=True)  # equal on every rank

    def configure_optimizers(self) -> Any:
        """AdamW over every parameter (frozen ones get no gradient) with the chosen learning-rate schedule."""
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.scheduler == "cosine":
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, self.epochs))
            return {"optimizer": optimizer, "lr_scheduler": schedule}
        schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "monitor": self.monitor}}


def class_weights(counts: list[int]) -> list[float]:
    """Inverse-frequency class weights, ``n / (k * n_c)``, capped at 10x the smallest; 0 for absent classes."""
    total, k = sum(counts), sum(1 for c in counts if c)
    raw = [total / (k * c) if c else 0.0 for c in counts]
    low = min((w for w in raw if w), default=1.0)
    return [min(w, 10 * low) for w in raw]


class FeedbackCallback(L.Callback):
    """Progress per batch, a log line per epoch, and cancel checked at every batch.

    The progress message is set once, when training starts; batches only move the fraction. (QGIS writes every new
    progress message into the Processing log, so a message per batch would be a log line per batch.)
    """

    def __init__(self, feedback: Feedback, epochs: int) -> None:
        """Report to ``feedback`` over ``epochs`` epochs."""
        self.feedback, self.epochs = feedback, epochs
        self.cancelled = False
        self.history: list[dict[str, float]] = []
        self.epochs_now = 0  # epochs run since this start (a resumed run has more in its history)

    def state_dict(self) -> dict[str, Any]:
        """The history, saved in checkpoints."""
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The history of the run being resumed."""
        self.history = list(state_dict.get("history", []))

    def _check(self, trainer: L.Trainer) -> None:
        cancelled = self.feedback.is_canceled()
        if trainer.world_size > 1:  # every process stops together, whichever one was cancelled
            cancelled = trainer.strategy.reduce_boolean_decision(cancelled, all=False)
        if cancelled:
            self.cancelled = True
            raise CancelledError(cancel_message(trainer.current_epoch))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Say what training is about to do (the progress message of the whole training)."""
        if trainer.is_global_zero:
            n = max(1, int(trainer.num_training_batches))
            self.feedback.progress(trainer.current_epoch / self.epochs,
                                   f"Training: {self.epochs} epochs at most, {n} batch{'es' if n != 1 else ''} each")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Move the progress bar and check cancel."""
        n = max(1, int(trainer.num_training_batches))
        if trainer.is_global_zero:
            self.feedback.progress((trainer.current_epoch + (batch_idx + 1) / n) / self.epochs)
        self._check(trainer)

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        """Check cancel during validation too (the epoch's checkpoint is then not written)."""
        self._check(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Log the epoch's figures (validation has run by now) and keep them."""
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        row = {"epoch": trainer.current_epoch + 1, **metrics,
               "lr": trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan}
        self.history.append(row)
        self.epochs_now += 1
        if trainer.is_global_zero:
            logger.info("%s", epoch_line(row, self.epochs))


def epoch_line(row: dict[str, float], epochs: int) -> str:
    """The log line of an epoch, e.g. ``Epoch 3/10: training loss 0.412, validation accuracy 86.1 %``."""
    parts = [f"training loss {row.get('train_loss', math.nan):.3f}"]
    if "val_loss" in row:
        parts.append(f"validation loss {row['val_loss']:.3f}")
    if "val_acc" in row:
        parts.append(f"validation accuracy {100 * row['val_acc']:.1f} %")
    return f"Epoch {int(row['epoch'])}/{epochs}: {', '.join(parts)}"


def cancel_message(epoch: int) -> str:
    """The error message of a training cancelled during epoch ``epoch`` (0-based)."""
    if epoch == 0:
        return "Training was cancelled during the first epoch; nothing was written."
    return (f"Training was cancelled during epoch {epoch + 1}; the model was not written. The checkpoint of epoch "
            f"{epoch} is kept in the run folder: train again with Resume to continue.")


class FreezeCallback(L.Callback):
    """Keeps ``backbone`` frozen (no gradient, batch-norm statistics fixed) for the first ``epochs`` epochs."""

    def __init__(self, backbone: torch.nn.Module, epochs: int) -> None:
        """Freeze ``backbone`` for ``epochs`` epochs, then train it."""
        self.backbone, self.epochs = backbone, epochs

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Freeze or unfreeze for this epoch."""
        frozen = trainer.current_epoch < self.epochs
        for p in self.backbone.parameters():
            p.requires_grad_(not frozen)
        if frozen:
            self.backbone.eval()
        if trainer.current_epoch == self.epochs and self.epochs:
            logger.info("Epoch %d: the backbone is unfrozen and trained from now on.", self.epochs + 1)
