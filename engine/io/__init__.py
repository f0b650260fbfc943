"""Layer 2, io.

Reading and writing files: rasters (windows, nodata, atomic outputs), label layers, legends,
regridding, MATLAB cubes and the size-checked members of model files. Imports only core.
"""
