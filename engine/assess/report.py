"""Training and accuracy reports: a JSON file for machines and a self-contained HTML page next to it for people.

The HTML has inline CSS only, no script and no external URL, so it opens offline and can be mailed as one file.
Every section is optional: a report without validation figures or area estimates still renders. The JSON keeps
fractions from 0 to 1 and the engine's names (``svm``, ``polygon_groups``); the HTML speaks a GIS analyst's words:
methods and validation schemes by plain names, accuracies (overall, balanced, producer's, user's, per fold) as
percentages with one decimal, kappa and F1 as scores from 0 to 1, and beside a per-class accuracy built on few pixels
or few polygons its 95 % confidence interval and a warning.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Any

from .. import __version__
from ..io.rasters import atomic_output, check_writable
from .metrics import wilson_interval

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em;line-height:1.4}
h1{font-size:1.6em;border-bottom:2px solid #2c7fb8;padding-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right}
th{background:#f2f2f2}td.l,th.l{text-align:left}.kv td:first-child{text-align:left;font-weight:600}
.kv td{text-align:left}.warn{background:#fff3cd;border:1px solid #e0b400;padding:.6em 1em;border-radius:4px}
.note{color:#555;font-size:.9em}.big{font-size:1.3em;font-weight:600}.sw{display:inline-block;width:.9em;
height:.9em;border:1px solid #888;margin-right:.3em;vertical-align:middle}.cm td{min-width:3.2em}
.tot{background:#f7f7f7;font-weight:600}footer{margin-top:2em;color:#777;font-size:.85em}
.n{color:#777;font-size:.85em;margin-left:.35em;white-space:nowrap}.flag{color:#8a4b00}
tr.win td{background:#e5f5e0;font-weight:600}
"""

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


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal, or ``n/a``."""
    return f"{value:.1%}" if isinstance(value, int | float) else "n/a"


def _pm(value: float | None, ci: float | None, pct: bool = True) -> str:
    """``value ± ci`` as text, percentages or hectares."""
    if not isinstance(value, int | float):
        return "n/a"
    scale, fmt = (100.0, ".1f") if pct else (1.0, ",.1f")
    text = f"{value * scale:{fmt}}"
    if isinstance(ci, int | float):
        text += f" ± {ci * scale:{fmt}}"
    return text + (" %" if pct else "")


def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "n/a" if value is None else _e(value)


def _json_default(value: Any) -> Any:
    """Make numpy scalars and arrays, paths and other objects JSON-serialisable."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def method_label(method: str, params: dict[str, Any] | None = None, class_weight: str | None = None) -> str:
    """A probe in a GIS analyst's words: ``Support vector machine (RBF kernel, C = 10), classes balanced``.

    Args:
        method: a name of :data:`engine.probes.registry.PROBES`; another name (a deep network) comes back as it is.
        params: the settings that differ from the probe's defaults, as in the automatic choice's candidates.
        class_weight: ``balanced`` or ``none``; left out for methods that take no class weights (k-NN).

    """
    from ..probes.registry import PROBES
    from .selection import UNWEIGHTED_METHODS

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
    import re

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


def _class_weight(weight: Any) -> str:
    """The class weighting of the model in words, with why (``report["class_weight"]``)."""
    if not isinstance(weight, dict) or not weight.get("used"):
        return ""
    used = str(weight["used"])
    words = {"balanced": "balanced: every class weighs the same in training, however many samples it has",
             "none": "none: every training sample weighs the same, so large classes weigh more"}.get(used, used)
    why = f" {_e(weight['why'])}" if weight.get("why") else ""
    return f"{_e(words)}.{why}"


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


def _inputs(report: dict[str, Any]) -> str:
    rows = []
    for key, label in _INPUTS:
        value = _method(report) if key == "method" else report.get(key)
        if value in (None, ""):
            continue
        rows.append(f"<tr><td>{label}</td><td>{_e(value)}</td></tr>")
        if key == "method" and _class_weight(report.get("class_weight")):
            rows.append(f"<tr><td>Class weights</td><td>{_class_weight(report.get('class_weight'))}</td></tr>")
    return f'<h2>Inputs</h2><table class="kv">{"".join(rows)}</table>' if rows else ""


