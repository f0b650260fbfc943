"""A spectral-spatial attention network for hyperspectral cubes, small enough to train on a CPU.

The network classifies the centre pixel of a ``window`` x ``window`` chip of standardised band values. It has two
branches whose vectors are concatenated before a linear classifier:

- **Spectral**: the centre pixel's spectrum read as a sequence. Neighbouring bands are grouped into steps of
  ``ceil(n_bands / 50)`` bands (zero padding at the end), so a 200-band cube gives 50 steps of 4 bands; a
  bidirectional GRU runs over the steps and additive attention (softmax weights over the steps) pools its outputs.
- **Spatial**: the chip projected onto ``n_pca`` principal components by a fixed 1 x 1 projection whose mean and
  components are buffers (saved in the ``state_dict``, never trained; :func:`fit_pca` computes them from training
  pixels), then two conv-BN-ReLU blocks, a sigmoid spatial attention map multiplying the features, and global
  average pooling.

Every operation exports to ONNX with ``torch.onnx.export(..., dynamo=False)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

MAX_SPECTRAL_STEPS = 50  # the spectral sequence is at most about this long


def fit_pca(pixels: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Principal components of pixel spectra, for the network's ``pca_mean`` and ``pca_components`` buffers.

    The components are the eigenvectors of the covariance matrix with the largest eigenvalues, each signed so that
    its largest absolute entry is positive (the same pixels always give the same components).

    Args:
        pixels: ``(n, bands)`` spectra, standardised like the network's input.
        n_components: how many components to keep; at most ``bands`` are returned.

    Returns:
        ``mean`` of shape ``(bands,)`` and ``components`` of shape ``(min(n_components, bands), bands)``, float32.

    Raises:
        ValueError: when ``pixels`` is not a 2-D array with at least two rows.

    """
    x = np.asarray(pixels, dtype="float64")
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"fit_pca needs an (n, bands) array with n >= 2, got shape {x.shape}.")
    mean = x.mean(axis=0)
    centred = x - mean
    cov = centred.T @ centred / (x.shape[0] - 1)
    values, vectors = np.linalg.eigh(cov)
    k = min(n_components, x.shape[1])
    components = vectors[:, np.argsort(values)[::-1][:k]].T
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    components *= np.where(signs == 0, 1.0, signs)[:, None]
    return mean.astype("float32"), components.astype("float32")


class SpectralSpatialAttentionNet(nn.Module):
    """Spectral (bidirectional GRU + attention) and spatial (PCA + CNN + attention) branches, fused.

    Args:
        n_bands: bands of the input chips.
        n_classes: classes to score.
        window: chip side in pixels (odd); the centre pixel is classified.
        n_pca: principal components fed to the spatial branch (at most ``n_bands``).
        hidden: width of the GRU (per direction) and of the convolutions.
        pca_mean: ``(n_bands,)`` mean subtracted before the projection; zeros when not given.
        pca_components: ``(n_pca, n_bands)`` projection; the first ``n_pca`` rows of the identity when not given.

    """

    def __init__(self, n_bands: int, n_classes: int, window: int = 11, n_pca: int = 30, hidden: int = 64,
                 pca_mean: torch.Tensor | None = None, pca_components: torch.Tensor | None = None) -> None:
        super().__init__()
        if n_bands < 1 or n_classes < 2 or window < 1 or window % 2 == 0:
            raise ValueError("SpectralSpatialAttentionNet needs n_bands >= 1, n_classes >= 2 and an odd window.")
        self.n_bands, self.n_classes, self.window = n_bands, n_classes, window
        self.n_pca = min(n_pca, n_bands)
        self.group = math.ceil(n_bands / MAX_SPECTRAL_STEPS)
        self.steps = math.ceil(n_bands / self.group)
        self.register_buffer("pca_mean", torch.zeros(n_bands))
        self.register_buffer("pca_components", torch.eye(n_bands)[: self.n_pca].clone())
        self.set_pca(pca_mean, pca_components)

        self.gru = nn.GRU(self.group, hidden, batch_first=True, bidirectional=True)
        self.spectral_score = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.spatial = nn.Sequential(
            nn.Conv2d(self.n_pca, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
        )
        self.spatial_attention = nn.Conv2d(hidden, 1, 1)
        self.dropout = nn.Dropout(0.3)
        self.classifier = nn.Linear(3 * hidden, n_classes)

    def set_pca(self, mean: torch.Tensor | np.ndarray | None, components: torch.Tensor | np.ndarray | None) -> None:
        """Replace the PCA buffers (for example with :func:`fit_pca` of the training pixels); ``None`` keeps one.

        Raises:
            ValueError: when a shape does not match ``(n_bands,)`` or ``(n_pca, n_bands)``.

        """
        if mean is not None:
            mean = torch.as_tensor(mean, dtype=torch.float32)
            if mean.shape != (self.n_bands,):
                raise ValueError(f"pca_mean must have shape ({self.n_bands},), got {tuple(mean.shape)}.")
            self.pca_mean.copy_(mean)
        if components is not None:
            components = torch.as_tensor(components, dtype=torch.float32)
            if components.shape != (self.n_pca, self.n_bands):
                raise ValueError(f"pca_components must have shape ({self.n_pca}, {self.n_bands}), "
                                 f"got {tuple(components.shape)}.")
            self.pca_components.copy_(components)

    def spectral_vector(self, x: torch.Tensor) -> torch.Tensor:
        """The spectral branch: attention-pooled GRU states over the centre pixel's band groups, ``(B, 2 hidden)``."""
        centre = self.window // 2
        spectrum = x[:, :, centre, centre]
        padding = self.steps * self.group - self.n_bands
        if padding:
            spectrum = F.pad(spectrum, (0, padding))
        states, _ = self.gru(spectrum.reshape(-1, self.steps, self.group))
        weights = torch.softmax(self.spectral_score(states), dim=1)
        return (weights * states).sum(dim=1)

    def spatial_vector(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial branch: PCA projection, CNN, sigmoid attention map and average pooling, ``(B, hidden)``."""
        weight = self.pca_components[:, :, None, None]
        bias = -(self.pca_components @ self.pca_mean)
        reduced = F.conv2d(x, weight, bias)
        features = self.spatial(reduced)
        attention = torch.sigmoid(self.spatial_attention(features))
        return (features * attention).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)`` for chips ``(B, n_bands, window, window)``."""
        fused = torch.cat([self.spectral_vector(x), self.spatial_vector(x)], dim=1)
        return self.classifier(self.dropout(fused))
