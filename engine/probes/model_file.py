"""The model file: one zip with a JSON manifest, numpy arrays and raw blobs. Loading it never executes code.

Layout of ``*.lpmodel``::

    manifest.json   format, classes (code, name, colour), input bands, feature recipe, method and its parameters,
                    validation scheme and figures, library versions
    arrays.npz      numpy arrays, read with ``allow_pickle=False``
    blobs/<name>    raw bytes in a data format (for example XGBoost UBJSON)
    encoder.npz     optional: the weights of an encoder the model runs on the fly (a state dict as numpy arrays,
                    read with ``allow_pickle=False``)

Reading is defensive, as a model file may come from anywhere: the manifest is checked (:func:`check_manifest`) before
anything else is used, with one sentence per problem. Every member is read with size limits: the size the manifest
recorded when it was written (``members``, bytes per member), the most bytes the arrays the manifest lists can take
(``arrays``: name, data type and shape of every array in every array member, :mod:`.model_members`) and a cap on the
member's compression ratio. The zip's declared sizes are checked before anything is inflated, so a member that would
inflate to gigabytes is refused at a few megabytes of memory; once read, a member's array headers are compared with the
manifest's shapes before any array is built. An ``.npz`` member is itself a zip: its arrays must be stored
uncompressed, as :func:`numpy.savez` writes them, so that nothing inflates inside it either. Files written before
``arrays`` was recorded are read with the other limits.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ModelFileError
from ..io.model_members import check_layout, is_safetensors, layout_problem, member_layout, member_limit
from ..io.rasters import atomic_output
from .registry import MODELS, Probe

FORMAT = "landprobe-model"
FORMAT_VERSION = 1
SUFFIX = ".lpmodel"
#: The manifest is small JSON: refuse a larger one before reading it.
MAX_MANIFEST_BYTES = 16 * 2**20
#: No member of a model file is larger than this, whatever its manifest says.
MAX_MEMBER_BYTES = 8 * 2**30
#: Numpy arrays and XGBoost blobs deflate by well under 20x: a member that would inflate by more than this is taken
#: for a zip bomb (also when the manifest's own record agrees with it: both are in the same file).
MAX_COMPRESSION_RATIO = 100


@dataclass
class LoadedModel:
    """A model file's manifest, its fitted probe and, for an on-the-fly encoder, the encoder's weights."""

    manifest: dict[str, Any]
    probe: Probe
    encoder_arrays: dict[str, np.ndarray] = field(default_factory=dict)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _read_npz(data: bytes, path: str | Path = "") -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` member whose headers :func:`read_member` checked (plain numbers, stored as is)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (ValueError, MemoryError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"Model file {path} is damaged (an array does not match its own header: "
                             f"{type(exc).__name__}). Train the model again, or use the original file.") from exc


def write_model_zip(path: str | Path, manifest: dict[str, Any], members: dict[str, bytes]) -> Path:
    """Write a model file atomically: the manifest and the ``members`` given as bytes.

    The manifest is stamped with the format, the size of every member and the arrays of every array member: the
    limits each is read with.
    """
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest,
                "members": {name: len(data) for name, data in members.items()},
                "arrays": {name: member_layout(data, name) for name, data in members.items() if _holds_arrays(name)}}
    with atomic_output(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, default=str))
        for name, data in members.items():
            zf.writestr(name, data)
    return Path(path)


def _holds_arrays(member: str) -> bool:
    return member.endswith(".npz") or is_safetensors(member)


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
        info = zf.getinfo("manifest.json")
        if info.file_size > MAX_MANIFEST_BYTES:
            raise ModelFileError(f"{path} is not a Landprobe model file (its manifest is {info.file_size:,} bytes).")
        manifest = json.loads(zf.read(info))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError, OSError, zlib.error,
            NotImplementedError, RuntimeError) as exc:
        raise ModelFileError(f"{path} is not a Landprobe model file ({exc}).") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a Landprobe model file.")
    try:
        version = manifest.get("format_version", 0)
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise ModelFileError(f"Model {path} was written by a newer Landprobe (format {version}); update the "
                                 "plugin.")
        check_manifest(manifest, path)
    except ModelFileError:
        zf.close()
        raise
    return manifest, zf


def _problems(manifest: dict[str, Any]) -> list[str]:
    """What is wrong with a manifest's structure: one phrase per problem (empty when it is sound)."""
    problems = []

    def is_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not is_int(manifest.get("format_version")) or manifest["format_version"] < 1:
        problems.append("format_version is not a whole number from 1")
    classes = manifest.get("classes")
    value_model = manifest.get("target") == "value"  # a similarity or a quantity: a value per pixel, no classes
    if value_model and (classes != [] or not isinstance(manifest.get("value"), dict)):
        problems.append("a value model has classes, or no value description")
    elif value_model:
        pass
    elif not isinstance(classes, list) or not classes:
        problems.append("classes is not a non-empty list")
    else:
        for i, c in enumerate(classes, start=1):
            if not isinstance(c, dict) or not is_int(c.get("code")) or not isinstance(c.get("name"), str):
                problems.append(f"class {i} lacks a whole-number code and a text name")
            elif not -(2**31) < c["code"] < 2**31:
                problems.append(f"class {c['name']!r} has code {c['code']}, out of range")
        codes = [c.get("code") for c in classes if isinstance(c, dict)]
        if len(set(map(str, codes))) != len(codes):
            problems.append("two classes share a code")
    inputs = manifest.get("input")
    if not isinstance(inputs, dict):
        problems.append("input is missing")
    else:
        count = inputs.get("band_count")
        if not is_int(count) or not 1 <= count <= 100_000:
            problems.append(f"input.band_count is {count!r}, not a whole number of bands")
        selection = inputs.get("band_selection")
        if selection is not None and (not isinstance(selection, list) or not all(is_int(b) and b >= 1
                                                                                  for b in selection)):
            problems.append("input.band_selection is not a list of band numbers")
    if not isinstance(manifest.get("method"), str):
        problems.append("method is not a name")
    elif manifest["method"] in MODELS and MODELS[manifest["method"]].target != manifest.get("target", "class"):
        problems.append(f"method {manifest['method']} does not map a {manifest.get('target', 'class')}")
    for key in ("method_params", "features"):
        if key in manifest and not isinstance(manifest[key], dict):
            problems.append(f"{key} is not a table")
    members = manifest.get("members")
    if members is not None and (not isinstance(members, dict) or not all(
            is_int(v) and 0 <= v <= MAX_MEMBER_BYTES for v in members.values())):
        problems.append("members does not give a size in bytes for each member")
    arrays = manifest.get("arrays")
    if arrays is not None:
        found = ["arrays is not a table of members"] if not isinstance(arrays, dict) else [
            p for p in (layout_problem(m, layout) for m, layout in arrays.items()) if p]
        if not found and any(member_limit(m, layout) > MAX_MEMBER_BYTES for m, layout in arrays.items()):
            found = [f"arrays lists more than {MAX_MEMBER_BYTES // 2**30} GiB in one member"]
        problems += found[:3]
    return problems