def _left_out(report: dict[str, Any]) -> str:
    """Classes and bands left out of the model (``dropped_classes``, ``dropped_bands``), when there are any."""
    items = []
    for c in report.get("dropped_classes") or []:
        name, reason = (c.get("name"), c.get("reason")) if isinstance(c, dict) else (c, None)
        reason = reason or "no valid pixel lies under its labels"
        items.append(f"<li>Class <strong>{_e(name)}</strong>: {_e(reason)}. The map cannot contain it.</li>")
    for b in report.get("dropped_bands") or []:
        if not isinstance(b, dict):
            items.append(f"<li>Band {_e(b)}</li>")
            continue
        name = f" ({_e(b['name'])})" if b.get("name") else ""
        reason = f": {_e(b['reason'])}" if b.get("reason") else ""
        items.append(f"<li>Band {_e(b.get('band', '?'))}{name}{reason}.</li>")
    if not items:
        return ""
    return f'<h2>Left out</h2><div class="warn"><ul style="margin:0">{"".join(items)}</ul></div>'


def _score(value: Any, std: Any, objective: str) -> str:
    """A candidate's score: ``value ± std`` as a percentage for an accuracy, a 0-1 score otherwise."""
    if "accuracy" in objective:
        return _pm(value, std)
    if not isinstance(value, int | float):
        return "n/a"
    return f"{value:.3f}" + (f" ± {std:.3f}" if isinstance(std, int | float) else "")


def _params(params: Any) -> str:
    """Settings as ``C = 10, trees = 100``; empty for none (the probe's defaults)."""
    if not isinstance(params, dict) or not params:
        return ""
    return ", ".join(f"{_SETTINGS.get(k, k)} = {v:g}" if isinstance(v, float) else f"{_SETTINGS.get(k, k)} = {v}"
                     for k, v in params.items())


def _selection(selection: dict[str, Any]) -> str:
    """How the method was chosen (``report["selection"]``): objective, folds, every candidate, the winner, why."""
    objective = str(selection.get("objective") or "")
    label = selection.get("objective_label") or objective.replace("_", " ") or "score"
    candidates = [c for c in selection.get("candidates") or [] if isinstance(c, dict)]
    parts = ["<h2>How the method was chosen</h2>"]
    scored = [c for c in candidates if isinstance(c.get("score"), int | float)]
    winner = selection.get("winner")
    shown_winner = plain_names(str(winner), candidates) if winner else None
    reason_text = plain_names(str(selection.get("reason") or ""), candidates)
    if not scored and not selection.get("n_folds"):  # a single candidate, or nothing could be scored
        reason = _e(reason_text or "Not chosen by the data.")
        parts.append(f"<p><strong>{_e(shown_winner)}</strong>: {reason}</p>" if winner else f"<p>{reason}</p>")
        return "".join(parts)
    parts.append(f"<p>Objective: the highest cross-validated {_e(label)}.</p>")
    scheme = selection.get("scheme")
    if scheme:
        folds = selection.get("n_folds")
        samples = selection.get("n_samples")
        what = f"{_e(folds)} folds of {_e(_SCHEMES.get(str(scheme), scheme))}" if folds else _e(
            _SCHEMES.get(str(scheme), scheme))
        on = f" on {_num(samples)} training samples" if samples is not None else ""
        reason = f" {_e(selection['scheme_reason'])}" if selection.get("scheme_reason") else ""
        parts.append(f"<p>Cross-validation: {what}{on}, never the held-out validation polygons.{reason}</p>")

    def order(c: dict[str, Any]) -> tuple[int, float]:
        score = c.get("score")
        return (0, -score) if isinstance(score, int | float) and c.get("status") != "failed" else (1, 0.0)

    heading = str(label).split(" (")[0]
    rows = []
    for c in sorted(candidates, key=order):
        won = c.get("name") == winner
        status = _STATUS.get(str(c.get("status")), str(c.get("status") or ""))
        if won:
            status = "chosen"
        note = f" ({_e(plain_names(str(c['note']), candidates))})" if c.get("note") else ""
        seconds = c.get("seconds")
        row_class = ' class="win"' if won else ""
        rows.append(f'<tr{row_class}><td class="l">{_e(candidate_label(c))}</td>'
                    f'<td>{_score(c.get("score"), c.get("score_std"), objective)}</td>'
                    f'<td>{f"{seconds:.1f}" if isinstance(seconds, int | float) else "n/a"}</td>'
                    f'<td class="l">{_e(status)}{note}</td></tr>')
    parts.append(f'<table><tr><th class="l">Candidate (method, settings, class weights)</th>'
                 f'<th>{_e(heading[:1].upper() + heading[1:])} ± standard deviation</th><th>Seconds</th>'
                 f'<th class="l">Status</th></tr>{"".join(rows)}</table>')
    if reason_text:
        parts.append(f"<p><strong>Chosen: {_e(shown_winner)}.</strong> {_e(reason_text)}</p>")
    total = selection.get("seconds")
    if isinstance(total, int | float):
        parts.append(f'<p class="note">The choice took {total:.1f} s. Scores are pooled over the folds; ± is the '
                     "standard deviation of the fold scores.</p>")
    return "".join(parts)


