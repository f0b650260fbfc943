"""Training and accuracy reports: a JSON file for machines and a self-contained HTML page next to it for people.

The HTML has inline CSS only, no script and no external URL, so it opens offline and can be mailed as one file.
Every section is optional: a report without validation figures or area estimates still renders. The JSON keeps
fractions from 0 to 1 and the engine's names (``svm``, ``polygon_groups``); the HTML speaks a GIS analyst's words:
methods and validation schemes by plain names, accuracies (overall, balanced, producer's, user's, per fold) as
percentages with one decimal, kappa and F1 as scores from 0 to 1, and beside a per-class accuracy built on few pixels
or few polygons its 95 % confidence interval and a warning.

The page's markup lives in Jinja templates, ``templates/report.html.j2`` and one template per section under
``templates/sections/`` (see :mod:`engine.assess.templating` for how they are loaded and escaped). This module
prepares the plain view data they show: texts in words, numbers as they are, formatted in the templates by the
filters of :data:`FILTERS` (``pct``, ``pm``, ``ha``, ``num``, ``fixed``).
"""

from __future__ import annotations

import base64
import json
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..io.rasters import atomic_output, check_writable
from ..probes.registry import PROBES
from .metrics import wilson_interval
from .selection import UNWEIGHTED_METHODS
from .templating import environment

if TYPE_CHECKING:
    from collections.abc import Callable

    from jinja2 import Environment

_INPUTS = (("raster", "Raster"), ("classified", "Classified map"), ("labels", "Labels"),
           ("reference", "Reference"), ("field", "Class field"), ("method", "Method"), ("model", "Model file"),
           ("created", "Created"))


_LABELS = {"n": "Pixels assessed", "n_folds": "Folds", "n_test_polygons": "Test polygons", "n_polygons": "Polygons",
           "n_train_polygons": "Training polygons", "n_train_pixels": "Training pixels",
           "n_reference_features": "Reference features", "seed": "Random seed of the split",
           "test_fraction": "Share of each class's polygons held out",
           "fold_overall_accuracy": "Overall accuracy per fold",
           "conflicting_pixels": "Pixels claimed by features of different classes (left out)",
           "reference_pixels_on_nodata": "Reference pixels on map nodata (left out)",
           "reference_classes_not_in_map": "Reference classes the map does not have",
           "map_classes_without_reference": "Map classes without reference pixels"}

#: Below this many pixels a per-class accuracy is marked as uncertain, with its confidence interval.
FEW_PIXELS = 30
#: Below this many polygons too: the pixels of one polygon are alike, so they tell little more than one pixel does.
FEW_POLYGONS = 3

#: Validation entries shown by their own rows or table, not in the list of details.
_SHOWN_APART = {"scheme", "description", "optimistic", "optimistic_reason", "per_class", "confusion_matrix",
                "classes", "overall_accuracy", "kappa", "macro_f1", "balanced_accuracy", "macro_f1_classes",
                "n_folds", "test_fraction", "fold_overall_accuracy", "fold_winners", "fold_methods",
                "n_test_polygons", "n_polygons", "n"}

#: The training data's figures in words (other keys are shown by their name).
_TRAINING_LABELS = {"n_samples": "Labelled pixels", "n_polygons": "Labelled polygons",
                    "n_samples_used": "Pixels used to train (at most a set number per class)",
                    "conflicting_pixels": "Pixels claimed by features of different classes (left out)",
                    "labelled_pixels_on_nodata": "Labelled pixels on nodata (left out)", "labels": "Label layer",
                    "n_train": "Training samples", "n_validation": "Validation samples",
                    "n_test_polygons": "Validation polygons", "n_tiles": "Tiles", "chip_size": "Chip size (px)"}

#: Settings of the probes in words.
_SETTINGS = {"c": "C", "n_estimators": "trees", "max_depth": "tree depth"}

#: Plain words for the fold schemes and candidate states of the automatic choice.
_SCHEMES = {"group_kfold": "whole polygons", "spatial_blocks": "spatial blocks", "polygon_groups": "whole polygons",
            "random_pixels": "random pixels"}
_STATUS = {"scored": "scored", "pruned": "left out after the first round", "failed": "failed",
           "only candidate": "only candidate"}

#: The warning of optimistic figures when the validation gives no reason of its own.
_OPTIMISTIC = ("These figures come from pixels that are not independent of the training data; expect the real "
               "accuracy to be lower.")


# ---------------------------------------------------------------------------------------------------------------
# Number formats: the templates' filters
# ---------------------------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    """Whether ``value`` is a Python (or numpy floating) number, bools included, as the formats take it."""
    return isinstance(value, int | float)


