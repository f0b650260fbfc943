"""Every plot the engine draws, in one shared style: the learning curve, the feature space and the training curve.

The plots take plain data (the dicts of :mod:`engine.assess.insight`, a fine-tuning history) and write a PNG
atomically. They use matplotlib's Agg canvas without pyplot (no global figure state, no display), imported only when
a plot is drawn, and draw inside :data:`STYLE`, one matplotlib rc context: font sizes, grid, resolution, the colours
of series. Classes are drawn in the colours the report and the map legend give them. Sizes follow one policy: a plot
is :data:`PLOT_SIZE` (800 x 500 px, shown unscaled in the 1100 px wide report), panels side by side are
:data:`PANEL_SIZE` each.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cycler import cycler

from ..io.rasters import atomic_output

if TYPE_CHECKING:
    from collections.abc import Iterator

    from matplotlib.figure import Figure

#: Dots per inch of every PNG: a size in inches times 100 is its size in pixels.
DPI = 100
#: One plot, in inches (800 x 500 px).
PLOT_SIZE = (8.0, 5.0)
#: One panel of several side by side, in inches (650 x 550 px each).
PANEL_SIZE = (6.5, 5.5)
#: Colours of series that are not classes (feature sets, losses), in order: matplotlib's ``tab10``.
SERIES_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                  "#bcbd22", "#17becf")
#: A reference line (the accuracy of a random guess).
REFERENCE_LINE = {"color": "grey", "linestyle": "--", "linewidth": 1}
#: The shared matplotlib style (rc parameters), applied while a plot is drawn and saved.
STYLE: dict[str, Any] = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 12,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.framealpha": 0.8,
    "lines.linewidth": 1.5,
    "lines.markersize": 5,
}
#: Points of a scatter plot.
POINTS = {"s": 8, "alpha": 0.8, "edgecolors": "none"}
#: Above this many classes a scatter plot has no legend (it would hide the points).
MAX_LEGEND_CLASSES = 20


@contextmanager
def _figure(width: float, height: float) -> Iterator[Figure]:
    """A figure on the Agg canvas, without pyplot, drawn and saved inside :data:`STYLE`."""
    # Lazy: matplotlib takes about a second to import, for a plot few runs draw.
    import matplotlib

    # Lazy: matplotlib takes about a second to import, for a plot few runs draw.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    # Lazy: matplotlib takes about a second to import, for a plot few runs draw.
    from matplotlib.figure import Figure

    with matplotlib.rc_context({**STYLE, "axes.prop_cycle": cycler(color=list(SERIES_COLOURS))}):
        fig = Figure(figsize=(width, height))
        FigureCanvasAgg(fig)
        yield fig


def _save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically, at :data:`DPI`."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)


def class_colours(colors: list[str] | None, n: int) -> list[str]:
    """A colour per class index: the classes' own colours (``#rrggbb``), cycled, or :data:`SERIES_COLOURS`."""
    palette = list(colors) if colors else list(SERIES_COLOURS)
    return [palette[k % len(palette)] for k in range(n)]


# ---------------------------------------------------------------------------------------------------------------
# Learning curve
# ---------------------------------------------------------------------------------------------------------------


def _curve_ticks(rows: list[dict[str, Any]]) -> tuple[list[float], list[str]]:
    """Tick positions and labels of the x axis: each size at its mean training count, ``all`` likewise.

    A size whose tick would sit within 15 % of a tick already placed (``all`` first, then the sizes from the
    largest) is not labelled, so labels never overlap on the log axis.
    """
    ticks: dict[float, str] = {}
    ordered = sorted(rows, key=lambda r: (r["per_class"] != "all", -float(r["n_train"])))
    for r in ordered:
        x = float(r["n_train"])
        if x > 0 and not any(abs(x / t - 1.0) < 0.15 for t in ticks):
            ticks[x] = str(r["per_class"])
    positions = sorted(ticks)
    return positions, [ticks[p] for p in positions]


