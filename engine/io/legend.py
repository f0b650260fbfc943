"""The legend of a class raster, in the files themselves: GDAL category names, a raster attribute table, a QGIS style.

The colour table goes into the GeoTIFF. GDAL keeps category names and raster attribute tables in the ``.aux.xml``
side-car for GeoTIFF, so any GDAL-based GIS shows them; QGIS loads ``<name>.qml`` beside a raster as its default
style, a paletted renderer with the class names and colours.

Category names are a list indexed by pixel value, so codes that are no class (below the largest code, e.g. the code
of a class left out of the model because no valid pixel lay under its labels) need an entry too. An empty entry
reads as a class without a name: QGIS labels it with the bare number, ``gdalinfo`` lists it with nothing after it.
Those entries are named :data:`NOT_A_CLASS` instead, and nodata is named :data:`NODATA_NAME`. The raster attribute
table, which QGIS (3.30 and later) and ArcGIS read, and the ``.qml`` list the real classes only.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

#: Category name of the nodata value.
NODATA_NAME = "no data"
#: Category name of a value in the list that the map never contains: no class has it and it is not nodata.
NOT_A_CLASS = "(not a class)"
#: GDAL's category names are a list indexed by value: only for values from 0 to this.
MAX_CATEGORY_VALUE = 65535


def category_names(classes: list[dict[str, Any]], nodata: int | None) -> list[str] | None:
    """GDAL category names of a class map: entry ``v`` names pixel value ``v``, from 0 to the largest code or nodata.

    Every value the map can contain has its name: each class code its class name, nodata :data:`NODATA_NAME`.
    Values in between that are neither are :data:`NOT_A_CLASS`, never an empty name.

    Args:
        classes: the classes, each with a whole-number ``code`` and a ``name``.
        nodata: the map's nodata value, or ``None``.

    Returns:
        The list, or ``None`` when a code lies outside 0 to :data:`MAX_CATEGORY_VALUE` (the list cannot hold it).
        A nodata value outside that range is left out of the list.

    """
    names = {int(c["code"]): str(c["name"]) for c in classes}
    if not names or max(names) > MAX_CATEGORY_VALUE or min(names) < 0:
        return None
    listed_nodata = nodata is not None and 0 <= int(nodata) <= MAX_CATEGORY_VALUE and int(nodata) not in names
    top = max(max(names), int(nodata) if listed_nodata else 0)
    return [names.get(v, NODATA_NAME if listed_nodata and v == nodata else NOT_A_CLASS) for v in range(top + 1)]


def _rgb(color: Any) -> tuple[int, int, int] | None:
    text = str(color or "").lstrip("#")
    if len(text) != 6:
        return None
    try:
        return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
    except ValueError:
        return None


def _attribute_table(classes: list[dict[str, Any]]) -> str:
    """A thematic GDAL raster attribute table (PAM XML): one row per class with its code, name and colour."""
    colors = [_rgb(c.get("color")) for c in classes]
    with_color = all(rgb is not None for rgb in colors)
    # (name, type: 0 integer / 2 string, usage: 5 MinMax (the value) / 2 Name / 6-8 Red, Green, Blue)
    fields = [("Value", 0, 5), ("Class_Name", 2, 2)]
    if with_color:
        fields += [("Red", 0, 6), ("Green", 0, 7), ("Blue", 0, 8)]
    defs = "".join(f'      <FieldDefn index="{i}">\n        <Name>{name}</Name>\n        <Type>{kind}</Type>\n'
                   f"        <Usage>{usage}</Usage>\n      </FieldDefn>\n"
                   for i, (name, kind, usage) in enumerate(fields))
    rows = []
    for i, (c, rgb) in enumerate(zip(classes, colors, strict=True)):
        values = [str(int(c["code"])), escape(str(c["name"]), quote=False)]
        if with_color and rgb is not None:
            values += [str(v) for v in rgb]
        cells = "".join(f"<F>{v}</F>" for v in values)
        rows.append(f'      <Row index="{i}">{cells}</Row>\n')
    return (f'    <GDALRasterAttributeTable tableType="thematic">\n{defs}{"".join(rows)}'
            "    </GDALRasterAttributeTable>\n")


def write_category_names(aux_path: Path, classes: list[dict[str, Any]], nodata: int | None) -> None:
    """Write a PAM ``.aux.xml`` naming the classes of band 1: GDAL category names and a raster attribute table.

    Args:
        aux_path: the side-car, ``<raster>.aux.xml``.
        classes: the classes of the model, each with ``code``, ``name`` and ``color`` (``#rrggbb``).
        nodata: the map's nodata value.

    """
    ordered = sorted(classes, key=lambda c: int(c["code"]))
    entries = category_names(ordered, nodata)
    categories = ""
    if entries is not None:
        listed = "".join(f"<Category>{escape(n, quote=False)}</Category>" for n in entries)
        categories = f"    <CategoryNames>{listed}</CategoryNames>\n"
    table = _attribute_table(ordered) if ordered else ""
    aux_path.write_text(f'<PAMDataset>\n  <PAMRasterBand band="1">\n{categories}{table}  </PAMRasterBand>\n'
                        "</PAMDataset>\n", encoding="utf-8")


def vrt_class_band(classes: list[dict[str, Any]], nodata: int | None) -> str:
    """The legend of a class map's VRT band, as VRT XML elements: palette colours, category names, attribute table.

    A VRT keeps its band's metadata in itself (no ``.aux.xml``): these are the same names and colours that
    :func:`write_category_names` and the colour table of *Classify raster*'s map carry.
    """
    ordered = sorted(classes, key=lambda c: int(c["code"]))
    entries = category_names(ordered, nodata)
    items = ""
    codes = {int(c["code"]): _rgb(c.get("color")) for c in ordered}
    if codes and 0 <= min(codes) and max(codes) <= 255:
        rows = []
        for value in range(max(codes) + 1):
            rgb = codes.get(value)
            red, green, blue = rgb or (0, 0, 0)
            rows.append(f'<Entry c1="{red}" c2="{green}" c3="{blue}" c4="{255 if rgb else 0}"/>')
        items += f"<ColorInterp>Palette</ColorInterp><ColorTable>{''.join(rows)}</ColorTable>"
    if entries is not None:
        items += "<CategoryNames>" + "".join(f"<Category>{escape(n, quote=False)}</Category>" for n in entries) + \
            "</CategoryNames>"
    return items + (_attribute_table(ordered) if ordered else "")


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


def write_ramp_style(qml_path: Path, minimum: float = 0.0, maximum: float = 1.0) -> None:
    """Write a QGIS style showing band 1 from ``minimum`` to ``maximum`` on the viridis ramp.

    The default, 0 to 1, suits probabilities, confidence and similarity.
    """
    stops = len(VIRIDIS) - 1
    span = maximum - minimum
    items = "\n".join(
        f'            <item value="{minimum + span * i / stops:.6g}" color="{color}" alpha="255" '
        f'label="{minimum + span * i / stops:.3g}"/>' for i, color in enumerate(VIRIDIS))
    qml_path.write_text(f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1"
                    classificationMin="{minimum:.6g}" classificationMax="{maximum:.6g}" nodataColor="">
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" minimumValue="{minimum:.6g}"
                         maximumValue="{maximum:.6g}" labelPrecision="2">
{items}
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
  </pipe>
</qgis>
""", encoding="utf-8")
