"""The legend of a class raster, in the files themselves: GDAL category names and a QGIS default style.

The colour table goes into the GeoTIFF. GDAL keeps category names in the ``.aux.xml`` side-car for GeoTIFF, so any
GDAL-based GIS shows them; QGIS loads ``<name>.qml`` beside a raster as its default style, a paletted renderer with
the class names and colours.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any


def write_category_names(aux_path: Path, classes: list[dict[str, Any]], nodata: int) -> None:
    """Write a PAM ``.aux.xml`` with the category names of band 1, indexed by pixel value."""
    names = {int(c["code"]): str(c["name"]) for c in classes}
    if max(names) > 65535 or min(names) < 0:
        return  # category names are a list indexed by value: only for non-negative codes
    entries = [names.get(v, "no data" if v == nodata else "") for v in range(max(names) + 1)]
    categories = "".join(f"<Category>{escape(n)}</Category>" for n in entries)
    aux_path.write_text(
        f'<PAMDataset>\n  <PAMRasterBand band="1">\n    <CategoryNames>{categories}</CategoryNames>\n'
        "  </PAMRasterBand>\n</PAMDataset>\n", encoding="utf-8")


def write_paletted_style(qml_path: Path, classes: list[dict[str, Any]]) -> None:
    """Write a QGIS style (``.qml``) with a paletted renderer showing each class's name and colour."""
    entries = "\n".join(
        f'        <paletteEntry value="{int(c["code"])}" color="{escape(c["color"])}" alpha="255" '
        f'label="{escape(str(c["name"]), quote=True)}"/>' for c in classes)
    qml_path.write_text(f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
  </pipe>
</qgis>
""", encoding="utf-8")


#: Viridis at five stops: a perceptually uniform ramp that reads in grey and for colour-blind users.
VIRIDIS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")


def write_ramp_style(qml_path: Path) -> None:
    """Write a QGIS style showing band 1 from 0 to 1 on the viridis ramp (probabilities, confidence)."""
    stops = len(VIRIDIS) - 1
    items = "\n".join(
        f'            <item value="{i / stops:g}" color="{color}" alpha="255" label="{i / stops:g}"/>'
        for i, color in enumerate(VIRIDIS))
    qml_path.write_text(f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1" classificationMin="0"
                    classificationMax="1" nodataColor="">
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" minimumValue="0"
                         maximumValue="1" labelPrecision="2">
{items}
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
  </pipe>
</qgis>
""", encoding="utf-8")
