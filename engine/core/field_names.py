"""Which field names say "class" and which say "identifier": shared by the engine and the plugin.

Standard library only: the plugin loads this file by its path (as it loads :mod:`.seam`), so that the class field
it offers in a dialog and the one the engine names when it refuses an identifier follow the same words.
"""

from __future__ import annotations

import re

#: Words that name a class field, alone or as a part of the name (``class_name``, ``LC_TYPE``, ``landcover2020``);
#: earlier words are better.
CLASS_WORDS = ("class", "classe", "klasse", "klass", "label", "landcover", "land_cover", "lulc", "lc", "type",
               "category", "cover", "crop", "species", "code_class", "nomenclature", "legend", "name")
#: Names of identifier fields, never guessed as the class field.
ID_NAMES = re.compile(r"^(fid|id|gid|oid|objectid|object_id|ogc_fid|pk|uid|uuid|index|rowid|feature_id)$", re.I)


def name_rank(name: str) -> int | None:
    """How well a field name says "class": 0 is best; ``None`` when it does not."""
    lower = name.lower()
    parts = [p for p in re.split(r"[^a-z0-9]+|(?<=[a-z])(?=\d)", lower) if p]
    for rank, word in enumerate(CLASS_WORDS):
        if lower == word or word in parts or (len(word) > 3 and lower.startswith(word)):
            return rank
    return None
