"""Model files from anywhere: the manifest is checked, members are read with size limits, nothing runs code."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine.core.errors import ModelFileError
from engine.probes.model_file import load_model, read_manifest

REPO = Path(__file__).resolve().parents[2]


def _rewrite(source: Path, target: Path, manifest: dict | None = None, members: dict[str, bytes] | None = None,
             drop_record: bool = False) -> Path:
    """A copy of model ``source`` with its manifest and some members replaced."""
    with zipfile.ZipFile(source) as zf:
        old = json.loads(zf.read("manifest.json"))
        content = {n: zf.read(n) for n in zf.namelist() if n != "manifest.json"}
    new = manifest if manifest is not None else old
    if drop_record:  # as written before the sizes and arrays were recorded
        new.pop("members", None)
        new.pop("arrays", None)
    content |= members or {}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(new))
        for name, data in content.items():
            zf.writestr(name, data)
    return target


def _bomb(source: Path, target: Path, inflated: int, record: bool) -> Path:
    """``source`` with ``arrays.npz`` replaced by ``inflated`` zero bytes (about 1000x compression), streamed."""
    with zipfile.ZipFile(source) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    if record:  # a manifest that lies along with the member, about its size and its arrays
        manifest["members"]["arrays.npz"] = inflated
        manifest["arrays"]["arrays.npz"] = {"coef": ["|u1", [inflated - 4096]]}
    else:
        manifest.pop("members", None)
        manifest.pop("arrays", None)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        with zf.open("arrays.npz", "w", force_zip64=True) as member:
            chunk = bytes(2**24)
            for _ in range(inflated // len(chunk)):
                member.write(chunk)
    return target


def test_the_model_records_the_size_of_every_member(sample_model: Path) -> None:
    manifest = read_manifest(sample_model)
    with zipfile.ZipFile(sample_model) as zf:
        sizes = {i.filename: i.file_size for i in zf.infolist() if i.filename != "manifest.json"}
    assert manifest["members"] == sizes and "arrays.npz" in sizes


@pytest.mark.parametrize("record", [False, True], ids=["old file without a size record", "lying size record"])
def test_a_zip_bomb_is_refused_before_it_inflates(tmp_path: Path, sample_model: Path, record: bool) -> None:
    bomb = _bomb(sample_model, tmp_path / "bomb.lpmodel", 2**28, record)
    assert bomb.stat().st_size < 2**20
    with pytest.raises(ModelFileError, match="would inflate") as caught:  # a record in the same file proves nothing
        load_model(bomb)
    assert "pickle" not in str(caught.value) and str(bomb) in str(caught.value)


def test_refusing_a_zip_bomb_takes_little_memory(tmp_path: Path, sample_model: Path) -> None:
    bomb = _bomb(sample_model, tmp_path / "bomb.lpmodel", 2**29, record=False)
    code = (
        "import resource, sys\n"
        "from engine.probes.model_file import load_model\n"
        "from engine.core.errors import ModelFileError\n"
        "import numpy, engine.probes.registry\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    load_model(sys.argv[1])\nexcept ModelFileError:\n    pass\n"
        "print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True, text=True, cwd=REPO,
                         check=True).stdout.split()
    before, after = (int(v) for v in out)  # kilobytes
    assert after - before < 200 * 1024  # the 512 MiB member was never inflated


def test_a_member_that_differs_from_its_record_is_refused(tmp_path: Path, sample_model: Path) -> None:
    with zipfile.ZipFile(sample_model) as zf:
        arrays = zf.read("arrays.npz")
    altered = _rewrite(sample_model, tmp_path / "altered.lpmodel", members={"arrays.npz": arrays + bytes(100)})
    with pytest.raises(ModelFileError, match=r"member arrays\.npz holds .* its manifest says"):
        load_model(altered)


def test_an_object_array_is_refused_without_advising_pickle(tmp_path: Path, sample_model: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, coef=np.array([{"a": 1}], dtype=object))
    hostile = _rewrite(sample_model, tmp_path / "objects.lpmodel", members={"arrays.npz": buffer.getvalue()},
                       drop_record=True)
    with pytest.raises(ModelFileError, match="Python objects") as caught:
        load_model(hostile)
    assert "pickle" not in str(caught.value).lower()


@pytest.mark.parametrize(("change", "expected"), [
    (lambda m: m["input"].update(band_count="8"), r"input\.band_count is '8'"),
    (lambda m: m.update(classes=[]), "classes is not a non-empty list"),
    (lambda m: m["classes"].append(dict(m["classes"][0])), "two classes share a code"),
    (lambda m: m["classes"][0].update(code="1"), "class 1 lacks a whole-number code"),
    (lambda m: m.update(format_version="1"), "format_version"),
    (lambda m: m["input"].update(band_selection=[0, "x"]), "band_selection"),
])
def test_a_manifest_is_checked_with_one_phrase_per_problem(tmp_path: Path, sample_model: Path, change,
                                                           expected: str) -> None:
    manifest = read_manifest(sample_model)
    change(manifest)
    damaged = _rewrite(sample_model, tmp_path / "damaged.lpmodel", manifest=manifest)
    with pytest.raises(ModelFileError, match=expected) as caught:
        read_manifest(damaged)
    assert str(damaged) in str(caught.value) and "Train the model again" in str(caught.value)


def test_an_oversized_manifest_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.lpmodel"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", b" " * (17 * 2**20))
    with pytest.raises(ModelFileError, match="not a Landprobe model file"):
        read_manifest(path)


def test_a_deep_model_whose_weights_lie_about_their_shapes_is_refused(tmp_path: Path, sample_model: Path) -> None:
    from engine.deep.package import METHOD, WEIGHTS, load_deep_model

    header = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}).encode()
    weights = struct.pack("<Q", len(header)) + header + bytes(16)  # 16 bytes where the header claims 4 MB
    for recorded, expected in [(False, "do not match their own header"),
                               (True, "holds more or fewer bytes than its header lists")]:
        manifest = read_manifest(sample_model) | {"method": METHOD}
        manifest.pop("members")
        manifest["arrays"] = {WEIGHTS: {"w": ["F32", [1000, 1000]]}}  # the manifest agrees with the lying header
        if not recorded:  # a file from before the arrays were recorded: safetensors itself refuses it
            manifest.pop("arrays")
        path = tmp_path / f"deep-{recorded}.lpmodel"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("manifest.json", json.dumps(manifest))
            zf.writestr(WEIGHTS, weights)
        with pytest.raises(ModelFileError, match=expected):
            load_deep_model(path)


def test_the_model_records_every_arrays_type_and_shape(sample_model: Path) -> None:
    manifest = read_manifest(sample_model)
    with zipfile.ZipFile(sample_model) as zf, np.load(io.BytesIO(zf.read("arrays.npz"))) as npz:
        actual = {k: [npz[k].dtype.str, list(npz[k].shape)] for k in npz.files}
    assert manifest["arrays"] == {"arrays.npz": actual} and actual


def test_a_member_larger_than_its_recorded_arrays_is_refused_before_it_is_read(tmp_path: Path,
                                                                               sample_model: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(sample_model) as zf, np.load(io.BytesIO(zf.read("arrays.npz"))) as npz:
        np.savez(buffer, **{k: npz[k] for k in npz.files}, extra=np.zeros(3_000_000, dtype="uint8"))
    manifest = read_manifest(sample_model)
    manifest["members"]["arrays.npz"] = len(buffer.getvalue())  # the sizes were updated, the arrays were not
    hostile = _rewrite(sample_model, tmp_path / "extra.lpmodel", manifest=manifest,
                       members={"arrays.npz": buffer.getvalue()})
    with pytest.raises(ModelFileError, match=r"more than the [\d,]+ its arrays take by its manifest"):
        load_model(hostile)


def test_an_array_whose_header_differs_from_the_manifest_is_refused(tmp_path: Path, sample_model: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(sample_model) as zf, np.load(io.BytesIO(zf.read("arrays.npz"))) as npz:
        arrays = {k: npz[k] for k in npz.files}
    name = max(arrays, key=lambda k: arrays[k].ndim)
    assert arrays[name].ndim == 2
    arrays[name] = arrays[name].T.copy()  # same bytes, the shape transposed
    np.savez(buffer, **arrays)
    hostile = _rewrite(sample_model, tmp_path / "reshaped.lpmodel", members={"arrays.npz": buffer.getvalue()})
    with pytest.raises(ModelFileError, match=f"does not hold the arrays its manifest lists .first differing: {name}"):
        load_model(hostile)


def test_arrays_compressed_inside_their_npz_member_are_refused(tmp_path: Path, sample_model: Path) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, coef=np.zeros((10_000, 100), dtype="float32"))  # inflates 1000x inside the member
    hostile = _rewrite(sample_model, tmp_path / "inner.lpmodel", members={"arrays.npz": buffer.getvalue()},
                       drop_record=True)
    with pytest.raises(ModelFileError, match=r"compressed inside\s+their .npz member"):
        load_model(hostile)
