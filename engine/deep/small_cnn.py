"""A small convolutional network for pixel chips, trained from scratch: fast, and enough for small label sets.

Three 3 x 3 convolutions (batch norm, ReLU) keep the chip's size; the features of the centre pixel (what is being
classified) are concatenated with their average over the chip (its surroundings), giving ``2 * width`` features.
Pretrained backbones need far more labels to fine-tune from scratch than a GIS analyst usually draws.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


class SmallCNN(nn.Module):
    """``(B, bands, p, p)`` chips to ``(B, 2 * width)`` features: the centre pixel's and the chip's average."""

    def __init__(self, n_bands: int, width: int = 64) -> None:
        """Three convolution blocks of ``width // 2``, ``width`` and ``width`` channels."""
        super().__init__()
        blocks: list[nn.Module] = []
        channels = [n_bands, width // 2, width, width]
        for c_in, c_out in itertools.pairwise(channels):
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*blocks)
        self.num_features = 2 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Centre-pixel and chip-average features."""
        f = self.features(x)
        centre = f[:, :, f.shape[2] // 2, f.shape[3] // 2]
        return torch.cat([centre, f.mean(dim=(2, 3))], dim=1)
