"""Layer 9, jobs.

One module per operation the plugin and the command line call, named after the plugin's algorithm file that calls
it (``plugin/algorithms/<name>.py``): ``train_classifier``, ``classify_raster``, ``assess_accuracy``,
``extract_embeddings``, ``finetune``, ``export_onnx``, ``hyperspectral`` (``import_mat`` and ``label_polygons``) and
``engine_status`` (with ``ping``). Each turns plain parameters into a result; imports every layer below (deep,
layer 8, included).
"""