def _pct(value: Any) -> str:
    """A fraction as a percentage with one decimal, or ``n/a``."""
    return f"{value:.1%}" if _is_number(value) else "n/a"


def _pm(value: Any, ci: Any = None, pct: bool = True) -> str:
    """``value ± ci`` as text, percentages or hectares."""
    if not _is_number(value):
        return "n/a"
    scale, fmt = (100.0, ".1f") if pct else (1.0, ",.1f")
    text = f"{value * scale:{fmt}}"
    if _is_number(ci):
        text += f" ± {ci * scale:{fmt}}"
    return text + (" %" if pct else "")


def _ha(value: Any, ci: Any = None) -> str:
    """Hectares with one decimal and thousands separators, ``± ci`` when known: ``1,234.5 ± 12.0``."""
    return _pm(value, ci, pct=False)


def _num(value: Any, digits: int = 3) -> str:
    """A float with ``digits`` decimals, ``n/a`` for ``None``, anything else as it is (a count, a word)."""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "n/a" if value is None else str(value)


def _fixed(value: Any, digits: int = 1) -> str:
    """A number (an int too) with ``digits`` decimals, or ``n/a``: seconds."""
    return f"{value:.{digits}f}" if _is_number(value) else "n/a"


#: The number formats the templates use, as Jinja filters: ``{{ x|pct }}``, ``{{ x|pm(ci) }}``, ``{{ x|num(4) }}``.
FILTERS: dict[str, Callable[..., str]] = {"pct": _pct, "pm": _pm, "ha": _ha, "num": _num, "fixed": _fixed}


def _json_default(value: Any) -> Any:
    """Make numpy scalars and arrays, paths and other objects JSON-serialisable."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


# ---------------------------------------------------------------------------------------------------------------
# Names in words
# ---------------------------------------------------------------------------------------------------------------


def method_label(method: str, params: dict[str, Any] | None = None, class_weight: str | None = None) -> str:
    """A probe in a GIS analyst's words: ``Support vector machine (RBF kernel, C = 10), classes balanced``.

    Args:
        method: a name of :data:`engine.probes.registry.PROBES`; another name (a deep network) comes back as it is.
        params: the settings that differ from the probe's defaults, as in the automatic choice's candidates.
        class_weight: ``balanced`` or ``none``; left out for methods that take no class weights (k-NN).

    """
    probe = PROBES.get(method)
    if probe is None:
        return method
    label, settings = probe.label, _params(params)
    if settings:
        label = f"{label[:-1]}, {settings})" if label.endswith(")") else f"{label} ({settings})"
    if class_weight and method not in UNWEIGHTED_METHODS:
        label += ", classes balanced" if class_weight == "balanced" else ", classes unweighted"
    return label


def candidate_label(candidate: dict[str, Any]) -> str:
    """:func:`method_label` of a candidate of the automatic choice (``{"method", "params", "class_weight"}``)."""
    return method_label(str(candidate.get("method")), candidate.get("params"), candidate.get("class_weight"))


def plain_names(text: str, candidates: list[dict[str, Any]]) -> str:
    """``text`` with every candidate's short name (``svm (C=10), classes balanced``) put in plain words."""
    labels = {str(c["name"]): candidate_label(c) for c in candidates if isinstance(c, dict) and c.get("name")}
    if not labels or not text:
        return text
    pattern = "|".join(re.escape(n) for n in sorted(labels, key=len, reverse=True))
    return re.sub(rf"(?<![\w-])(?:{pattern})(?![\w-])", lambda m: labels[m.group(0)], text)


def validation_label(validation: dict[str, Any]) -> str:
    """The validation scheme in plain words, e.g. ``30 % of each class's polygons held out``."""
    scheme = str(validation.get("scheme"))
    share = _share(validation.get("test_fraction"))
    folds = validation.get("n_folds")
    k = f"{folds}-fold" if isinstance(folds, int) and folds > 1 else "k-fold"
    names = {
        "polygon_groups": f"{share or 'A share'} of each class's polygons held out, whole",
        "group_kfold": f"{k} cross-validation by whole polygons (every polygon tested once)",
        "spatial_blocks": f"{k} cross-validation by spatial blocks of polygons (test polygons away from training "
        "ones)",
        "random_pixels": f"{share or 'A share'} of the pixels held out at random (optimistic)",
        "independent reference": "An independent reference layer",
        "none": "No validation",
    }
    return names.get(scheme, scheme.replace("_", " "))


