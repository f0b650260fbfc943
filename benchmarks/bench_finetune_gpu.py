"""Fine-tuning speed on a GPU: seconds per epoch and images per second, mixed precision against fp32.

Protocol: the engine's training module (:class:`engine.deep.lit.DeepModule`: class-weighted cross-entropy, AdamW)
and Lightning trainer settings (as :func:`engine.deep.trainer.fit` uses them) on seeded random chips
(``--images`` chips of ``--bands`` x ``--chip`` px, 10 classes, batch ``--batch``), for ResNet-18, ResNet-50 and
ViT-S/16 patch classifiers from scratch. One warm-up epoch, then ``--epochs`` timed epochs; images/s = chips x epochs
/ seconds. GPU utilisation: ``nvidia-smi`` sampled every 0.2 s during the timed epochs (mean of the samples).
Precisions: ``32-true`` against ``bf16-mixed`` (or ``16-mixed`` where bf16 is not supported). Without a GPU the
script says so and measures the CPU in fp32 only.

Run: ``PYTHONPATH=. <engine python> benchmarks/bench_finetune_gpu.py [--images 4096] [--epochs 3]``.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import threading
import time
from typing import Any

from common import markdown_table

BACKBONES = {"ResNet-18": "resnet18", "ResNet-50": "resnet50", "ViT-S/16": "vit_small16"}


class _Utilisation:
    """Samples ``nvidia-smi`` GPU utilisation in a thread."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5, check=False).stdout
                self.samples.append(float(out.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                return
            time.sleep(0.2)

    def __enter__(self) -> _Utilisation:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def measure(backbone: str, precision: str, accelerator: str, args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per timed epoch, images per second and GPU utilisation of one configuration."""
    import lightning as L
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from engine.deep.lit import DeepModule
    from engine.deep.networks import StartingPoint, build_network

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(args.images, args.bands, args.chip, args.chip)).astype("float32"))
    y = torch.from_numpy(rng.integers(0, 10, size=args.images))
    stats = (np.zeros(args.bands), np.ones(args.bands))
    built = build_network("patch", backbone, [f"band {i}" for i in range(args.bands)], stats, 10, args.chip,
                          StartingPoint(seed=0))
    module = DeepModule(built.module, [1.0] * 10, epochs=args.epochs + 1, monitor="train_loss")
    loader = DataLoader(TensorDataset(x, y), batch_size=args.batch, shuffle=True, num_workers=args.workers,
                        pin_memory=accelerator == "gpu", drop_last=True)
    times: list[float] = []

    class Clock(L.Callback):
        def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if accelerator == "gpu":
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if accelerator == "gpu":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.start)

    trainer = L.Trainer(accelerator=accelerator, devices=1, precision=precision, max_epochs=args.epochs + 1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[Clock()])
    with _Utilisation() as utilisation:
        trainer.fit(module, loader)
    timed = times[1:]  # the first epoch warms up (cuDNN autotuning, allocator)
    per_epoch = sum(timed) / len(timed)
    images = (args.images // args.batch) * args.batch
    return {"s_epoch": per_epoch, "images_s": images / per_epoch, "util": utilisation.mean()}


def main() -> None:
    """Measure every backbone at each precision and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--bands", type=int, default=6)
    parser.add_argument("--chip", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.WARNING)
    import torch

    if torch.cuda.is_available():
        accelerator, device = "gpu", torch.cuda.get_device_name(0)
        mixed = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        precisions = ["32-true", mixed]
    else:
        print("No GPU: torch sees no CUDA device. Measuring the CPU in fp32 only.")
        accelerator, device, precisions = "cpu", "CPU", ["32-true"]
        args.workers = 0
    rows = []
    for label in args.backbones:
        base = None
        for precision in precisions:
            r = measure(BACKBONES[label], precision, accelerator, args)
            base = base or r["images_s"]
            util = f"{r['util']:.0f} %" if r["util"] is not None else "n/a"
            rows.append([label, precision, f"{r['s_epoch']:.2f}", f"{r['images_s']:.0f}",
                         f"{r['images_s'] / base:.2f} x", util])
            print(rows[-1], flush=True)
    print(f"\n{device}; {args.images} chips of {args.bands} x {args.chip} px, batch {args.batch}, "
          f"{args.epochs} timed epochs after one warm-up.\n")
    print(markdown_table(["backbone", "precision", "s / epoch", "images / s", "vs fp32", "GPU utilisation"], rows))


if __name__ == "__main__":
    main()
