"""Deep models: networks, training with PyTorch Lightning, tiled prediction, model packages."""