def _share(value: Any) -> str:
    """A share such as a test fraction in percent: ``30 %``, or ``12.5 %``; empty when unknown."""
    if not isinstance(value, int | float):
        return ""
    return f"{value * 100:.0f} %" if round(value * 100, 6) == round(value * 100) else f"{value * 100:.1f} %"


def _params(params: Any) -> str:
    """Settings as ``C = 10, trees = 100``; empty for none (the probe's defaults)."""
    if not isinstance(params, dict) or not params:
        return ""
    return ", ".join(f"{_SETTINGS.get(k, k)} = {v:g}" if isinstance(v, float) else f"{_SETTINGS.get(k, k)} = {v}"
                     for k, v in params.items())


def _class_weight(weight: Any) -> str:
    """The class weighting of the model in words, with why (``report["class_weight"]``); empty when unknown."""
    if not isinstance(weight, dict) or not weight.get("used"):
        return ""
    used = str(weight["used"])
    words = {"balanced": "balanced: every class weighs the same in training, however many samples it has",
             "none": "none: every training sample weighs the same, so large classes weigh more"}.get(used, used)
    why = f" {weight['why']}" if weight.get("why") else ""
    return f"{words}.{why}"


def _method(report: dict[str, Any]) -> str | None:
    """The model's method in plain words, saying when it was chosen automatically."""
    label = report.get("method_label")
    if not label and isinstance(report.get("method"), str):
        label = report["method"]
        winner = next((c for c in (report.get("selection") or {}).get("candidates") or []
                       if isinstance(c, dict) and c.get("name") == report.get("method_name")), None)
        label = candidate_label(winner) if winner else method_label(label)
    if label and report.get("method_option") == "auto":
        return f"Automatic choice: {label}"
    return label


def _label(key: str, labels: dict[str, str]) -> str:
    """A figure's name in words: from ``labels``, else the key itself (``n_tiles`` -> ``N tiles``)."""
    return labels.get(key, key.replace("_", " ").capitalize())


# ---------------------------------------------------------------------------------------------------------------
# View data: what each section template shows (None or empty: the section is left out)
# ---------------------------------------------------------------------------------------------------------------


def _inputs(report: dict[str, Any]) -> list[tuple[str, Any]]:
    """The inputs as (label, value) rows; the class weights follow the method."""
    rows: list[tuple[str, Any]] = []
    for key, label in _INPUTS:
        value = _method(report) if key == "method" else report.get(key)
        if value in (None, ""):
            continue
        rows.append((label, value))
        weights = _class_weight(report.get("class_weight"))
        if key == "method" and weights:
            rows.append(("Class weights", weights))
    return rows


