"""Accuracy figures from a confusion matrix: overall and balanced accuracy, kappa, per-class accuracies and F1."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts with reference classes in rows and mapped classes in columns."""
    index = y_true.astype("int64") * n_classes + y_pred.astype("int64")
    return np.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def wilson_interval(successes: float, n: float, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion: ``successes`` right out of ``n`` (95 % with ``z = 1.96``).

    Unlike the normal approximation ``p ± z sqrt(p (1 - p) / n)``, it stays within 0..1 and is not empty at 0 % or
    100 %: 8 right out of 8 gives 67.6 % to 100 %. It assumes independent trials; pixels of one polygon are alike, so
    from pixels of few polygons the interval is too narrow (optimistic).

    Returns:
        The lower and upper bounds as fractions, or ``None`` when ``n`` is 0.

    """
    if n <= 0:
        return None
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def _interval(successes: float, n: float) -> list[float] | None:
    """:func:`wilson_interval` as a JSON-able list."""
    bounds = wilson_interval(successes, n)
    return list(bounds) if bounds else None


def accuracy_figures(cm: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """Overall accuracy, Cohen's kappa, balanced accuracy, per-class producer's and user's accuracy, F1 and macro F1.

    The class averages, macro F1 and balanced accuracy (the mean producer's accuracy), are taken over the classes
    present in the reference (rows of ``cm`` with at least one pixel), the classes whose accuracy the reference can
    tell; ``macro_f1_classes`` names them. A reference class the map never predicts counts with an F1 and a
    producer's accuracy of 0. A class without reference pixels has no producer's accuracy and no F1 (``None``): it
    is flagged ``no_reference``, and the pixels wrongly mapped as it still lower the figures of the reference
    classes they belong to. A class the map never predicts is flagged ``never_mapped``. Each per-class accuracy has
    its 95 % :func:`wilson_interval` (``producers_accuracy_ci``, ``users_accuracy_ci``: ``[low, high]``), counting
    pixels as independent.

    Args:
        cm: a :func:`confusion_matrix`, reference classes in rows, mapped classes in columns.
        class_names: a name per row and column of ``cm``.

    Returns:
        The figures as plain JSON-able values: fractions from 0 to 1, ``None`` where a figure has no pixel to
        count on.

    """
    cm = np.asarray(cm, dtype="float64")
    total = cm.sum()
    diag = np.diag(cm)
    reference = cm.sum(axis=1)
    mapped = cm.sum(axis=0)
    oa = _ratio(diag.sum(), total)
    expected = (reference * mapped).sum() / total**2 if total else 0.0
    kappa = _ratio((oa or 0.0) - expected, 1.0 - expected) if oa is not None else None
    per_class = []
    f1s, recalls, averaged = [], [], []
    for i, name in enumerate(class_names):
        pa = _ratio(diag[i], reference[i])
        ua = _ratio(diag[i], mapped[i])
        f1 = _ratio(2 * diag[i], reference[i] + mapped[i]) if reference[i] > 0 else None
        if reference[i] > 0:
            f1s.append(f1 or 0.0)
            recalls.append(pa or 0.0)
            averaged.append(name)
        per_class.append({"class": name, "reference_count": int(reference[i]), "mapped_count": int(mapped[i]),
                          "producers_accuracy": pa, "users_accuracy": ua, "f1": f1,
                          "producers_accuracy_ci": _interval(diag[i], reference[i]),
                          "users_accuracy_ci": _interval(diag[i], mapped[i]),
                          "no_reference": bool(reference[i] == 0), "never_mapped": bool(mapped[i] == 0)})
    return {
        "n": int(total),
        "overall_accuracy": oa,
        "kappa": kappa,
        "balanced_accuracy": float(np.mean(recalls)) if recalls else None,
        "macro_f1": float(np.mean(f1s)) if f1s else None,
        "macro_f1_classes": averaged,
        "per_class": per_class,
        "confusion_matrix": cm.astype("int64").tolist(),
        "classes": list(class_names),
    }


def add_polygon_counts(per_class: list[dict[str, Any]], y_true: np.ndarray, y_pred: np.ndarray,
                       groups: np.ndarray) -> None:
    """Add the polygons behind each class's figures to the ``per_class`` rows of :func:`accuracy_figures`.

    ``reference_polygons`` counts the test polygons of the class, ``mapped_polygons`` those with a pixel mapped as
    it. The pixels of one polygon are alike, so a per-class figure from one or two polygons tells little however
    many pixels they hold.
    """
    for k, row in enumerate(per_class):
        row["reference_polygons"] = len(np.unique(groups[y_true == k]))
        row["mapped_polygons"] = len(np.unique(groups[y_pred == k]))


#: Two-sided 95 % normal quantile used for the confidence intervals of :func:`area_adjusted`.
Z95 = 1.96


def _ci(se: float | None) -> float | None:
    return Z95 * se if se is not None else None


def area_adjusted(cm: np.ndarray, map_pixels: np.ndarray, pixel_area_m2: float | None,
                  class_names: list[str] | None = None) -> dict[str, Any]:
    """Area-weighted accuracy and error-adjusted area estimates with 95 % confidence intervals.

    Implements the stratified estimators of Olofsson et al. (2014), "Good practices for estimating area and
    assessing accuracy of land change", Remote Sensing of Environment 148, 42-57, with the map classes as strata.

    Orientation: ``cm`` is a :func:`confusion_matrix`, with **reference** classes in rows and **map** classes in
    columns. Olofsson's notation is the transpose: ``n_ij`` counts samples *mapped* as ``i`` whose reference class
    is ``j``, so ``n = cm.T`` here. With ``W_i`` the mapped proportion of class ``i`` (from ``map_pixels``, the
    whole map's pixel counts per class) and ``n_i.`` the number of samples in stratum ``i``, the estimated area
    proportions are ``p_ij = W_i * n_ij / n_i.`` (eq. 4). From them:

    * overall accuracy ``O = sum_i p_ii`` and its standard error (eq. 5);
    * user's accuracy ``U_i = p_ii / p_i.`` (eq. 2) and its standard error (eq. 6);
    * producer's accuracy ``P_j = p_jj / p_.j`` (eq. 3) and its standard error (eq. 7);
    * the area proportion of reference class ``k``, ``p_.k`` (eq. 9), its standard error (eq. 10), the area
      ``A * p_.k`` (eq. 11) and the area's standard error (eq. 12).

    Confidence intervals are ``1.96 * SE`` (half-widths). Quantities that would divide by zero are ``None``: user's
    accuracy of a map class without samples, standard errors of strata with a single sample, producer's accuracy
    of a class with zero estimated area. A map class present in the map (``W_i > 0``) but without any sample
    leaves its row of ``p_ij`` unknown, so overall accuracy, producer's accuracies and areas (which all depend on
    every stratum) are ``None``; it is listed under ``unsampled_strata``.

    The estimators assume a probability sample (e.g. stratified random) of the map; for purposively drawn reference
    polygons they are indicative only.

    Args:
        cm: confusion matrix of sample counts, reference rows and map columns.
        map_pixels: number of pixels mapped as each class in the whole map, in the order of ``cm``.
        pixel_area_m2: area of one pixel in square metres; ``None`` (e.g. a geographic CRS) gives proportions only.
        class_names: names for the ``class`` entries; defaults to the class indices.

    Returns:
        ``per_class`` entries (map pixels, mapped and estimated area in m² and ha with 95 % CI half-widths, user's
        and producer's accuracy with CIs, samples per stratum), overall accuracy with its CI, the area-proportion
        matrix (same orientation as ``cm``), totals and the strata without samples.

    """
    counts = np.asarray(cm, dtype="float64")
    k = counts.shape[0]
    if counts.shape != (k, k) or len(map_pixels) != k:
        raise ValueError(f"cm must be square and match map_pixels; got {counts.shape} and {len(map_pixels)}.")
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    n = counts.T  # Olofsson: rows = map class (stratum) i, columns = reference class j
    pixels = np.asarray(map_pixels, dtype="float64")
    total_pixels = pixels.sum()
    weights = pixels / total_pixels if total_pixels else np.zeros(k)
    n_i = n.sum(axis=1)
    sampled = n_i > 0
    row_share = np.divide(n, n_i[:, None], out=np.zeros_like(n), where=sampled[:, None])  # n_ij / n_i.
    p = weights[:, None] * row_share
    unsampled = [i for i in range(k) if weights[i] > 0 and not sampled[i]]
    complete = not unsampled
    # Per-stratum variance factor 1 / (n_i. - 1); strata with W_i = 0 contribute nothing whatever their size.
    contributes = weights > 0
    var_ok = bool(np.all(n_i[contributes] > 1))
    inv = np.divide(1.0, n_i - 1, out=np.zeros(k), where=n_i > 1)
    users = [float(row_share[i, i]) if sampled[i] else None for i in range(k)]

    oa = oa_se = None
    if complete and total_pixels:
        oa = float(np.trace(p))
        if var_ok:
            u = np.diag(row_share)
            oa_se = float(np.sqrt(np.sum(weights**2 * u * (1 - u) * inv)))

    area_total_m2 = total_pixels * pixel_area_m2 if pixel_area_m2 is not None else None
    ref_prop = p.sum(axis=0)  # p_.j, estimated area proportion of reference class j
    prop_var = (weights[:, None] ** 2 * row_share * (1 - row_share) * inv[:, None]).sum(axis=0)
    per_class = []
    for j in range(k):
        ua = users[j]
        ua_se = float(np.sqrt(ua * (1 - ua) / (n_i[j] - 1))) if ua is not None and n_i[j] > 1 else None
        prop = float(ref_prop[j]) if complete and total_pixels else None
        prop_se = float(np.sqrt(prop_var[j])) if prop is not None and var_ok else None
        pa = pa_se = None
        if prop:
            pa = float(p[j, j] / ref_prop[j])
            if var_ok:
                # eq. 7 with N_i. replaced by W_i (the ratio is scale-free): N_.j / N = p_.j.
                own = weights[j] ** 2 * (1 - pa) ** 2 * row_share[j, j] * (1 - row_share[j, j]) * inv[j]
                others = sum(weights[i] ** 2 * row_share[i, j] * (1 - row_share[i, j]) * inv[i]
                             for i in range(k) if i != j)
                pa_se = float(np.sqrt((own + pa**2 * others) / ref_prop[j] ** 2))
        mapped_m2 = float(pixels[j] * pixel_area_m2) if pixel_area_m2 is not None else None
        area_m2 = prop * area_total_m2 if prop is not None and area_total_m2 is not None else None
        area_se_m2 = prop_se * area_total_m2 if prop_se is not None and area_total_m2 is not None else None
        per_class.append({
            "class": names[j],
            "map_pixels": int(pixels[j]),
            "mapped_proportion": float(weights[j]),
            "mapped_area_m2": mapped_m2,
            "mapped_area_ha": mapped_m2 / 1e4 if mapped_m2 is not None else None,
            "n_samples": int(n_i[j]),
            "proportion": prop,
            "proportion_se": prop_se,
            "proportion_ci95": _ci(prop_se),
            "area_m2": area_m2,
            "area_m2_se": area_se_m2,
            "area_m2_ci95": _ci(area_se_m2),
            "area_ha": area_m2 / 1e4 if area_m2 is not None else None,
            "area_ha_ci95": _ci(area_se_m2) / 1e4 if area_se_m2 is not None else None,
            "users_accuracy": ua,
            "users_accuracy_se": ua_se,
            "users_accuracy_ci95": _ci(ua_se),
            "producers_accuracy": pa,
            "producers_accuracy_se": pa_se,
            "producers_accuracy_ci95": _ci(pa_se),
        })
    return {
        "estimator": "Olofsson et al. (2014) stratified estimators, map classes as strata",
        "z": Z95,
        "n": int(counts.sum()),
        "pixel_area_m2": pixel_area_m2,
        "total_pixels": int(total_pixels),
        "total_area_m2": area_total_m2,
        "total_area_ha": area_total_m2 / 1e4 if area_total_m2 is not None else None,
        "overall_accuracy": oa,
        "overall_accuracy_se": oa_se,
        "overall_accuracy_ci95": _ci(oa_se),
        "per_class": per_class,
        "proportion_matrix": p.T.tolist(),  # reference rows, map columns, like cm
        "unsampled_strata": [names[i] for i in unsampled],
        "classes": names,
    }


def held_out_area_estimate(validation: dict[str, Any] | None, class_names: list[str], map_pixels: list[int],
                           pixel_area_m2: float | None) -> dict[str, Any] | None:
    """:func:`area_adjusted` for a new map, from the confusion matrix of its model's held-out polygons.

    What class weighting (or any bias of the model) means for the mapped areas: the held-out polygons' confusion
    matrix, with the map's own class shares as strata weights. The polygons were drawn by hand, not as a
    probability sample of the map, so the estimate is indicative; *Assess accuracy* with a random reference sample
    gives the unbiased one. ``None`` without a held-out confusion matrix of these classes.
    """
    cm = (validation or {}).get("confusion_matrix")
    if cm is None or np.shape(cm) != (len(class_names), len(class_names)) or not sum(map_pixels):
        return None
    estimate = area_adjusted(np.asarray(cm), np.asarray(map_pixels), pixel_area_m2, class_names)
    estimate["basis"] = ("the confusion matrix of the model's held-out polygons (not a random sample of the map: "
                         "indicative only; Assess accuracy with a random sample gives the unbiased estimate)")
    return estimate


def area_estimate_lines(estimate: dict[str, Any]) -> list[str]:
    """One line per class: mapped share and area-adjusted share with its 95 % interval (and hectares)."""
    if estimate["unsampled_strata"]:
        return [f"Not estimated: no held-out pixel was mapped as {', '.join(estimate['unsampled_strata'])}, which "
                "the map contains."]
    lines = []
    for row in estimate["per_class"]:
        line = f"{row['class']}: mapped {100 * row['mapped_proportion']:.1f} %"
        if row["proportion"] is not None:
            ci = row["proportion_ci95"]
            line += f", estimated {100 * row['proportion']:.1f}" + (f" ± {100 * ci:.1f} %" if ci is not None else " %")
            if row["area_ha"] is not None:
                ha_ci = row["area_ha_ci95"]
                line += f" ({row['area_ha']:,.1f} ha" + (f" ± {ha_ci:,.1f})" if ha_ci is not None else ")")
        lines.append(line)
    return lines