def _scheme(validation: dict[str, Any]) -> str:
    """How the figures were made: the scheme in plain words, polygons and pixels tested, other details."""
    parts = ["<h2>Validation</h2>"]
    if validation.get("optimistic"):
        reason = validation.get("optimistic_reason") or (
            "These figures come from pixels that are not independent of the training data; expect the real "
            "accuracy to be lower."
        )
        parts.append(f'<div class="warn"><strong>Optimistic figures.</strong> {_e(reason)}</div>')
    rows = [("Validation", _e(validation_label(validation)))]
    if validation.get("description"):
        rows.append(("What it means", _e(validation["description"])))
    tested, polygons = validation.get("n_test_polygons"), validation.get("n_polygons")
    if isinstance(tested, int):
        rows.append(("Polygons tested", f"{tested} of {polygons}" if isinstance(polygons, int) else str(tested)))
    if validation.get("n") is not None:
        rows.append((_LABELS["n"], _num(validation.get("n"))))
    rows += [(_LABELS.get(key, key.replace("_", " ").capitalize()), _num(value))
             for key, value in validation.items()
             if key not in _SHOWN_APART and isinstance(value, str | int | float | bool) and value is not None]
    parts.append('<table class="kv">' + "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in rows)
                 + "</table>")
    for key, value in validation.items():
        if isinstance(value, list) and value and key not in _SHOWN_APART:
            parts.append(f'<p class="note">{_e(_LABELS.get(key, key.replace("_", " ").capitalize()))}: '
                         f'{_e(", ".join(str(v) for v in value))}</p>')
    return "".join(parts) + _folds(validation)


def _folds(validation: dict[str, Any]) -> str:
    """A table of the overall accuracy of each fold (and the method each chose), when there are several folds."""
    accuracies = validation.get("fold_overall_accuracy") or []
    if len(accuracies) < 2:  # one held-out split: its accuracy is the overall accuracy above
        return ""
    methods = validation.get("fold_methods") or []
    chosen = len(methods) == len(accuracies) and len(set(methods)) > 1
    head = "<th>Fold</th><th>Overall accuracy</th>" + ('<th class="l">Method chosen on its training polygons</th>'
                                                         if chosen else "")
    rows = []
    for i, accuracy in enumerate(accuracies):
        method = f'<td class="l">{_e(methods[i])}</td>' if chosen else ""
        rows.append(f"<tr><td>{i + 1}</td><td>{_pct(accuracy)}</td>{method}</tr>")
    return (f'<h3>Per fold</h3><table><tr>{head}</tr>{"".join(rows)}</table><p class="note">Each fold tests the '
            "polygons it holds out with a model trained on the others; the figures below pool the pixels of every "
            "fold.</p>")


def _summary(validation: dict[str, Any]) -> str:
    balanced = validation.get("balanced_accuracy")
    if balanced is None and validation.get("per_class"):  # a report written before balanced accuracy was added
        recalls = [c.get("producers_accuracy") or 0.0 for c in validation["per_class"] if c.get("reference_count")]
        balanced = sum(recalls) / len(recalls) if recalls else None
    return (f'<p class="big">Overall accuracy {_pct(validation.get("overall_accuracy"))} &middot; '
            f"balanced accuracy {_pct(balanced)} &middot; "
            f'kappa {_num(validation.get("kappa"))} &middot; macro F1 {_num(validation.get("macro_f1"))}'
            f' &middot; {_num(validation.get("n"))} pixels</p>'
            '<p class="note">Accuracies are percentages of the pixels assessed. Kappa and F1 are scores from 0 '
            "(no better than chance for kappa, nothing right for F1) to 1 (perfect).</p>")


