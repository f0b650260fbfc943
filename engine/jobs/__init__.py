"""Layer 9, jobs.

One module per operation the plugin and the command line call (train a classifier, classify
a raster, assess accuracy, class raster to polygons); each turns plain parameters into a result. Imports every
layer below (deep, layer 8, included).
"""
