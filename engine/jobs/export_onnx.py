"""Export a deep model package to ONNX, checked against PyTorch on a test tile with onnxruntime.

The ONNX graph takes normalised values ``(batch, bands, height, width)`` named ``input`` and returns class scores
named ``scores``: ``(batch, classes)`` for chip models, ``(batch, classes, height, width)`` for segmentation. Its
metadata (``landprobe`` key, JSON) holds the classes, the bands read (1-based), their mean and std and the chip
size, so that another runtime can prepare inputs the same way.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.feedback import Feedback
from ..deep.package import is_deep, load_deep_model
from ..io.rasters import atomic_output, check_writable
from ..probes.model_file import read_manifest

logger = logging.getLogger(__name__)
TOLERANCE = 1e-4  # largest |onnx - torch| accepted, relative to the largest |score|


@dataclass
class OnnxResult:
    """The file written and how closely it matches PyTorch."""

    output: str
    max_abs_difference: float
    max_abs_score: float
    input_shape: list[int]


def export_onnx(model: str, output: str, opset: int = 17, feedback: Feedback | None = None) -> OnnxResult:
    """Write ``model`` (a deep ``.lpmodel``) as ONNX at ``output`` and check it on a seeded test tile.

    Raises:
        InputError: when the model is a probe, or the exported graph does not match PyTorch.

    """
    # Lazy: onnx is only needed to export.
    import onnx

    # Lazy: onnxruntime is only needed to check an export.
    import onnxruntime

    # Lazy: the torch stack takes seconds to import.
    import torch

    feedback = feedback or Feedback()
    check_writable(output)
    if not is_deep(read_manifest(model)):
        raise InputError(f"{model} is a probe model: only deep models (Fine-tune) export to ONNX.")
    deep = load_deep_model(model)
    spec = deep.spec
    network = deep.network.eval()
    size = spec.chip
    example = torch.from_numpy(np.random.default_rng(0).normal(size=(2, spec.n_bands, size, size))
                               .astype("float32"))
    axes = {"input": {0: "batch"}, "scores": {0: "batch"}}
    if spec.task == "segmentation":
        axes = {"input": {0: "batch", 2: "height", 3: "width"}, "scores": {0: "batch", 2: "height", 3: "width"}}
    feedback.progress(0.2, "Exporting to ONNX")
    with atomic_output(output) as tmp:
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(network, (example,), str(tmp), input_names=["input"], output_names=["scores"],
                              dynamic_axes=axes, opset_version=opset, dynamo=False)
        graph = onnx.load(str(tmp))
        meta = {"classes": deep.manifest["classes"], "bands_read": deep.bands, "mean": deep.mean.tolist(),
                "std": deep.std.tolist(), "task": spec.task, "backbone": spec.backbone, "chip": size}
        entry = graph.metadata_props.add()
        entry.key, entry.value = "landprobe", json.dumps(meta)
        onnx.save(graph, str(tmp))
        feedback.progress(0.7, "Checking the ONNX graph against PyTorch")
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = session.run(["scores"], {"input": example.numpy()})[0]
        with torch.no_grad():
            want = network(example).numpy()
        diff, scale = float(np.abs(got - want).max()), float(np.abs(want).max())
        if diff > TOLERANCE * max(1.0, scale):
            raise InputError(f"The ONNX export of {model} differs from PyTorch by {diff:.2e} on a test tile; it was "
                             "not written. Please report it with the model's task and backbone.")
    logger.info("Wrote %s: max |ONNX - PyTorch| %.2e on a %s test tile (scores up to %.2f).", output, diff,
                "x".join(str(v) for v in example.shape), scale)
    feedback.progress(1.0, "Done")
    return OnnxResult(str(Path(output)), diff, scale, list(example.shape))