def learning_curve_png(curve: dict[str, Any], path: str | Path) -> Path:
    """Plot a learning curve: overall accuracy against labelled samples per class, one line per feature set.

    ``curve`` is what :func:`engine.assess.insight.learning_curve` returns. The x axis is logarithmic; each point
    sits at the mean number of training samples per class actually used (the size itself unless a class had fewer),
    so ``all`` sits at the mean training count. The band is ± one standard deviation over the seeds; the dashed line
    is the accuracy of a uniform random guess. :data:`PLOT_SIZE`.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    """
    # Lazy: matplotlib takes about a second to import, for a plot few runs draw.
    from matplotlib.ticker import NullLocator

    rows = curve.get("rows") or []
    with _figure(*PLOT_SIZE) as fig:
        ax = fig.subplots()
        for name in dict.fromkeys(r["features"] for r in rows):
            own = sorted((r for r in rows if r["features"] == name and r["overall_accuracy"] is not None),
                         key=lambda r: r["n_train"])
            if own:
                _mean_and_band(ax, own, str(name))
        classes = curve.get("classes") or []
        if classes:
            ax.axhline(1.0 / len(classes), label="random guess", **REFERENCE_LINE)
        ax.set_xscale("log")
        if rows:
            positions, labels = _curve_ticks(rows)
            ax.set_xticks(positions, labels)
            ax.xaxis.set_minor_locator(NullLocator())
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel("labelled samples per class (from training polygons)")
        ax.set_ylabel("overall accuracy on held-out polygons")
        seeds = curve.get("seeds") or []
        ax.set_title(f"Learning curve: {curve.get('method', '')}, mean ± std over {len(seeds)} split(s)")
        ax.legend(loc="lower right")
        fig.tight_layout()
        return _save(fig, path)


def _mean_and_band(ax: Any, rows: list[dict[str, Any]], label: str) -> None:
    """One feature set's mean accuracy as a line with markers, and ± one standard deviation as a band."""
    x = [r["n_train"] for r in rows]
    mean = [r["overall_accuracy"] for r in rows]
    std = [r["overall_accuracy_std"] or 0.0 for r in rows]
    (line,) = ax.plot(x, mean, marker="o", label=label)
    ax.fill_between(x, [m - s for m, s in zip(mean, std, strict=True)],
                    [m + s for m, s in zip(mean, std, strict=True)], color=line.get_color(), alpha=0.2)


# ---------------------------------------------------------------------------------------------------------------
# Feature space
# ---------------------------------------------------------------------------------------------------------------


def _panel_title(method: str, projection: dict[str, Any]) -> str:
    """``PCA (PC1 41%, PC2 22% of variance)`` or ``t-SNE (perplexity 30)``."""
    if method == "PCA":
        first, second = projection["pca_explained_variance"][:2]
        return f"PCA (PC1 {first:.0%}, PC2 {second:.0%} of variance)"
    if method == "t-SNE":
        return f"t-SNE (perplexity {projection['perplexity']:.0f})"
    return method


def _scatter(ax: Any, xy: Any, y: Any, class_names: list[str], colours: list[str], title: str) -> None:
    """One panel: points coloured by class, drawn in class order, with a legend for up to 20 classes."""
    for k, name in enumerate(class_names):
        mask = y == k
        if mask.any():
            ax.scatter(xy[mask, 0], xy[mask, 1], c=colours[k], label=name, **POINTS)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(set(y.tolist())) <= MAX_LEGEND_CLASSES:
        ax.legend(loc="best", markerscale=2)


