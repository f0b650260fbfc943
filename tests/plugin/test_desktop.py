"""QGIS desktop under Xvfb with the plugin installed from its zip: the sample pipeline, styled layers, screenshots.

The session (``desktop_session.py``) runs inside ``qgis --code`` with a fresh profile whose plugin folder holds the
unpacked zip. The screenshots are kept in ``output/screenshots/`` as test artefacts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = ROOT / "output" / "screenshots"


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
    assert (out / "result.json").is_file(), f"rc {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    info = json.loads((out / "result.json").read_text())
    assert "error" not in info, info.get("error")
    assert "landprobe" in info["providers"] and info["toolbox_shown"]
    assert info["layers"]["Classified raster"] == "paletted" and info["layers"]["Confidence"] == "singlebandpseudocolor"
    assert info["class_labels"] == ["barren", "forest", "herbaceous", "urban", "water"]
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for name in ("canvas.png", "window.png"):
        shutil.copy(out / name, ARTEFACTS / name)
    canvas = QImage(str(out / "canvas.png"))
    assert canvas.width() > 300 and canvas.height() > 300
    counts: dict[int, int] = {}
    for y in range(0, canvas.height(), 2):
        for x in range(0, canvas.width(), 2):
            rgb = canvas.pixel(x, y) & 0xFFFFFF
            counts[rgb] = counts.get(rgb, 0) + 1
    total = sum(counts.values())
    assert len(counts) > 5 and max(counts.values()) < 0.9 * total  # not blank, not one colour
    shares = {c: counts.get(QColor(c).rgb() & 0xFFFFFF, 0) / total for c in info["class_colors"]}
    assert sum(shares.values()) > 0.8, shares  # the map is drawn in the classes' own colours
    assert sum(1 for share in shares.values() if share > 0.005) >= 4, shares
