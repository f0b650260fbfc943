"""The classes of a set of samples: those that got no pixel are left out, named, and the rest numbered again."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from ..core.errors import InputError
from ..io.labels import Samples

logger = logging.getLogger(__name__)


def drop_empty_classes(samples: Samples) -> Samples:
    """Remove classes that got no pixel (all their polygons outside the raster or on nodata), naming them.

    The dropped names go into ``samples.stats["dropped_classes"]`` (for the report). Classes from a text field are
    numbered again 1..n in name order, so the map's legend has no gap; whole-number codes are kept as they are.
    """
    present = np.unique(samples.y)
    if len(present) == len(samples.classes):
        return samples
    missing = [c.name for i, c in enumerate(samples.classes) if i not in present]
    logger.warning("Left out of the model, no valid pixel under their labels: %s. Check that these polygons lie "
                   "on the raster and on pixels with values.", ", ".join(missing))
    if len(present) < 2:
        raise InputError("Fewer than two classes have valid pixels under the labels: nothing to classify. Check "
                         "that the labels lie on the raster, on pixels that hold values.")
    remap = np.full(len(samples.classes), -1)
    remap[present] = np.arange(len(present))
    samples.y = remap[samples.y]
    kept = [samples.classes[i] for i in present]
    if any(c.name != str(c.code) for c in samples.classes):  # text classes: codes are ours, keep them 1..n
        kept = [replace(c, code=i + 1) for i, c in enumerate(kept)]
    samples.classes = kept
    samples.stats["dropped_classes"] = missing
    return samples