def check_manifest(manifest: dict[str, Any], path: str | Path) -> None:
    """Refuse a manifest whose structure is not what this engine writes, naming every problem.

    Raises:
        ModelFileError: one sentence listing the problems, and what to do.

    """
    problems = _problems(manifest)
    if problems:
        raise ModelFileError(f"Model file {path} is damaged or was not written by Landprobe: {'; '.join(problems)}. "
                             "Train the model again, or use the original file.")


def read_member(zf: zipfile.ZipFile, name: str, manifest: dict[str, Any], path: str | Path) -> bytes:
    """One member of a model file, read only if its size fits the manifest's record (or is plausible).

    The zip's declared size is checked before inflating anything (:mod:`zipfile` never inflates past it), against the
    size recorded for the member and the most its recorded arrays can take; once read, an array member's headers are
    checked against the recorded arrays (an ``.npz`` without a record: its headers alone, plain numbers stored as is).

    Raises:
        KeyError: when the member is missing.
        ModelFileError: when the member is larger than the manifest says, inflates like a zip bomb, or holds other
            arrays than the manifest lists.

    """
    info = zf.getinfo(name)
    layout = (manifest.get("arrays") or {}).get(name)
    if layout is None and "arrays" in manifest and _holds_arrays(name):
        raise ModelFileError(f"Model file {path} is damaged or altered: its manifest does not list the arrays of its "
                             f"member {name}. Train the model again, or use the original file.")
    if layout is not None and info.file_size > member_limit(name, layout):
        raise ModelFileError(f"Model file {path} is damaged or altered: its member {name} holds {info.file_size:,} "
                             f"bytes, more than the {member_limit(name, layout):,} its arrays take by its manifest. "
                             "Train the model again, or use the original file.")
    recorded = (manifest.get("members") or {}).get(name)
    if recorded is not None and info.file_size != recorded:
        raise ModelFileError(f"Model file {path} is damaged or altered: its member {name} holds {info.file_size:,} "
                             f"bytes, its manifest says {recorded:,}. Train the model again, or use the original file.")
    ratio = info.file_size / max(info.compress_size, 1)  # the record is in the same file: the ratio always counts
    if info.file_size > MAX_MEMBER_BYTES or (info.file_size > 2**20 and ratio > MAX_COMPRESSION_RATIO):
        raise ModelFileError(f"Model file {path} is refused: its member {name} would inflate {info.compress_size:,} "
                             f"bytes into {info.file_size:,}, which no Landprobe model does. Use the original file.")
    data = zf.read(info)
    if layout is not None:
        check_layout(data, name, layout, path)
    elif name.endswith(".npz"):  # a file from before the record: its headers are still checked before any array
        member_layout(data, name, path)
    return data


def load_model(path: str | Path) -> LoadedModel:
    """Load a model file: the manifest, then the probe from arrays (``allow_pickle=False``) and blobs."""
    manifest, zf = _open(path)
    with zf:
        try:
            arrays = _read_npz(read_member(zf, "arrays.npz", manifest, path), path)
            encoder = (_read_npz(read_member(zf, "encoder.npz", manifest, path), path)
                       if "encoder.npz" in zf.namelist() else {})
            blobs = {n.removeprefix("blobs/"): read_member(zf, n, manifest, path) for n in zf.namelist()
                     if n.startswith("blobs/")}
        except (KeyError, OSError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
            raise ModelFileError(f"Model file {path} is damaged ({exc}). Train the model again, or use the original "
                                 "file.") from exc
    if manifest.get("method") not in MODELS:
        raise ModelFileError(f"Model {path} uses method {manifest.get('method')!r}, unknown to this engine; update it.")
    try:
        probe = MODELS[manifest["method"]].from_state(manifest.get("method_params", {}), arrays, blobs)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise ModelFileError(f"Model file {path} is damaged: its {manifest['method']} parameters do not fit its "
                             f"arrays ({type(exc).__name__}: {exc}). Train the model again, or use the original "
                             "file.") from exc
    return LoadedModel(manifest=manifest, probe=probe, encoder_arrays=encoder)
