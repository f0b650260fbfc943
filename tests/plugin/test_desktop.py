"""QGIS desktop under Xvfb with the plugin installed from its zip: the sample pipeline, styled layers, screenshots.

The session (``desktop_session.py``) runs inside ``qgis --code`` with a fresh profile whose plugin folder holds the
unpacked zip. The screenshots (the Train classifier dialog, the Layers panel after classifying, a fine-tune log, the
training report, the canvas and the main window), the analyses' maps (clusters, similarity to forest, change and
from-to transitions, as styled by the plugin) and the fine-tune log's text are kept in ``output/screenshots/`` as test
artefacts, copied before any check so that a failing run still leaves them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = ROOT / "output" / "screenshots"
#: The screenshots the session writes (see ``desktop_session.py``).
SHOTS = ("dialog.png", "layers.png", "finetune_log.png", "report.png", "canvas.png", "window.png")
#: The analyses' maps (the README's pictures) and the renderer each layer has once the plugin styled it.
ANALYSES = {"cluster.png": ("cluster", "paletted"), "similarity.png": ("similarity", "singlebandpseudocolor"),
            "change.png": ("change", "singlebandpseudocolor"), "transitions.png": ("transitions", "paletted"),
            "suggestions.png": ("suggestions", "paletted")}
CLASSES = ["barren", "forest", "herbaceous", "urban", "water"]
#: Lines that do not belong in a fine-tune log shown to a GIS user: Lightning's banners and tips, and Python
#: warnings from the libraries (which point at a file in site-packages).
NOISE = ("GPU available", "TPU available", "litmodels", "litlogger", "DeprecationWarning", "site-packages/",
         "fontManager", "polygon_groups")


def _colours(image: Any) -> dict[int, int]:
    """How many pixels of each colour (RGB) in a QImage, every other pixel of every other row."""
    counts: dict[int, int] = {}
    for y in range(0, image.height(), 2):
        for x in range(0, image.width(), 2):
            rgb = image.pixel(x, y) & 0xFFFFFF
            counts[rgb] = counts.get(rgb, 0) + 1
    return counts


@pytest.mark.skipif(shutil.which("xvfb-run") is None or shutil.which("qgis") is None,
                    reason="needs xvfb-run and QGIS desktop (make setup installs both)")
def test_desktop_session_from_the_zip(engine_python: str, tmp_path: Path) -> None:
    from qgis.PyQt.QtGui import QColor, QImage

    built = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_zip.py"), "--output", str(tmp_path)],
                           capture_output=True, text=True, check=True)
    plugins = tmp_path / "profile" / "profiles" / "default" / "python" / "plugins"
    with zipfile.ZipFile(built.stdout.split(" (")[0]) as zf:
        zf.extractall(plugins)
    ini = tmp_path / "profile" / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[PythonPlugins]\nlandprobe=true\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ) | {"LANDPROBE_PYTHON": engine_python, "LANDPROBE_DESKTOP_OUT": str(out),
                              "LANDPROBE_SAMPLE": str(ROOT / "resources" / "sample"), "HOME": str(tmp_path)}
    env.pop("QT_QPA_PLATFORM", None)  # a real X display (Xvfb), not the offscreen platform
    proc = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "qgis", "--profiles-path",
                           str(tmp_path / "profile"), "--nologo", "--noversioncheck", "--code",
                           str(Path(__file__).with_name("desktop_session.py"))],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for name in (*SHOTS, *ANALYSES, "report_full.png", "finetune_log.txt", "result.json"):
        if (out / name).is_file():
            shutil.copy(out / name, ARTEFACTS / name)
    assert (out / "result.json").is_file(), f"rc {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    info = json.loads((out / "result.json").read_text())
    assert "error" not in info, info.get("error")
    assert "landprobe" in info["providers"] and info["toolbox_shown"]
    assert info["layers"]["Classified raster"] == "paletted" and info["layers"]["Confidence"] == "singlebandpseudocolor"
    assert info["class_labels"] == CLASSES
    for name in SHOTS:
        shot = QImage(str(out / name))
        assert shot.width() > 200 and shot.height() > 200, (name, info["errors"])

    # The layer tree the plugin leaves after Classify raster: the class map on top and shown; confidence and
    # probabilities below it and unchecked; the probabilities as a group of one layer per class, named after it.
    tree = info["layer_tree"]
    assert tree[0]["type"] == "layer" and tree[0]["source"] == "classes.tif", tree
    assert tree[0]["visible"] and tree[0]["shown"], tree[0]
    confidence = [row for row in tree if row["type"] == "layer" and row["source"] == "confidence.tif"]
    assert len(confidence) == 1 and not confidence[0]["visible"], confidence
    groups = [i for i, row in enumerate(tree) if row["type"] == "group" and "probabilit" in row["name"].lower()]
    assert len(groups) == 1, tree
    group = tree[groups[0]]
    members = []
    for row in tree[groups[0] + 1:]:
        if row["depth"] <= group["depth"]:
            break
        members.append(row)
    # One layer per class, named after it, and the multi-band layer itself (Identify shows every probability).
    assert [row["type"] for row in members] == ["layer"] * (len(CLASSES) + 1), members
    assert all(row["source"].startswith("probabilities") for row in members), members
    per_class = [row for row in members if row["name"].startswith("probability of ")]
    assert [row["name"] for row in per_class] == [f"probability of {name}" for name in CLASSES], members
    probability = [row for row in tree if row["type"] == "layer" and row["source"].startswith("probabilities")]
    assert probability == members, probability  # every probability layer is in the group
    assert not group["visible"] or not any(row["visible"] for row in members), (group, members)
    assert not any(row["shown"] for row in probability), probability
    assert tree.index(confidence[0]) > 0 and groups[0] > 0  # below the class map

    # The Train classifier dialog picks the sample's class field (its fields are id and class) by itself.
    dialog = info.get("dialog", {})
    if dialog.get("FIELD") is not None:
        assert dialog["FIELD"] == "class", dialog

    # The fine-tune log a user reads: epochs, and none of Lightning's banners or deprecation noise.
    assert info.get("finetune", {}).get("ok"), info.get("finetune")
    log = (out / "finetune_log.txt").read_text(encoding="utf-8").splitlines()
    noise = [line for line in log if any(word in line for word in NOISE)]
    assert not noise, noise
    assert any("Epoch" in line for line in log), log[-20:]
    assert not info["errors"], info["errors"]

    canvas = QImage(str(out / "canvas.png"))
    assert canvas.width() > 300 and canvas.height() > 300
    counts = _colours(canvas)
    total = sum(counts.values())
    assert len(counts) > 5 and max(counts.values()) < 0.9 * total  # not blank, not one colour
    drawn = total - counts.get(0xFFFFFF, 0)  # the canvas's white background around the map does not count
    shares = {c: counts.get(QColor(c).rgb() & 0xFFFFFF, 0) / drawn for c in info["class_colors"]}
    assert sum(shares.values()) > 0.8, shares  # the map is drawn in the classes' own colours
    assert sum(1 for share in shares.values() if share > 0.005) >= 4, shares

    # The analyses, each layer styled by the plugin as it loaded, shown alone and saved cropped to the scene.
    assert info.get("analyses") == {key: renderer for key, renderer in ANALYSES.values()}, (
        info.get("analyses"), info.get("analyses_details"))
    details = info["analyses_details"]
    for name, (key, renderer) in ANALYSES.items():
        picture = QImage(str(out / name))
        assert 200 < picture.width() <= 800 and picture.height() > 200, (name, picture.width(), picture.height())
        counts = _colours(picture)
        total = sum(counts.values())
        assert max(counts.values()) < 0.95 * total, (name, len(counts))  # not blank, not one colour
        if renderer == "paletted":  # drawn in the legend's colours (the clusters may be as few as 2 or 3)
            legend = {QColor(c).rgb() & 0xFFFFFF for c in details[key]["legend"].values()}
            shares = {c: counts.get(c, 0) / total for c in legend}
            drawn_over = 0.8 if key == "suggestions" else 0.95  # the points and polygon outlines cover some
            assert sum(shares.values()) > drawn_over, (name, shares)
            assert sum(1 for v in shares.values() if v > 0.005) >= 2, (name, shares)
        else:  # a ramp: many colours
            assert len(counts) > 5, (name, len(counts))
    # the suggested points: as many as asked, with the model's top two classes and an empty class field to fill
    suggested = details["suggestions"]
    assert suggested["points"] == 30 and {"class", "top1", "top2", "confidence"} <= set(suggested["fields"])
    assert "Places to label next" in suggested["picture"]["layers"], suggested["picture"]  # over the class map
