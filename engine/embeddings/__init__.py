"""Layer 5, embeddings.

What a probe sees: band values and spectral-index recipes, encoders (random
convolutional features, torchgeo backbones), embedding rasters written and read, previews. Imports the layers
below.
"""
