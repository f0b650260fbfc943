"""The arrays inside a model file's members, read from their headers alone.

A model file records, in its manifest's ``arrays``, the name, data type and shape of every array in every array
member (``arrays.npz``, ``encoder.npz``: numpy's ``.npy`` headers; ``weights.safetensors``: the safetensors header).
From that record comes the most bytes each member may hold (:func:`member_limit`), checked before anything is inflated,
and once a member is read its headers are compared with the record (:func:`member_layout`) before any array is built,
so a header that lies about a shape is refused without allocating for it.

A layout is ``{array name: [dtype, shape]}`` where dtype is numpy's ``dtype.str`` (``"<f8"``) for ``.npz`` members
and safetensors' name (``"F32"``) for safetensors members.
"""

from __future__ import annotations

import io
import json
import math
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy

from ..core.errors import ModelFileError

#: Bytes a member may hold besides its arrays' data: per array (a zip entry, zip64 fields and the .npy header, or a
#: safetensors header entry) and per member (the zip's directory, or the safetensors header's length field).
ARRAY_OVERHEAD = 4096
MEMBER_OVERHEAD = 4096
#: A safetensors header is JSON listing the tensors: refuse a longer one before parsing it.
MAX_SAFETENSORS_HEADER = 64 * 2**20
SAFETENSORS_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                        "BOOL": 1, "U16": 2, "U32": 4, "U64": 8}
#: numpy kinds a model array may have: booleans, integers, floats, complex, and records of those (a scikit-learn
#: tree's nodes); never objects (``hasobject``), which numpy would unpickle.
NUMPY_KINDS = "biufcV"

Layout = dict[str, list[Any]]


def is_safetensors(member: str) -> bool:
    """Whether the member ``member`` is stored as safetensors (otherwise it is an ``.npz``)."""
    return member.endswith(".safetensors")


def itemsize(member: str, dtype: Any) -> int | None:
    """Bytes per element of ``dtype`` in ``member``'s format, or None when it is not a plain number type."""
    if not isinstance(dtype, str):
        return None
    if is_safetensors(member):
        return SAFETENSORS_ITEMSIZE.get(dtype)

    try:
        parsed = np.dtype(dtype)
    except (TypeError, ValueError):
        return None
    return parsed.itemsize if parsed.kind in NUMPY_KINDS and not parsed.hasobject else None


def layout_problem(member: str, layout: Any) -> str | None:
    """What is wrong with a recorded layout of ``member`` (one phrase), or None when it is sound."""
    if not isinstance(layout, dict):
        return f"arrays.{member} is not a table of arrays"
    for name, entry in layout.items():
        if (not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[1], list)
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in entry[1])):
            return f"array {name!r} of {member} lacks a data type and a shape"
        if itemsize(member, entry[0]) is None:
            return f"array {name!r} of {member} has data type {entry[0]!r}, not a plain number type"
    return None


def member_limit(member: str, layout: Layout) -> int:
    """The most bytes ``member`` may hold if its arrays are the ones ``layout`` lists (a sound layout)."""
    data = sum(math.prod(shape) * (itemsize(member, dtype) or 0) for dtype, shape in layout.values())
    return data + ARRAY_OVERHEAD * len(layout) + sum(2 * len(n) for n in layout) + MEMBER_OVERHEAD


def _damaged(path: str | Path, member: str, why: str) -> ModelFileError:
    return ModelFileError(f"Model file {path} is damaged or altered: its member {member} {why}. Train the model again, "
                          "or use the original file.")


def _npz_layout(data: bytes, member: str, path: str | Path) -> Layout:
    layout: Layout = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            for info in inner.infolist():
                if info.compress_type != zipfile.ZIP_STORED:
                    raise ModelFileError(f"Model file {path} is refused: its arrays ({info.filename}) are compressed "
                                         f"inside their .npz member {member}, which Landprobe never writes. Use the "
                                         "original file.")
                with inner.open(info) as fp:
                    version = npy.read_magic(fp)
                    read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                    shape, _, dtype = read_header(fp, max_header_size=ARRAY_OVERHEAD)
                    header = fp.tell()
                if dtype.hasobject or dtype.kind not in NUMPY_KINDS:
                    raise ModelFileError(f"Model file {path} is refused: its array {info.filename} holds Python "
                                         "objects instead of plain numbers, which could run code when read. Use a "
                                         "model written by Landprobe.")
                if header + math.prod(shape) * dtype.itemsize != info.file_size:
                    raise _damaged(path, member, f"has an array {info.filename} whose header does not match its data")
                layout[info.filename.removesuffix(".npy")] = [dtype.str, list(shape)]
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, struct.error) as exc:
        raise _damaged(path, member, f"is not a valid .npz archive ({type(exc).__name__})") from exc
    return layout


def _safetensors_layout(data: bytes, member: str, path: str | Path) -> Layout:
    if len(data) < 8:
        raise _damaged(path, member, "is too short for safetensors")
    (length,) = struct.unpack("<Q", data[:8])
    if length > min(MAX_SAFETENSORS_HEADER, len(data) - 8):
        raise _damaged(path, member, f"declares a header of {length:,} bytes")
    try:
        header = json.loads(data[8:8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(path, member, "has an unreadable header") from exc
    if not isinstance(header, dict):
        raise _damaged(path, member, "has an unreadable header")
    layout: Layout = {}
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, stop) = entry["dtype"], list(entry["shape"]), entry["data_offsets"]
            size = itemsize(member, dtype)
            if size is None or stop - begin != math.prod(shape) * size:
                raise ValueError(name)
        except (TypeError, KeyError, ValueError) as exc:
            raise _damaged(path, member, f"has a tensor {name} whose header does not match its data") from exc
        layout[name] = [dtype, shape]
        end = max(end, stop)
    if 8 + length + end != len(data):
        raise _damaged(path, member, "holds more or fewer bytes than its header lists")
    return layout


def member_layout(data: bytes, member: str, path: str | Path = "") -> Layout:
    """The arrays ``member`` holds, from their headers only (nothing is allocated for their data).

    Raises:
        ModelFileError: when a header is unreadable, does not match the data after it, or names an object array.

    """
    return (_safetensors_layout if is_safetensors(member) else _npz_layout)(data, member, path)


def check_layout(data: bytes, member: str, recorded: Layout, path: str | Path) -> None:
    """Refuse ``member`` when its arrays are not the ones its manifest recorded, naming the first that differs."""
    actual = member_layout(data, member, path)
    if actual != recorded:
        differing = sorted(set(actual) ^ set(recorded)) or sorted(k for k in actual if actual[k] != recorded[k])
        raise _damaged(path, member, f"does not hold the arrays its manifest lists (first differing: {differing[0]})")