def feature_space_png(projection: dict[str, Any], class_names: list[str], colors: list[str] | None,
                      path: str | Path) -> Path:
    """Draw the labelled samples in two dimensions, one panel per method side by side, coloured by class.

    Args:
        projection: what :func:`engine.assess.insight.projection` returns: ``coordinates`` (method -> (n, 2)
            array, in panel order), ``y`` (class index per point), ``pca_explained_variance`` and, with t-SNE,
            ``perplexity``.
        class_names: class names, by class index.
        colors: ``#rrggbb`` colour per class index (the classes' colours in the report and the map legend).
        path: the PNG to write; :data:`PANEL_SIZE` per panel.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    """
    panels = list(projection["coordinates"].items())
    y = projection["y"]
    colours = class_colours(colors, len(class_names))
    width, height = PANEL_SIZE
    with _figure(width * len(panels), height) as fig:
        axes = fig.subplots(1, len(panels), squeeze=False)
        for ax, (method, xy) in zip(axes[0], panels, strict=True):
            _scatter(ax, xy, y, class_names, colours, _panel_title(method, projection))
        fig.suptitle(f"Labelled samples in feature space ({len(y)} points)")
        fig.tight_layout()
        return _save(fig, path)


# ---------------------------------------------------------------------------------------------------------------
# Training curve (fine-tuning)
# ---------------------------------------------------------------------------------------------------------------


def training_curve_png(history: list[dict[str, float]], path: str | Path) -> Path:
    """Loss (training, validation) and validation accuracy per epoch of a fine-tuning, as a PNG.

    Args:
        history: one dict per epoch with ``epoch``, ``train_loss`` and, when there is validation data,
            ``val_loss`` and ``val_acc``.
        path: the PNG to write; :data:`PLOT_SIZE`.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    """
    epochs = [r["epoch"] for r in history]
    with _figure(*PLOT_SIZE) as fig:
        loss_ax = fig.subplots()
        loss_ax.plot(epochs, [r.get("train_loss") for r in history], "o-", label="training loss",
                     color=SERIES_COLOURS[0])
        if any("val_loss" in r for r in history):
            loss_ax.plot(epochs, [r.get("val_loss", float("nan")) for r in history], "s-", label="validation loss",
                         color=SERIES_COLOURS[1])
        loss_ax.set_xlabel("epoch")
        loss_ax.set_ylabel("loss")
        handles, labels = loss_ax.get_legend_handles_labels()
        if any("val_acc" in r for r in history):
            acc_ax = loss_ax.twinx()
            acc_ax.grid(False)  # the loss axis's grid is enough
            acc_ax.plot(epochs, [r.get("val_acc", float("nan")) for r in history], "^-", color=SERIES_COLOURS[2],
                        label="validation accuracy")
            acc_ax.set_ylabel("validation accuracy")
            acc_ax.set_ylim(0, 1)
            more = acc_ax.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        loss_ax.legend(handles, labels, loc="center right")
        fig.tight_layout()
        return _save(fig, path)


# ---------------------------------------------------------------------------------------------------------------
# Regression: observed against predicted
# ---------------------------------------------------------------------------------------------------------------


def observed_predicted_png(observed: Any, predicted: Any, folds: Any, path: str | Path, unit: str = "") -> Path:
    """Observed against predicted values of the held-out pixels, one colour per fold, with the 1:1 line."""
    import numpy as np

    observed, predicted, folds = np.asarray(observed), np.asarray(predicted), np.asarray(folds)
    width, height = PANEL_SIZE
    with _figure(width, height) as fig:
        ax = fig.subplots()
        for k in np.unique(folds):
            mask = folds == k
            ax.scatter(observed[mask], predicted[mask], label=f"fold {int(k) + 1}", **POINTS)
        low = float(min(observed.min(), predicted.min()))
        high = float(max(observed.max(), predicted.max()))
        ax.plot([low, high], [low, high], color="black", linewidth=1, label="1:1")
        suffix = f" ({unit})" if unit else ""
        ax.set_xlabel(f"observed{suffix}")
        ax.set_ylabel(f"predicted{suffix}")
        ax.set_title(f"Held-out pixels, observed against predicted ({len(observed)} points)")
        ax.legend(loc="best", markerscale=2)
        fig.tight_layout()
        return _save(fig, path)
