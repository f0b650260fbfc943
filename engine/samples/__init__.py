"""Layer 3, samples.

Labels turned into training samples (embedding cells) and the validation splits (polygon
groups, k-fold by polygons or spatial blocks). Imports core and io.
"""