def _left_out(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Classes and bands left out of the model (``dropped_classes``, ``dropped_bands``), when there are any."""
    items: list[dict[str, Any]] = []
    for c in report.get("dropped_classes") or []:
        name, reason = (c.get("name"), c.get("reason")) if isinstance(c, dict) else (c, None)
        items.append({"kind": "class", "name": name, "reason": reason or "no valid pixel lies under its labels"})
    for b in report.get("dropped_bands") or []:
        if isinstance(b, dict):
            items.append({"kind": "band", "band": b.get("band", "?"), "name": b.get("name"),
                          "reason": b.get("reason")})
        else:
            items.append({"kind": "band_number", "band": b})
    return items


def _score(value: Any, std: Any, objective: str) -> str:
    """A candidate's score: ``value ± std`` as a percentage for an accuracy, a 0-1 score otherwise."""
    if "accuracy" in objective:
        return _pm(value, std)
    if not _is_number(value):
        return "n/a"
    return f"{value:.3f}" + (f" ± {std:.3f}" if _is_number(std) else "")


def _candidate_order(candidate: dict[str, Any]) -> tuple[int, float]:
    """Sort key of the candidates: scored ones by falling score, then the failed and unscored ones."""
    score = candidate.get("score")
    return (0, -score) if _is_number(score) and candidate.get("status") != "failed" else (1, 0.0)


def _cross_validation(selection: dict[str, Any]) -> dict[str, Any] | None:
    """The folds of the automatic choice: ``5 folds of whole polygons``, the samples, why this scheme."""
    scheme = selection.get("scheme")
    if not scheme:
        return None
    folds = selection.get("n_folds")
    words = _SCHEMES.get(str(scheme), scheme)
    return {"what": f"{folds} folds of {words}" if folds else words, "samples": selection.get("n_samples"),
            "reason": selection.get("scheme_reason") or None}


def _selection(selection: dict[str, Any]) -> dict[str, Any]:
    """How the method was chosen (``report["selection"]``): objective, folds, every candidate, the winner, why."""
    objective = str(selection.get("objective") or "")
    label = str(selection.get("objective_label") or objective.replace("_", " ") or "score")
    candidates = [c for c in selection.get("candidates") or [] if isinstance(c, dict)]
    winner = selection.get("winner")
    shown_winner = plain_names(str(winner), candidates) if winner else None
    reason = plain_names(str(selection.get("reason") or ""), candidates)
    if not any(_is_number(c.get("score")) for c in candidates) and not selection.get("n_folds"):
        # a single candidate, or nothing could be scored
        return {"single": True, "winner": shown_winner, "reason": reason or "Not chosen by the data."}
    rows = []
    for c in sorted(candidates, key=_candidate_order):
        won = c.get("name") == winner
        status = "chosen" if won else _STATUS.get(str(c.get("status")), str(c.get("status") or ""))
        rows.append({"win": won, "label": candidate_label(c), "score": _score(c.get("score"), c.get("score_std"),
                                                                              objective),
                     "seconds": c.get("seconds"), "status": status,
                     "note": plain_names(str(c["note"]), candidates) if c.get("note") else None})
    heading = label.split(" (")[0]
    total = selection.get("seconds")
    return {"single": False, "objective": label, "cv": _cross_validation(selection),
            "heading": heading[:1].upper() + heading[1:], "rows": rows, "winner": shown_winner, "reason": reason,
            "seconds": total if _is_number(total) else None}


def _validation(validation: dict[str, Any]) -> dict[str, Any]:
    """How the figures were made: the scheme in plain words, polygons and pixels tested, other details, folds."""
    optimistic = (validation.get("optimistic_reason") or _OPTIMISTIC) if validation.get("optimistic") else None
    rows: list[tuple[str, Any]] = [("Validation", validation_label(validation))]
    if validation.get("description"):
        rows.append(("What it means", validation["description"]))
    tested, polygons = validation.get("n_test_polygons"), validation.get("n_polygons")
    if isinstance(tested, int):
        rows.append(("Polygons tested", f"{tested} of {polygons}" if isinstance(polygons, int) else str(tested)))
    if validation.get("n") is not None:
        rows.append((_LABELS["n"], _num(validation.get("n"))))
    rows += [(_label(key, _LABELS), _num(value)) for key, value in validation.items()
             if key not in _SHOWN_APART and isinstance(value, str | int | float | bool) and value is not None]
    lists = [(_label(key, _LABELS), ", ".join(str(v) for v in value)) for key, value in validation.items()
             if isinstance(value, list) and value and key not in _SHOWN_APART]
    return {"optimistic": optimistic, "rows": rows, "lists": lists, "folds": _folds(validation)}


def _folds(validation: dict[str, Any]) -> dict[str, Any] | None:
    """The overall accuracy of each fold (and the method each chose), when there are several folds."""
    accuracies = validation.get("fold_overall_accuracy") or []
    if len(accuracies) < 2:  # one held-out split: its accuracy is the overall accuracy above
        return None
    methods = validation.get("fold_methods") or []
    chosen = len(methods) == len(accuracies) and len(set(methods)) > 1
    return {"chosen": chosen, "rows": [{"fold": i + 1, "accuracy": accuracy, "method": methods[i] if chosen else None}
                                       for i, accuracy in enumerate(accuracies)]}


def _summary(validation: dict[str, Any]) -> dict[str, Any]:
    """The headline figures: overall and balanced accuracy, kappa, macro F1, pixels assessed."""
    balanced = validation.get("balanced_accuracy")
    if balanced is None and validation.get("per_class"):  # a report written before balanced accuracy was added
        recalls = [c.get("producers_accuracy") or 0.0 for c in validation["per_class"] if c.get("reference_count")]
        balanced = sum(recalls) / len(recalls) if recalls else None
    return {"overall": validation.get("overall_accuracy"), "balanced": balanced, "kappa": validation.get("kappa"),
            "macro_f1": validation.get("macro_f1"), "n": validation.get("n")}


def _shade(fraction: float, diagonal: bool) -> str:
    """A cell's background: green on the diagonal, red off it, the stronger the larger its share of the row."""
    rgb = "44,162,95" if diagonal else "222,45,38"
    return f"background:rgba({rgb},{min(max(fraction, 0.0), 1.0) * 0.85:.3f})"


def _matrix(validation: dict[str, Any]) -> dict[str, Any] | None:
    """The confusion matrix with row and column totals, each cell shaded by its share of the row."""
    cm = validation.get("confusion_matrix")
    names = validation.get("classes")
    if not cm or not names:
        return None
    rows = []
    for i, (name, row) in enumerate(zip(names, cm, strict=True)):
        total = sum(row)
        cells = []
        for j, value in enumerate(row):
            fraction = value / total if total else 0.0
            cells.append({"value": value, "style": _shade(fraction, i == j),
                          "title": f"{fraction:.1%} of reference {name}"})
        rows.append({"name": name, "cells": cells, "total": total})
    totals = [sum(row[j] for row in cm) for j in range(len(names))]
    return {"names": names, "rows": rows, "totals": totals, "total": sum(totals)}


def _colors(report: dict[str, Any]) -> dict[str, str]:
    """The classes' colours by name (``report["classes"]``)."""
    return {str(c.get("name")): str(c.get("color")) for c in report.get("classes") or []
            if isinstance(c, dict) and c.get("color")}


def _uncertain(pixels: Any, polygons: Any) -> bool:
    """Whether a figure from ``pixels`` pixels of ``polygons`` polygons (``None``: not known) tells little."""
    few_pixels = isinstance(pixels, int) and 0 < pixels < FEW_PIXELS
    few_polygons = isinstance(polygons, int) and 0 < polygons < FEW_POLYGONS
    return few_pixels or few_polygons


def _interval(ci: Any) -> str:
    """A 95 % confidence interval ``[low, high]`` as ``67.6–100.0%``."""
    return f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%" if isinstance(ci, list | tuple) and len(ci) == 2 else "n/a"


def _counted(c: dict[str, Any], which: str) -> dict[str, str | None]:
    """Class ``c``'s ``producers`` or ``users`` accuracy as a percentage, with its 95 % interval when uncertain."""
    value = c.get(f"{which}_accuracy")
    pixels, polygons = ((c.get("reference_count"), c.get("reference_polygons")) if which == "producers" else
                        (c.get("mapped_count"), c.get("mapped_polygons")))
    ci = None
    if _is_number(value) and _uncertain(pixels, polygons):
        ci = c.get(f"{which}_accuracy_ci")
        if ci is None and isinstance(pixels, int):  # a report written before the intervals were recorded
            ci = wilson_interval(round(value * pixels), pixels)
        ci = _interval(ci)
    return {"value": _pct(value), "ci": ci}


def _basis(pixels: Any, polygons: Any, what: str) -> str:
    """``only 8 reference pixels of 1 polygon`` or ``69 reference pixels of only 2 polygons`` (polygons if known)."""
    few_pixels = isinstance(pixels, int) and pixels < FEW_PIXELS
    text = f"{'only ' if few_pixels else ''}{pixels} {what} pixel{'s' if pixels != 1 else ''}"
    if isinstance(polygons, int):
        only = "only " if polygons < FEW_POLYGONS and not few_pixels else ""
        text += f" of {only}{polygons} polygon{'s' if polygons != 1 else ''}"
    return text


def _class_flags(c: dict[str, Any]) -> tuple[list[str], bool]:
    """The notes of one class's row, and whether one of its accuracies is uncertain."""
    reference, mapped = c.get("reference_count"), c.get("mapped_count")
    no_reference = c.get("no_reference", reference == 0)
    never_mapped = c.get("never_mapped", mapped == 0)
    flags = []
    if no_reference:
        flags.append("no reference pixels: producer's accuracy and F1 cannot be assessed, not in the macro F1")
    if never_mapped:
        flags.append("never mapped" if no_reference else "never mapped: every reference pixel is missed")
    uncertain = False
    if c.get("producers_accuracy") is not None and _uncertain(reference, c.get("reference_polygons")):
        flags.append(f"producer's accuracy from {_basis(reference, c.get('reference_polygons'), 'reference')}: "
                     "uncertain")
        uncertain = True
    if c.get("users_accuracy") is not None and _uncertain(mapped, c.get("mapped_polygons")):
        flags.append(f"user's accuracy from {_basis(mapped, c.get('mapped_polygons'), 'mapped')}: uncertain")
        uncertain = True
    return flags, uncertain


def _per_class(validation: dict[str, Any], colors: dict[str, str]) -> dict[str, Any] | None:
    """The per-class table (accuracies, counts, notes) and the note under it on macro F1 and uncertain figures."""
    per_class = validation.get("per_class") or []
    if not per_class:
        return None
    rows, few = [], False
    for c in per_class:
        flags, uncertain = _class_flags(c)
        few = few or uncertain
        rows.append({"color": colors.get(str(c.get("class"))), "name": c.get("class"),
                     "producers": _counted(c, "producers"), "users": _counted(c, "users"), "f1": c.get("f1"),
                     "reference": c.get("reference_count"), "polygons": c.get("reference_polygons"),
                     "mapped": c.get("mapped_count"), "notes": "; ".join(flags)})
    averaged = validation.get("macro_f1_classes")
    if averaged is None:  # a report written before the list was recorded
        averaged = [c.get("class") for c in per_class if c.get("reference_count")]
    left = [c.get("class") for c in per_class if c.get("class") not in averaged]
    return {"with_polygons": any(isinstance(c.get("reference_polygons"), int) for c in per_class), "rows": rows,
            "n_averaged": len(averaged), "averaged": ", ".join(str(a) for a in averaged),
            "left": ", ".join(str(x) for x in left), "few": few, "few_pixels": FEW_PIXELS,
            "few_polygons": FEW_POLYGONS}


def _area(area: dict[str, Any]) -> dict[str, Any]:
    """The area-adjusted accuracy and the area estimates per class, with their 95 % intervals."""
    rows = [{"name": c.get("class"), "mapped": c.get("mapped_area_ha"), "share": c.get("proportion"),
             "share_ci": c.get("proportion_ci95"), "area": c.get("area_ha"), "area_ci": c.get("area_ha_ci95"),
             "users": c.get("users_accuracy"), "users_ci": c.get("users_accuracy_ci95"),
             "producers": c.get("producers_accuracy"), "producers_ci": c.get("producers_accuracy_ci95"),
             "samples": c.get("n_samples")} for c in area.get("per_class") or []]
    total = area.get("total_area_ha")
    return {"estimator": area.get("estimator", "Stratified estimators"),
            "unsampled": ", ".join(str(u) for u in area.get("unsampled_strata") or []) or None,
            "overall": area.get("overall_accuracy"), "overall_ci": area.get("overall_accuracy_ci95"),
            "total": total if _is_number(total) else None, "rows": rows}


def _training(training: dict[str, Any]) -> list[tuple[str, Any]]:
    """The training data's figures as (label, value) rows, the labelled pixels per class last."""
    rows: list[tuple[str, Any]] = [(_label(k, _TRAINING_LABELS), v) for k, v in training.items()
                                   if isinstance(v, str | int | float)]
    per_class = training.get("samples_per_class") or {}
    if isinstance(per_class, dict) and per_class:
        rows.append(("Labelled pixels per class", ", ".join(f"{k} {v}" for k, v in per_class.items())))
    return rows


def _image(path: Any, alt: str) -> dict[str, Any] | None:
    """The PNG at ``path`` as a base64 data URI (the page stays one file), or why it cannot be shown."""
    if not path:
        return None
    image = {"src": None, "alt": alt, "path": str(path), "problem": None}
    try:
        data = Path(str(path)).read_bytes()
    except OSError:
        return {**image, "problem": "missing"}
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return {**image, "problem": "not_png"}
    return {**image, "src": "data:image/png;base64," + base64.b64encode(data).decode("ascii")}


def _learning_curve(curve: dict[str, Any]) -> dict[str, Any]:
    """A learning curve's table rows, how it was made, and its plot."""
    rows = [{"features": r.get("features"), "per_class": r.get("per_class"), "n_train": r.get("n_train"),
             "overall_accuracy": r.get("overall_accuracy"), "overall_accuracy_std": r.get("overall_accuracy_std"),
             "kappa": r.get("kappa"), "macro_f1": r.get("macro_f1")} for r in curve.get("rows") or []]
    seeds = curve.get("seeds") or []
    fraction = curve.get("test_fraction")
    return {"method": curve.get("method_label") or curve.get("method", "n/a"),
            "fraction": fraction if _is_number(fraction) else None, "n_seeds": len(seeds),
            "seeds": ", ".join(str(s) for s in seeds), "rows": rows,
            "image": _image(curve.get("png"), "Learning curve")}


def _projection(projection: dict[str, Any]) -> dict[str, Any]:
    """The 2-D projection's plot and its caption: methods, points, explained variance."""
    methods = [str(m) for m in projection.get("methods") or []]
    variance = projection.get("pca_explained_variance") or []
    return {"methods": " and ".join(methods) or "Projection", "n_points": projection.get("n_points"),
            "variance": ", ".join(f"PC{i + 1} {_pct(v)}" for i, v in enumerate(variance)) or None,
            "tsne": "t-SNE" in methods, "image": _image(projection.get("png"), "Projection of the labelled samples")}


def _training_curve(curve: dict[str, Any]) -> dict[str, Any]:
    """A fine-tuning's curve: its plot, the device, and the figures of every epoch."""
    epochs = [{"epoch": r.get("epoch"), "train_loss": r.get("train_loss"), "val_loss": r.get("val_loss"),
               "val_acc": r.get("val_acc"), "lr": r.get("lr")} for r in curve.get("epochs") or []]
    return {"image": _image(curve.get("png"), "Training curve"), "device": curve.get("device", "n/a"),
            "precision": curve.get("precision", ""), "seconds_per_epoch": curve.get("seconds_per_epoch"),
            "epochs": epochs}


#: Features of the cluster centres shown in the page (all of them are in the JSON and the CSV).
CENTRE_COLUMNS = 12


def _clusters(section: dict[str, Any]) -> dict[str, Any]:
    """The clusters: the choice of k with every score, each cluster's size and its centre."""
    scores = section.get("scores") or {}
    names = list(section.get("feature_names") or [])
    shown = names[:CENTRE_COLUMNS]
    features = {"embeddings": "the embeddings", "raw_bands": "the band values (standardised)"}
    return {
        "k": section.get("k"), "criterion": section.get("criterion", ""), "seed": section.get("seed"),
        "sample_size": section.get("sample_size"),
        "features": features.get(str(section.get("features")), str(section.get("features"))),
        "scores": [{"k": k, "calinski_harabasz": c, "silhouette": s, "inertia": i, "chosen": k == section.get("k")}
                   for k, c, s, i in zip(scores.get("k", []), scores.get("calinski_harabasz", []),
                                         scores.get("silhouette", []), scores.get("inertia", []), strict=True)],
        "rows": [{"name": row.get("cluster"), "color": row.get("color"), "pixels": row.get("pixels"),
                  "share": row.get("share"), "area_ha": row.get("area_ha")} for row in section.get("clusters") or []],
        "centre_names": shown,
        "centre_rows": [{"name": f"cluster {row.get('cluster')}", "cells": [row.get(n) for n in shown]}
                        for row in section.get("centres") or []],
        "hidden": len(names) - len(shown),
    }


def _change(section: dict[str, Any]) -> dict[str, Any]:
    """The change: the measure, the threshold and the changed share and area; the transition matrix."""
    view = {k: section.get(k) for k in ("measure", "threshold", "threshold_method", "changed_pixels", "valid_pixels",
                                         "changed_share", "changed_area_ha", "map")}
    transitions = section.get("transitions")
    view["matrix"] = None
    if isinstance(transitions, dict):
        by_area = transitions.get("hectares") is not None
        values = transitions["hectares"] if by_area else transitions.get("pixels", [])
        view["matrix"] = {"classes": transitions.get("classes", []), "unit": "ha" if by_area else "pixels",
                          "rows": [{"name": name, "cells": row}
                                   for name, row in zip(transitions.get("classes", []), values, strict=True)],
                          "changed_class_pixels": transitions.get("changed_class_pixels"),
                          "classified_pixels": transitions.get("classified_pixels")}
    return view


def _regression(section: dict[str, Any]) -> dict[str, Any]:
    """A regression's validation: the pooled figures, each fold's, the methods chosen and the plot."""
    validation = section.get("validation") or {}
    labels = {"ridge": "Ridge regression (scaled)", "random_forest_regressor": "Random forest",
              "xgboost_regressor": "XGBoost", "knn_regressor": "k-nearest neighbours"}
    method = labels.get(str(section.get("method")), str(section.get("method")))
    if section.get("requested") == "auto":
        method += " (chosen automatically by cross-validation grouped by polygon)"
    chosen = section.get("chosen_per_fold") or []
    return {"method": method, "unit": section.get("unit", ""), "n_polygons": section.get("n_polygons"),
            **{k: validation.get(k) for k in ("r2", "rmse", "mae", "bias", "n", "n_folds")},
            "folds": [{**row, "method": labels.get(row.get("method"), row.get("method"))}
                      for row in validation.get("folds", [])],
            "chosen": ", ".join(f"{c['fold']}: {labels.get(c['method'], c['method'])}" for c in chosen) or None,
            "image": _image(section.get("png"), "Observed against predicted"),
            "support": _support(section.get("support"))}


def _support(support: Any) -> dict[str, Any] | None:
    """Pixel by pixel or polygon support: which was used, why, and both at the polygon level when both ran."""
    if not isinstance(support, dict):
        return None
    rows = [{"name": name, **figures} for name, figures in (
        ("pixel by pixel (its predictions averaged over each polygon)", support.get("pixel_at_polygon_level")),
        ("polygon support (the statistics of each polygon's pixels)", support.get("polygon")))
        if isinstance(figures, dict)]
    polygon = support.get("chosen") == "polygon"
    return {"chosen": "polygon support" if polygon else "pixel by pixel", "reason": support.get("reason"),
            "cell_px": support.get("cell_px") if polygon else None, "stats": ", ".join(support.get("stats") or []),
            "rows": rows}


def _suggestions(section: dict[str, Any]) -> dict[str, Any]:
    """Where to label next: the rule and its settings in words, and the points."""
    rules = {"margin": "margin: the gap between the model's two most probable classes (the smaller, the more "
                       "uncertain)",
             "entropy": "entropy of the class probabilities, over the log of the number of classes",
             "spread": f"spread: {section.get('spread') or 'the uncertainty of the regression'} (the larger, the "
                       "more uncertain)"}
    points = section.get("points") or []
    counts: dict[str, int] = {}
    for point in points:
        counts[str(point.get("top1"))] = counts.get(str(point.get("top1")), 0) + 1
    return {**{k: section.get(k) for k in ("n_points", "spacing", "candidates", "near_labels", "pool", "seed",
                                            "mean_confidence", "median_confidence", "mean_spread",
                                            "median_spread", "unit")},
            "value": section.get("rule") == "spread",
            "rule": rules.get(str(section.get("rule")), str(section.get("rule"))),
            "classes": ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1])),
            "points": points}


