"""The HTML report's sections (per-class flags, the automatic choice, what was left out) and the class map legend."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.assess.metrics import accuracy_figures
from engine.assess.report import method_label, plain_names, render_html, validation_label, write_report
from engine.assess.templating import join_lines
from engine.io.legend import NODATA_NAME, NOT_A_CLASS, category_names, write_category_names, write_paletted_style

CLASSES = ["water", "forest", "urban", "reed", "cloud"]
SVM10 = "Support vector machine (RBF kernel, C = 10), classes balanced"


def figures() -> dict[str, Any]:
    """Figures where reed has 8 reference pixels of 1 polygon, all right; cloud has no reference; urban is never
    mapped; water and forest have many pixels of 5 polygons each."""
    cm = np.array([[90, 5, 0, 0, 5],
                   [3, 120, 0, 0, 2],
                   [10, 30, 0, 0, 0],
                   [0, 0, 0, 8, 0],
                   [0, 0, 0, 0, 0]])
    v = {**accuracy_figures(cm, CLASSES), "scheme": "polygon_groups", "description": "Held out polygons.",
         "optimistic": False, "n_folds": 1, "test_fraction": 0.3, "fold_overall_accuracy": [0.8123],
         "fold_winners": ["svm (C=10), classes balanced"], "seed": 0, "n_test_polygons": 15, "n_polygons": 50}
    polygons = {"water": (5, 5), "forest": (5, 6), "urban": (4, 0), "reed": (1, 1), "cloud": (0, 3)}
    for c in v["per_class"]:
        c["reference_polygons"], c["mapped_polygons"] = polygons[c["class"]]
    return v


def row_of(page: str, name: str) -> str:
    """The table row whose first cell names ``name``."""
    match = re.search(rf'<tr(?: class="win")?><td class="l">(?:<span[^>]*></span>)?{re.escape(name)}</td>.*?</tr>',
                      page)
    assert match, name
    return match.group(0)


def selection() -> dict[str, Any]:
    candidate = {"method": "svm", "params": {"c": 10.0}, "class_weight": "balanced", "seconds": 2.51,
                 "note": None}
    return {
        "objective": "balanced_accuracy",
        "objective_label": "balanced accuracy (the mean of the classes' producer's accuracies)",
        "scheme": "group_kfold", "scheme_reason": "Folds of whole polygons (median 40 px each).", "n_folds": 5,
        "n_samples": 1234, "winner": "svm (C=10), classes balanced",
        "reason": "svm (C=10), classes balanced had the highest cross-validated balanced accuracy.",
        "seconds": 12.3,
        "candidates": [
            {**candidate, "name": "knn", "method": "knn", "params": {}, "class_weight": "none", "score": 0.801,
             "score_std": 0.02, "status": "scored"},
            {**candidate, "name": "xgboost, classes balanced", "method": "xgboost", "params": {}, "score": None,
             "score_std": None, "seconds": 0.0, "status": "failed", "note": "out of <memory>"},
            {**candidate, "name": "svm (C=10), classes balanced", "score": 0.912, "score_std": 0.015,
             "status": "scored"},
            {**candidate, "name": "svm (C=1), classes balanced", "params": {"c": 1.0}, "score": 0.7,
             "score_std": 0.05, "status": "pruned", "note": "0.700 on 800 samples, not among the best 5"},
        ],
    }


def test_per_class_table_flags_counts_and_note() -> None:
    v = figures()
    page = render_html({"title": "T", "validation": v, "classes": [{"name": "reed", "color": "#00ff00"}]})
    reed, cloud, urban = row_of(page, "reed"), row_of(page, "cloud"), row_of(page, "urban")
    # 8 right out of 8: Wilson's 95 % interval is 8 / (8 + 1.96^2) = 67.6 % to 100 %
    assert "100.0%<span class=\"n\">(95% CI 67.6–100.0%)</span>" in reed
    assert "producer&#x27;s accuracy from only 8 reference pixels of 1 polygon: uncertain" in reed
    assert "no reference pixels" in cloud and "never mapped" not in cloud and "n/a" in cloud
    assert "user&#x27;s accuracy from only 7 mapped pixels of 3 polygons: uncertain" in cloud
    assert "never mapped" in urban and "no reference pixels" not in urban
    assert "CI" not in row_of(page, "water") and "uncertain" not in row_of(page, "water")
    assert "Macro F1 is the mean over the 4 classes present in the reference (water, forest, urban, reed)" in page
    assert "not counted: cloud" in page and "fewer than 30 pixels or 3 polygons" in page
    assert "the pixels of one polygon are alike" in page  # said once, under the table
    assert page.count("the pixels of one polygon are alike") == 1
    assert f"balanced accuracy {v['balanced_accuracy']:.1%}" in page
    assert f"Overall accuracy {v['overall_accuracy']:.1%}" in page and f"macro F1 {v['macro_f1']:.3f}" in page
    assert "Kappa and F1 are scores from 0" in page
    table = {c["class"]: c for c in v["per_class"]}
    assert v["macro_f1"] == pytest.approx(np.mean([table[k]["f1"] for k in v["macro_f1_classes"]]))
    # the scheme in words; a single split has no per-fold line (its accuracy is the overall one)
    assert "30 % of each class&#x27;s polygons held out" in page and "15 of 50" in page
    assert "0.300" not in page and "81.2%" not in page and "Overall accuracy per fold" not in page


def test_a_class_with_few_polygons_is_uncertain_however_many_pixels() -> None:
    v = figures()
    v["per_class"][1]["reference_polygons"] = 2  # forest: 125 pixels, but of 2 polygons
    forest = row_of(render_html({"validation": v}), "forest")
    assert "95% CI" in forest and "from 125 reference pixels of only 2 polygons: uncertain" in forest


def test_report_speaks_plain_words() -> None:
    v = {**figures(), "scheme": "group_kfold", "n_folds": 3, "test_fraction": None,
         "fold_overall_accuracy": [0.8, 0.9, 0.7], "fold_winners": ["svm (C=10), classes balanced", "knn", "knn"],
         "fold_methods": ["Support vector machine (RBF kernel, C = 10), classes balanced", "k-nearest neighbours",
                          "k-nearest neighbours"]}
    report = {"title": "T", "method": "svm", "method_name": "svm (C=10), classes balanced", "method_option": "auto",
              "selection": selection(), "validation": v,
              "training": {"n_samples": 900, "n_polygons": 50, "n_samples_used": 800}}
    page = render_html(report)
    assert not re.search(r"\bsvm\b|\bknn\b|polygon_groups|group_kfold|xgboost,", page)
    assert "Automatic choice: Support vector machine (RBF kernel, C = 10), classes balanced" in page
    assert "3-fold cross-validation by whole polygons" in page
    folds = page[page.index("<h3>Per fold</h3>"):]
    assert "<td>2</td><td>90.0%</td><td class=\"l\">k-nearest neighbours</td>" in folds
    assert "N samples" not in page and "Pixels used to train" in page and "Labelled polygons" in page


def test_method_labels() -> None:
    assert method_label("svm", {"c": 1.0}, "balanced") == "Support vector machine (RBF kernel, C = 1), classes balanced"
    assert method_label("logistic_regression", {"c": 0.1}, "none") == (
        "Logistic regression (C = 0.1), classes unweighted")
    assert method_label("knn", {}, "none") == "k-nearest neighbours"  # k-NN votes without class weights
    assert method_label("random_forest") == "Random forest"
    assert method_label("segmentation unet") == "segmentation unet"  # not a probe: as it is
    candidates = [{"name": "svm (C=1), classes balanced", "method": "svm", "params": {"c": 1.0},
                   "class_weight": "balanced"}, {"name": "knn", "method": "knn", "params": {}, "class_weight": "none"}]
    assert plain_names("svm (C=1), classes balanced beat knn (0.8).", candidates) == (
        "Support vector machine (RBF kernel, C = 1), classes balanced beat k-nearest neighbours (0.8).")
    assert validation_label({"scheme": "polygon_groups", "test_fraction": 0.25}) == (
        "25 % of each class's polygons held out, whole")


def test_selection_section_lists_every_candidate_by_score() -> None:
    page = render_html({"title": "T", "method": "svm", "method_name": "svm (C=10), classes balanced",
                        "method_option": "auto", "selection": selection(),
                        "class_weight": {"used": "balanced", "why": "Chosen by cross-validation."}})
    section = page[page.index("<h2>How the method was chosen</h2>"):]
    assert "balanced accuracy (the mean of the classes" in section
    assert "5 folds of whole polygons on 1234 training samples" in section
    assert "Folds of whole polygons (median 40 px each)." in section
    order = [section.index(name) for name in (f"{SVM10}</td>", "k-nearest neighbours</td>",
                                              f"{SVM10.replace('C = 10', 'C = 1')}</td>",
                                              "XGBoost (gradient-boosted trees), classes balanced</td>")]
    assert order == sorted(order)
    winner = row_of(section, SVM10)
    assert winner.startswith('<tr class="win">') and "91.2 ± 1.5 %" in winner and "chosen" in winner
    assert "2.5" in winner
    assert "left out after the first round" in row_of(section, SVM10.replace("C = 10", "C = 1"))
    failed = row_of(section, "XGBoost (gradient-boosted trees), classes balanced")
    assert "failed" in failed and "out of &lt;memory&gt;" in failed and "n/a" in failed
    assert f"Chosen: {SVM10}.</strong> {SVM10} had the highest cross-validated balanced accuracy" in section
    assert "12.3 s" in section
    inputs = page[:page.index("<h2>How the method was chosen</h2>")]
    assert f"Automatic choice: {SVM10}" in inputs
    assert "Class weights</td><td>balanced: every class weighs the same" in inputs
    assert "Chosen by cross-validation." in inputs


def test_selection_by_macro_f1_shows_scores_not_percentages() -> None:
    chosen = {**selection(), "objective": "macro_f1", "objective_label": "macro F1"}
    section = render_html({"selection": chosen})
    assert "0.912 ± 0.015" in row_of(section, SVM10)


def test_single_candidate_is_one_line() -> None:
    only = {"objective": "overall_accuracy", "objective_label": "overall accuracy", "scheme": None, "n_folds": 0,
            "candidates": [{"name": "svm, classes balanced", "method": "svm", "params": {},
                            "class_weight": "balanced", "status": "only candidate"}],
            "winner": "svm, classes balanced", "reason": "The only candidate for these options.", "seconds": 0.0}
    page = render_html({"selection": only})
    assert ("<strong>Support vector machine (RBF kernel), classes balanced</strong>: The only candidate for these "
            "options.") in page
    assert "<th" not in page[page.index("How the method was chosen"):]


def test_left_out_section(tmp_path: Path) -> None:
    report = {"title": "T", "dropped_classes": ["reed <bed>"],
              "dropped_bands": [{"band": 6, "name": "thermal", "reason": "constant over the labels"}]}
    _, html = write_report(report, str(tmp_path / "r.json"))
    page = Path(html).read_text()
    section = page[page.index("<h2>Left out</h2>"):]
    assert "Class <strong>reed &lt;bed&gt;</strong>: no valid pixel lies under its labels" in section
    assert "Band 6 (thermal): constant over the labels." in section


def test_absent_sections_render_nothing() -> None:
    page = render_html({"title": "Plain", "training": {"method": "svm"}, "dropped_classes": [], "dropped_bands": []})
    for text in ("Left out", "How the method was chosen", "Class weights", "Macro F1 is"):
        assert text not in page


def test_report_of_an_older_version_still_renders() -> None:
    v = figures()
    del v["balanced_accuracy"], v["macro_f1_classes"]
    for c in v["per_class"]:
        del c["no_reference"], c["never_mapped"]
    for c in v["per_class"]:
        del c["producers_accuracy_ci"], c["users_accuracy_ci"], c["reference_polygons"], c["mapped_polygons"]
    page = render_html({"validation": v})
    assert "100.0%<span class=\"n\">(95% CI 67.6–100.0%)</span>" in row_of(page, "reed")  # from the counts
    assert "only 8 reference pixels: uncertain" in row_of(page, "reed")
    assert "Macro F1 is the mean over the 4 classes present in the reference" in page
    assert "no reference pixels" in row_of(page, "cloud") and "never mapped" in row_of(page, "urban")
    assert f"balanced accuracy {np.mean([0.9, 0.96, 0.0, 1.0]):.1%}" in page


def every_section(names: list[str], png: Path) -> dict[str, Any]:
    """A report with every section, its classes named ``names`` wherever a class name can appear."""
    cm = np.array([[20, 3, 1], [2, 5, 0], [1, 1, 40]])
    v = {**accuracy_figures(cm, names), "scheme": "group_kfold", "optimistic": True, "n_folds": 3,
         "fold_overall_accuracy": [0.8, 0.9, 0.7], "fold_methods": [names[0], names[1], "k-nearest neighbours"],
         "reference_classes_not_in_map": names[:2], "map_classes_without_reference": names[1]}
    candidate = {"name": names[0], "method": names[0], "params": {}, "score": 0.9, "status": "scored",
                 "note": f"beat {names[1]}"}
    return {
        "title": f"Map of {names[0]}", "field": names[1], "method": names[0], "method_name": names[0],
        "class_weight": {"used": "balanced", "why": f"{names[0]} is rare."},
        "selection": {"objective": "overall_accuracy", "scheme": names[1], "n_folds": 5, "n_samples": 10,
                      "winner": names[0], "reason": f"{names[0]} won.", "seconds": 1.0,
                      "candidates": [candidate]},
        "dropped_classes": [names[1], {"name": names[0], "reason": f"like {names[1]}"}],
        "dropped_bands": [{"band": 2, "name": names[0], "reason": names[1]}],
        "validation": v,
        "classes": [{"name": names[0], "color": 'red" onmouseover="alert(1)'}, {"name": names[1], "color": "#123"}],
        "area_adjusted": {"estimator": names[0], "unsampled_strata": names[:2], "overall_accuracy": 0.8,
                          "per_class": [{"class": n, "proportion": 0.3} for n in names]},
        "training": {"labels": names[0], "samples_per_class": {n: 3 for n in names}},
        "training_curve": {"epochs": [{"epoch": 1, "train_loss": 0.5}], "device": names[0], "precision": names[1],
                           "png": str(png)},
        "learning_curve": {"rows": [{"features": n, "per_class": n, "overall_accuracy": 0.5} for n in names],
                           "seeds": [0], "method": names[0], "png": str(png)},
        "projection": {"methods": [names[0], "t-SNE"], "n_points": 30, "png": str(png.with_name(f"{names[1]}.png"))},
    }


def test_class_names_are_escaped_everywhere(tmp_path: Path) -> None:
    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))  # a PNG signature: embedded as a data URI
    plain = render_html(every_section(["CLASSONE", "CLASSTWO", "plain"], png))
    nasty = ["<script>alert(1)</script>", 'a & b "c"', "plain"]
    page = render_html(every_section(nasty, png))
    escaped = ["&lt;script&gt;alert(1)&lt;/script&gt;", "a &amp; b &quot;c&quot;"]
    for placeholder, name, text in zip(("CLASSONE", "CLASSTWO"), nasty[:2], escaped, strict=True):
        assert plain.count(placeholder) >= 20  # every section names the classes
        assert page.count(text) == plain.count(placeholder), name  # escaped wherever the placeholder appears
        assert name not in page
    assert "<script" not in page and 'onmouseover="' not in page
    assert "background:red&quot; onmouseover=&quot;alert(1)" in page  # the colour stays inside its attribute
    assert page.count("data:image/png;base64,") == 2 and page.count("Plot not found") == 1
    tags = set(re.findall(r"</?([a-zA-Z0-9]+)", page))
    assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "table", "tr", "th", "td",
                    "div", "ul", "li", "strong", "span", "img", "footer"}


def test_template_lines_join_without_space_at_tags_and_with_one_in_prose() -> None:
    source = """<p class="note">A sentence
        that goes on
        {% if x %} and more.{% endif %}
    </p>
    <table>
      <tr><td>{{ a }}</td>
      <td>{{ b }}</td></tr>

    </table>
    """
    assert join_lines(source) == ('<p class="note">A sentence that goes on{% if x %} and more.{% endif %}</p>'
                                  "<table><tr><td>{{ a }}</td><td>{{ b }}</td></tr></table>")


def categories(aux: Path) -> tuple[list[str], list[list[str]]]:
    """Category names and attribute-table rows of band 1 in a PAM ``.aux.xml``."""
    band = ET.parse(aux).getroot().find("PAMRasterBand")
    assert band is not None
    names = [c.text or "" for c in band.iterfind("CategoryNames/Category")]
    rows = [[f.text or "" for f in row.iterfind("F")] for row in band.iterfind("GDALRasterAttributeTable/Row")]
    return names, rows


def model_classes(codes: list[int]) -> list[dict[str, Any]]:
    return [{"code": c, "name": f"class {c}", "color": f"#{c:02x}{c:02x}{c:02x}"} for c in codes]


def test_category_names_name_every_value_the_map_can_contain(tmp_path: Path) -> None:
    classes = model_classes([1, 2, 4, 5])  # class 3 was left out: no valid pixel under its labels
    aux = tmp_path / "map.tif.aux.xml"
    write_category_names(aux, classes, nodata=0)
    names, rows = categories(aux)
    assert names == [NODATA_NAME, "class 1", "class 2", NOT_A_CLASS, "class 4", "class 5"]
    assert "" not in names
    assert rows == [["1", "class 1", "1", "1", "1"], ["2", "class 2", "2", "2", "2"],
                    ["4", "class 4", "4", "4", "4"], ["5", "class 5", "5", "5", "5"]]  # real classes only
    qml = tmp_path / "map.qml"
    write_paletted_style(qml, classes)
    labels = [e.get("label") for e in ET.parse(qml).getroot().iter("paletteEntry")]
    assert labels == ["class 1", "class 2", "class 4", "class 5"]


def test_nodata_above_the_codes_is_named(tmp_path: Path) -> None:
    names = category_names(model_classes([0, 1, 3]), nodata=255)
    assert names is not None and len(names) == 256
    assert names[:4] == ["class 0", "class 1", NOT_A_CLASS, "class 3"] and names[255] == NODATA_NAME
    assert "" not in names
    assert category_names(model_classes([1, 70_000]), nodata=0) is None
    aux = tmp_path / "big.tif.aux.xml"
    write_category_names(aux, [{"code": 70_000, "name": "a & b", "color": None}], nodata=-(2**31))
    names, rows = categories(aux)
    assert names == [] and rows == [["70000", "a & b"]]  # no list can hold the code: the attribute table does
