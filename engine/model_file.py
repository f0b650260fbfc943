"""The model file: one zip with a JSON manifest, numpy arrays and raw blobs. Loading it never executes code.

Layout of ``*.lpmodel``::

    manifest.json   format, classes (code, name, colour), input bands, feature recipe, method and its parameters,
                    validation scheme and figures, library versions
    arrays.npz      numpy arrays, read with ``allow_pickle=False``
    blobs/<name>    raw bytes in a data format (for example XGBoost UBJSON)
    encoder.npz     optional: the weights of an encoder the model runs on the fly (a state dict as numpy arrays,
                    read with ``allow_pickle=False``)
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelFileError
from .probes import PROBES, Probe
from .rasters import atomic_output

if TYPE_CHECKING:
    import numpy as np

FORMAT = "landprobe-model"
FORMAT_VERSION = 1
SUFFIX = ".lpmodel"


@dataclass
class LoadedModel:
    """A model file's manifest, its fitted probe and, for an on-the-fly encoder, the encoder's weights."""

    manifest: dict[str, Any]
    probe: Probe
    encoder_arrays: dict[str, np.ndarray] = field(default_factory=dict)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _read_npz(data: bytes) -> dict[str, np.ndarray]:
    import numpy as np

    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def write_model_zip(path: str | Path, manifest: dict[str, Any], members: dict[str, bytes]) -> Path:
    """Write a model file atomically: the manifest (stamped with the format) and the ``members`` given as bytes."""
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest}
    with atomic_output(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, default=str))
        for name, data in members.items():
            zf.writestr(name, data)
    return Path(path)


def save_model(path: str | Path, manifest: dict[str, Any], probe: Probe,
               encoder_arrays: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``probe``, ``manifest`` (and an encoder's weights) to ``path`` atomically; return the path written."""
    params, arrays, blobs = probe.state()
    members = {"arrays.npz": _npz_bytes(arrays)}
    if encoder_arrays:
        members["encoder.npz"] = _npz_bytes(encoder_arrays)
    members |= {f"blobs/{name}": data for name, data in blobs.items()}
    return write_model_zip(path, {**manifest, "method": probe.name, "method_params": params}, members)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read only the manifest of a model file.

    Raises:
        ModelFileError: when the file is missing, not a Landprobe model, or from a newer version.

    """
    return _open(path)[0]


def _open(path: str | Path) -> tuple[dict[str, Any], zipfile.ZipFile]:
    if not Path(path).is_file():
        raise ModelFileError(f"Model file {path} does not exist. Train one with 'Train classifier' first.")
    try:
        zf = zipfile.ZipFile(path)
        manifest = json.loads(zf.read("manifest.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path} is not a Landprobe model file ({exc}).") from exc
    if manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a Landprobe model file.")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(
            f"Model {path} was written by a newer Landprobe (format {manifest['format_version']}); update the plugin."
        )
    return manifest, zf


def load_model(path: str | Path) -> LoadedModel:
    """Load a model file: the manifest, then the probe from arrays (``allow_pickle=False``) and blobs."""
    manifest, zf = _open(path)
    with zf:
        try:
            arrays = _read_npz(zf.read("arrays.npz"))
            encoder = _read_npz(zf.read("encoder.npz")) if "encoder.npz" in zf.namelist() else {}
            blobs = {n.removeprefix("blobs/"): zf.read(n) for n in zf.namelist() if n.startswith("blobs/")}
        except (KeyError, ValueError, OSError) as exc:
            raise ModelFileError(f"Model file {path} is damaged: {exc}.") from exc
    if manifest.get("method") not in PROBES:
        raise ModelFileError(f"Model {path} uses method {manifest.get('method')!r}, unknown to this engine; update it.")
    probe = PROBES[manifest["method"]].from_state(manifest.get("method_params", {}), arrays, blobs)
    return LoadedModel(manifest=manifest, probe=probe, encoder_arrays=encoder)