def _section(report: dict[str, Any], key: str, view: Callable[[dict[str, Any]], Any]) -> Any:
    """``view(report[key])`` when the report has that section as a dict, else ``None``."""
    section = report.get(key)
    return view(section) if isinstance(section, dict) else None


def report_view(report: dict[str, Any]) -> dict[str, Any]:
    """The view data of the page: one entry per section of ``templates/report.html.j2``.

    An entry is ``None`` or empty when the report has nothing to show there. Texts are in words, numbers as they
    are: the templates format them with :data:`FILTERS` and escape everything.
    """
    validation = report.get("validation")
    has_validation = isinstance(validation, dict)
    return {
        "title": report.get("title") or "Landprobe report",
        "version": __version__,
        "inputs": _inputs(report),
        "left_out": _left_out(report),
        "selection": _section(report, "selection", _selection),
        "validation": _validation(validation) if has_validation else None,
        "summary": _summary(validation) if has_validation else None,
        "matrix": _matrix(validation) if has_validation else None,
        "per_class": _per_class(validation, _colors(report)) if has_validation else None,
        "area": _section(report, "area_adjusted", _area),
        "training": _section(report, "training", _training),
        "training_curve": _section(report, "training_curve", _training_curve),
        "learning_curve": _section(report, "learning_curve", _learning_curve),
        "projection": _section(report, "projection", _projection),
        "clusters": _section(report, "clusters", _clusters),
        "change": _section(report, "change", _change),
        "regression": _section(report, "regression", _regression),
        "suggestions": _section(report, "suggestions", _suggestions),
    }


