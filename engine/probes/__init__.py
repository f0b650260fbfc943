"""Layer 6, probes.

The CPU classifiers (one class each, registered in :mod:`.registry`) and the model file
that stores them. Imports the layers below.
"""
