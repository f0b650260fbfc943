"""Which field of a label layer holds the classes, when the user has not said.

QGIS's field selector falls back on the first field, which is an identifier in most layers (``fid`` in a GeoPackage,
``id`` in a shapefile): a model of one class per polygon, or classes "1".."5" from a numbering, without a word. So
*Class field* is optional: left empty, the field is chosen here and named in the log, and the dialog opens with the
guess for the layer it offers first. The engine refuses a field that looks like an identifier whatever the choice.

The rule, in order: a text field whose name says class (:data:`CLASS_WORDS`, e.g. ``class``, ``label``,
``landcover``, ``LC_TYPE``); a whole-number field with such a name; the first text field. A field with one distinct
value per feature, or with more distinct values than half the features, is never chosen.
"""

from __future__ import annotations

from typing import Any

from qgis.core import QgsFeatureSource, QgsProject, QgsVectorLayer

from ..engine_process import load_engine_file

#: The engine's list of class and identifier names (``engine/core/field_names.py``, standard library only).
_NAMES = load_engine_file("core/field_names.py")
CLASS_WORDS, ID_NAMES, _name_rank = _NAMES.CLASS_WORDS, _NAMES.ID_NAMES, _NAMES.name_rank


def guess_class_field(fields: Any, distinct: Any, n_features: int) -> str | None:
    """The field most likely to hold the classes, or None.

    Args:
        fields: a :class:`qgis.core.QgsFields`.
        distinct: a function of the field index giving its number of distinct values (None: unknown).
        n_features: the layer's feature count (-1 or 0: unknown).

    """
    def plausible(index: int) -> bool:
        if ID_NAMES.match(fields.at(index).name()):
            return False
        count = distinct(index)
        if count is None or n_features <= 0:
            return True
        return count >= 1 and not (n_features >= 6 and count > n_features / 2)

    named, numbers, texts = [], [], []
    for index in range(fields.count()):
        field = fields.at(index)
        is_text = field.type() == 10  # QVariant.String, without importing QVariant's enum (moved in Qt 6)
        is_whole = field.isNumeric() and field.precision() == 0 and field.typeName().lower() not in ("real", "double")
        rank = _name_rank(field.name())
        if not (is_text or is_whole) or not plausible(index):
            continue
        if rank is not None:
            (named if is_text else numbers).append((rank, index))
        elif is_text:
            texts.append(index)
    if named:
        return fields.at(min(named)[1]).name()
    if numbers:
        return fields.at(min(numbers)[1]).name()
    return fields.at(texts[0]).name() if texts else None


def guess_for_source(source: QgsFeatureSource) -> str | None:
    """:func:`guess_class_field` for a Processing feature source (counts its distinct values)."""
    fields = source.fields()
    return guess_class_field(fields, lambda i: len(source.uniqueValues(i, 10_000)), source.featureCount())


def guess_for_project() -> str | None:
    """The guess for the label layer a dialog is likely to offer: the active layer, else the first polygon layer."""
    layer = None
    try:
        from qgis.utils import iface
        layer = iface.activeLayer() if iface is not None else None
    except Exception:  # no desktop (qgis_process, tests): no active layer
        layer = None
    candidates = [layer] if isinstance(layer, QgsVectorLayer) else []
    project = QgsProject.instance()
    if project is not None:
        candidates += [lyr for lyr in project.mapLayers().values() if isinstance(lyr, QgsVectorLayer)
                       and lyr.isSpatial()]
    for candidate in candidates:
        if candidate.isValid() and candidate.featureCount() < 1_000_000:
            return guess_for_source(candidate)
    return None
