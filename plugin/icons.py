"""The Landprobe icon, shared by the provider and its algorithms (a leaf module: it imports neither)."""

from __future__ import annotations

from pathlib import Path

from qgis.PyQt.QtGui import QIcon

ICON_PATH = Path(__file__).resolve().parent.parent / "resources" / "icon.svg"


def provider_icon() -> QIcon:
    """The Landprobe icon."""
    return QIcon(str(ICON_PATH))