def _shade(fraction: float, diagonal: bool) -> str:
    rgb = "44,162,95" if diagonal else "222,45,38"
    return f"background:rgba({rgb},{min(max(fraction, 0.0), 1.0) * 0.85:.3f})"


def _matrix(validation: dict[str, Any]) -> str:
    cm = validation.get("confusion_matrix")
    names = validation.get("classes")
    if not cm or not names:
        return ""
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    rows = []
    col_totals = [sum(row[j] for row in cm) for j in range(len(names))]
    for i, (name, row) in enumerate(zip(names, cm, strict=True)):
        total = sum(row)
        cells = []
        for j, value in enumerate(row):
            fraction = value / total if total else 0.0
            title = f"{fraction:.1%} of reference {name}"
            cells.append(f'<td style="{_shade(fraction, i == j)}" title="{_e(title)}">{value}</td>')
        rows.append(f'<tr><th class="l">{_e(name)}</th>{"".join(cells)}<td class="tot">{total}</td></tr>')
    totals = "".join(f'<td class="tot">{t}</td>' for t in col_totals)
    rows.append(f'<tr><th class="l">Total</th>{totals}<td class="tot">{sum(col_totals)}</td></tr>')
    return ("<h2>Confusion matrix</h2><p class=\"note\">Rows: reference class; columns: map class; cells shaded "
            "by the share of the row (green: agreement, red: confusion).</p>"
            f'<table class="cm"><tr><th class="l">Reference \\ Map</th>{head}<th>Total</th></tr>'
            f'{"".join(rows)}</table>')


def _colors(report: dict[str, Any]) -> dict[str, str]:
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


def _counted(c: dict[str, Any], which: str) -> str:
    """Class ``c``'s ``producers`` or ``users`` accuracy as a percentage, with its 95 % interval when uncertain."""
    value = c.get(f"{which}_accuracy")
    pixels, polygons = ((c.get("reference_count"), c.get("reference_polygons")) if which == "producers" else
                        (c.get("mapped_count"), c.get("mapped_polygons")))
    text = _pct(value)
    if isinstance(value, int | float) and _uncertain(pixels, polygons):
        ci = c.get(f"{which}_accuracy_ci")
        if ci is None and isinstance(pixels, int):  # a report written before the intervals were recorded
            ci = wilson_interval(round(value * pixels), pixels)
        text += f'<span class="n">(95% CI {_interval(ci)})</span>'
    return text


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


def _per_class(validation: dict[str, Any], colors: dict[str, str]) -> str:
    per_class = validation.get("per_class") or []
    if not per_class:
        return ""
    with_polygons = any(isinstance(c.get("reference_polygons"), int) for c in per_class)
    rows = []
    few = False
    for c in per_class:
        color = colors.get(str(c.get("class")))
        swatch = f'<span class="sw" style="background:{_e(color)}"></span>' if color else ""
        reference, mapped = c.get("reference_count"), c.get("mapped_count")
        flags, uncertain = _class_flags(c)
        few = few or uncertain
        polygons = f"<td>{_num(c.get('reference_polygons'))}</td>" if with_polygons else ""
        rows.append(f'<tr><td class="l">{swatch}{_e(c.get("class"))}</td>'
                    f'<td>{_counted(c, "producers")}</td><td>{_counted(c, "users")}</td>'
                    f'<td>{_num(c.get("f1"))}</td><td>{_num(reference)}</td>{polygons}<td>{_num(mapped)}</td>'
                    f'<td class="l flag">{_e("; ".join(flags))}</td></tr>')
    averaged = validation.get("macro_f1_classes")
    if averaged is None:  # a report written before the list was recorded
        averaged = [c.get("class") for c in per_class if c.get("reference_count")]
    left = [c.get("class") for c in per_class if c.get("class") not in averaged]
    note = (f"Macro F1 is the mean over the {len(averaged)} classes present in the reference "
            f"({_e(', '.join(str(a) for a in averaged))}); balanced accuracy is their mean producer's accuracy.")
    if left:
        note += f" Classes without reference pixels are not counted: {_e(', '.join(str(x) for x in left))}."
    if few:
        note += (f" An accuracy from fewer than {FEW_PIXELS} pixels or {FEW_POLYGONS} polygons tells little: it "
                 "shows its 95% confidence interval (Wilson score interval). That interval counts pixels as "
                 "independent, but the pixels of one polygon are alike, so with few polygons the real uncertainty "
                 "is wider still. Draw more polygons of these classes to measure them.")
    head = "<th>Reference polygons</th>" if with_polygons else ""
    return ("<h2>Per class</h2><table><tr><th class=\"l\">Class</th><th>Producer's accuracy</th>"
            f"<th>User's accuracy</th><th>F1</th><th>Reference pixels</th>{head}<th>Mapped pixels</th>"
            "<th class=\"l\">Notes</th></tr>"
            f'{"".join(rows)}</table><p class="note">{note}</p>')