# ---------------------------------------------------------------------------------------------------------------
# The page and the files
# ---------------------------------------------------------------------------------------------------------------


@cache
def _environment() -> Environment:
    """The report templates' environment, made once, with the number formats as filters."""
    return environment(FILTERS)


def render_html(report: dict[str, Any]) -> str:
    """The report as a self-contained HTML page (inline CSS, no script, no external link)."""
    page = _environment().get_template("report.html.j2").render(report_view(report))
    return page + "\n"  # the file ends with a line break (the template's own were joined away)


def html_path(json_path: str | Path) -> Path:
    """Where the HTML page of the report at ``json_path`` goes: same name, ``.html``."""
    path = Path(json_path)
    html = path.with_suffix(".html")
    return html if html != path else path.with_name(path.name + ".html")


def write_report(report: dict[str, Any], json_path: str) -> tuple[str, str]:
    """Write ``report`` as JSON at ``json_path`` and as an HTML page next to it, both atomically.

    Args:
        report: the report dict (a training report or an accuracy assessment); missing sections are skipped.
        json_path: where the JSON goes; the HTML gets the same name with ``.html``.

    Returns:
        The paths of the JSON and the HTML file.

    Raises:
        OutputError: when either file cannot be written.

    """
    check_writable(json_path)
    html = html_path(json_path)
    text = json.dumps(report, indent=2, default=_json_default)
    page = render_html(report)
    with atomic_output(json_path) as tmp_json, atomic_output(html) as tmp_html:
        tmp_json.write_text(text, encoding="utf-8")
        tmp_html.write_text(page, encoding="utf-8")
    return str(json_path), str(html)
