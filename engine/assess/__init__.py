"""Layer 7, assess.

Accuracy figures, the automatic choice of a probe by cross-validation, learning curves
and projections, and the HTML and JSON reports. Imports the layers below.
"""