def _area(area: dict[str, Any]) -> str:
    rows = []
    for c in area.get("per_class") or []:
        rows.append(
            f'<tr><td class="l">{_e(c.get("class"))}</td><td>{_pm(c.get("mapped_area_ha"), None, pct=False)}</td>'
            f'<td>{_pm(c.get("proportion"), c.get("proportion_ci95"))}</td>'
            f'<td>{_pm(c.get("area_ha"), c.get("area_ha_ci95"), pct=False)}</td>'
            f'<td>{_pm(c.get("users_accuracy"), c.get("users_accuracy_ci95"))}</td>'
            f'<td>{_pm(c.get("producers_accuracy"), c.get("producers_accuracy_ci95"))}</td>'
            f'<td>{_num(c.get("n_samples"))}</td></tr>'
        )
    oa = _pm(area.get("overall_accuracy"), area.get("overall_accuracy_ci95"))
    parts = ["<h2>Area-adjusted accuracy and area estimates</h2>",
             f'<p class="note">{_e(area.get("estimator", "Stratified estimators"))}; ± is the 95 % confidence '
             "interval. The estimators assume a probability sample of the map; with purposively drawn reference "
             "polygons they are indicative only.</p>"]
    unsampled = area.get("unsampled_strata") or []
    if unsampled:
        parts.append(f'<div class="warn">Map classes without any reference sample: {_e(", ".join(unsampled))}. '
                     "Areas, overall and producer's accuracies cannot be estimated until every mapped class is "
                     "sampled.</div>")
    parts.append(f'<p class="big">Overall accuracy (area-weighted) {oa}</p>')
    total = area.get("total_area_ha")
    if isinstance(total, int | float):
        parts.append(f"<p>Total mapped area {total:,.1f} ha.</p>")
    parts.append("<table><tr><th class=\"l\">Class</th><th>Mapped area (ha)</th><th>Estimated share</th>"
                 "<th>Estimated area (ha)</th><th>User's accuracy</th><th>Producer's accuracy</th>"
                 "<th>Samples in stratum</th></tr>"
                 f'{"".join(rows)}</table>')
    return "".join(parts)


def _training(training: dict[str, Any]) -> str:
    rows = [f"<tr><td>{_e(_TRAINING_LABELS.get(k, k.replace('_', ' ').capitalize()))}</td><td>{_num(v)}</td></tr>"
            for k, v in training.items() if isinstance(v, str | int | float)]
    per_class = training.get("samples_per_class") or {}
    if isinstance(per_class, dict) and per_class:
        rows.append("<tr><td>Labelled pixels per class</td><td>"
                    f'{_e(", ".join(f"{k} {v}" for k, v in per_class.items()))}</td></tr>')
    return f'<h2>Training data</h2><table class="kv">{"".join(rows)}</table>' if rows else ""


def _png_img(path: Any, alt: str) -> str:
    """The PNG at ``path`` inline as a base64 data URI (the page stays one file), or a note when it is unreadable."""
    if not path:
        return ""
    try:
        data = Path(str(path)).read_bytes()
    except OSError:
        return f'<p class="note">Plot not found: {_e(path)}.</p>'
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return f'<p class="note">Plot {_e(path)} is not a PNG image.</p>'
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return f'<p><img src="{uri}" alt="{_e(alt)}" style="max-width:100%;height:auto"></p>'


def _learning_curve(curve: dict[str, Any]) -> str:
    rows = []
    for r in curve.get("rows") or []:
        rows.append(f'<tr><td class="l">{_e(r.get("features"))}</td><td>{_e(r.get("per_class"))}</td>'
                    f'<td>{_num(r.get("n_train"), 1)}</td>'
                    f'<td>{_pm(r.get("overall_accuracy"), r.get("overall_accuracy_std"))}</td>'
                    f'<td>{_num(r.get("kappa"))}</td><td>{_num(r.get("macro_f1"))}</td></tr>')
    seeds = curve.get("seeds") or []
    fraction = curve.get("test_fraction")
    held_out = f"{_pct(fraction)} of each class's polygons" if isinstance(fraction, int | float) else "polygons"
    method = curve.get("method_label") or curve.get("method", "n/a")
    note = (f'<p class="note">Method {_e(method)}, trained on at most the given number of labelled samples per '
            "class, drawn from the training polygons only and spread over as many of them as "
            f"possible, and scored on {held_out} held out whole. Every feature set uses the same splits and the "
            f"same samples. Mean ± standard deviation over {len(seeds)} split(s) "
            f'(seeds {_e(", ".join(str(s) for s in seeds))}).</p>')
    table = ("<table><tr><th class=\"l\">Features</th><th>Samples per class</th>"
             "<th>Mean training samples per class</th><th>Overall accuracy</th><th>Kappa</th><th>Macro F1</th></tr>"
             f'{"".join(rows)}</table>')
    return "<h2>Learning curve</h2>" + note + table + _png_img(curve.get("png"), "Learning curve")


def _projection(projection: dict[str, Any]) -> str:
    methods = [str(m) for m in projection.get("methods") or []]
    variance = projection.get("pca_explained_variance") or []
    caption = f"{_e(' and '.join(methods) or 'Projection')} of {_num(projection.get('n_points'))} labelled samples"
    caption += " (standardised features), coloured by class."
    if variance:
        axes = ", ".join(f"PC{i + 1} {_pct(v)}" for i, v in enumerate(variance))
        caption += f" PCA explained variance: {axes}."
    if "t-SNE" in methods:
        caption += " t-SNE keeps neighbourhoods, not distances between clusters."
    return ("<h2>Feature space</h2>" + _png_img(projection.get("png"), "Projection of the labelled samples")
            + f'<p class="note">{caption}</p>')


def _training_curve(curve: dict[str, Any]) -> str:
    rows = []
    for r in curve.get("epochs") or []:
        rows.append(f'<tr><td>{_num(r.get("epoch"))}</td><td>{_num(r.get("train_loss"), 4)}</td>'
                    f'<td>{_num(r.get("val_loss"), 4)}</td><td>{_pct(r.get("val_acc"))}</td>'
                    f'<td>{_num(r.get("lr"), 6)}</td></tr>')
    note = (f'<p class="note">Trained on {_e(curve.get("device", "n/a"))} ({_e(curve.get("precision", ""))}), '
            f'{_num(curve.get("seconds_per_epoch"), 1)} s per epoch. The model keeps the weights of the epoch with '
            "the lowest validation loss.</p>")
    table = ("<table><tr><th>Epoch</th><th>Training loss</th><th>Validation loss</th><th>Validation accuracy</th>"
             f'<th>Learning rate</th></tr>{"".join(rows)}</table>')
    return "<h2>Training curve</h2>" + _png_img(curve.get("png"), "Training curve") + note + table


def render_html(report: dict[str, Any]) -> str:
    """The report as a self-contained HTML page (inline CSS, no script, no external link)."""
    title = report.get("title") or "Landprobe report"
    validation = report.get("validation")
    body = [f"<h1>{_e(title)}</h1>", _inputs(report), _left_out(report)]
    if isinstance(report.get("selection"), dict):
        body.append(_selection(report["selection"]))
    if isinstance(validation, dict):
        body += [_scheme(validation), _summary(validation), _matrix(validation),
                 _per_class(validation, _colors(report))]
    else:
        body.append("<h2>Validation</h2><p>No accuracy figures: no class had enough independent reference data "
                    "to validate on.</p>")
    if isinstance(report.get("area_adjusted"), dict):
        body.append(_area(report["area_adjusted"]))
    if isinstance(report.get("training"), dict):
        body.append(_training(report["training"]))
    if isinstance(report.get("training_curve"), dict):
        body.append(_training_curve(report["training_curve"]))
    if isinstance(report.get("learning_curve"), dict):
        body.append(_learning_curve(report["learning_curve"]))
    if isinstance(report.get("projection"), dict):
        body.append(_projection(report["projection"]))
    body.append(f"<footer>Landprobe {_e(__version__)}</footer>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n{''.join(body)}\n</body></html>\n")


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
