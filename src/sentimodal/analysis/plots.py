"""Pictures of results that a person reads at a glance: confusion heat maps, training curves,
model comparisons and gate distributions.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so nothing
is kept in a global figure registry and no display is needed; :func:`figure_to_png` and
:func:`figure_to_data_uri` turn a figure into bytes for reports.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)
# Sentiment names keep one colour in every picture, so readers learn it once.
SENTIMENT_COLOURS: dict[str, str] = {
    "negative": "#D55E00",
    "neutral": "#8C8C8C",
    "positive": "#0072B2",
}
MISSING_COLOUR = "#D0D0D0"
MISSING_NAMES = frozenset({"", "none", "nan", "<na>", "unknown", "missing"})
DPI = 130


def category_colours(categories: Sequence[str]) -> dict[str, str]:
    """A colour per category: fixed ones for sentiment names, Okabe-Ito (then tab20) otherwise."""
    free = [c for c in OKABE_ITO if c not in SENTIMENT_COLOURS.values()]
    free += [to_hex(colormaps["tab20"](i)) for i in range(20)]
    colours: dict[str, str] = {}
    used = 0
    for category in categories:
        key = str(category)
        if key.lower() in SENTIMENT_COLOURS:
            colours[key] = SENTIMENT_COLOURS[key.lower()]
        elif key.lower() in MISSING_NAMES:
            colours[key] = MISSING_COLOUR
        else:
            colours[key] = free[used % len(free)]
            used += 1
    return colours


def figure_to_png(figure: Figure, dpi: int = DPI) -> bytes:
    """PNG bytes of a figure, cropped to its content."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """Inline an image in HTML without a separate file."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def figure_to_data_uri(figure: Figure, dpi: int = DPI) -> str:
    return data_uri(figure_to_png(figure, dpi=dpi))


def confusion_heatmap(
    confusion: ArrayLike, labels: Sequence[str], title: str = "Confusion matrix"
) -> Figure:
    """Counts and row percentages per cell, coloured by the row share.

    Colouring by row share (recall per true class) keeps small classes visible next to large
    ones; the count beside it says how many posts that share stands for.
    """
    counts = np.asarray(confusion, dtype=np.int64)
    k = len(labels)
    if counts.shape != (k, k):
        raise ValueError(f"confusion matrix shape {counts.shape} does not match {k} labels")
    row_totals = counts.sum(axis=1)
    shares = np.divide(
        counts, row_totals[:, None], out=np.zeros(counts.shape), where=row_totals[:, None] > 0
    )
    total = int(counts.sum())
    accuracy = np.trace(counts) / total if total else float("nan")

    side = max(4.6, 1.25 * k + 2.4)
    figure = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = figure.add_subplot()
    image = ax.imshow(shares * 100, cmap="Blues", vmin=0, vmax=100)
    colourbar = figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    colourbar.set_label("share of the true class (%)")
    font = 11 if k <= 5 else 9 if k <= 8 else 7
    for i in range(k):
        for j in range(k):
            colour = "white" if shares[i, j] > 0.55 else "black"
            weight = "bold" if i == j else "normal"
            ax.text(
                j,
                i,
                f"{counts[i, j]}\n{shares[i, j]:.1%}",
                ha="center",
                va="center",
                color=colour,
                fontsize=font,
                fontweight=weight,
            )
    ax.set_xticks(range(k), labels=list(labels), rotation=30 if k > 4 else 0, ha="right")
    row_names = [f"{name}\n(n={n})" for name, n in zip(labels, row_totals, strict=True)]
    ax.set_yticks(range(k), labels=row_names)
    if k <= 4:
        for tick in ax.get_xticklabels():
            tick.set_ha("center")
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(f"{title}\naccuracy {accuracy:.3f} on {total} posts", fontsize=12)
    return figure


def training_curves(history: Sequence[Mapping[str, float]], title: str = "Training") -> Figure:
    """Loss (left) and accuracy (right) per epoch, with the best validation epoch marked.

    Plots whichever of ``train_loss``/``val_loss`` and ``train_accuracy``/``val_accuracy``/
    ``val_macro_f1`` the history holds, so one function serves every training loop.
    """
    if not history:
        raise ValueError("empty training history")
    frame = pd.DataFrame(list(history))
    epochs = frame["epoch"] if "epoch" in frame else pd.Series(range(1, len(frame) + 1))
    panels = {
        "loss": [c for c in ("train_loss", "val_loss") if c in frame],
        "score": [c for c in ("train_accuracy", "val_accuracy", "val_macro_f1") if c in frame],
    }
    panels = {name: cols for name, cols in panels.items() if cols}
    if not panels:
        raise ValueError(f"history has none of the plotted metrics; columns: {list(frame)}")
    styles = {
        "train_loss": (OKABE_ITO[0], "-", "o"),
        "val_loss": (OKABE_ITO[1], "--", "s"),
        "train_accuracy": (OKABE_ITO[0], "-", "o"),
        "val_accuracy": (OKABE_ITO[1], "--", "s"),
        "val_macro_f1": (OKABE_ITO[2], ":", "^"),
    }
    figure = Figure(figsize=(5.2 * len(panels), 4.0), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    best_epoch = None
    if "val_accuracy" in frame and frame["val_accuracy"].notna().any():
        best_row = int(frame["val_accuracy"].idxmax())
        best_epoch = epochs.iloc[best_row]
        best_value = float(frame["val_accuracy"].iloc[best_row])
    for ax, (panel, columns) in zip(axes, panels.items(), strict=True):
        for column in columns:
            colour, line, marker = styles[column]
            ax.plot(
                epochs,
                frame[column],
                color=colour,
                linestyle=line,
                marker=marker,
                markersize=4,
                label=column.replace("_", " "),
            )
        if best_epoch is not None:
            ax.axvline(best_epoch, color="0.5", linestyle=":", linewidth=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" if panel == "loss" else "score")
        ax.set_title("loss per epoch" if panel == "loss" else "accuracy per epoch")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
        if len(epochs) <= 20:
            ax.set_xticks(list(epochs))
    if best_epoch is not None:
        figure.suptitle(f"{title}: best validation accuracy {best_value:.3f} at epoch {best_epoch}")
    else:
        figure.suptitle(title)
    return figure


def grouped_bar_chart(
    values: pd.DataFrame,
    errors: pd.DataFrame | None = None,
    title: str = "",
    xlabel: str = "score",
    limits: tuple[float, float] | None = (0.0, 1.0),
) -> Figure:
    """Horizontal bars: one group per row of ``values``, one bar per column, value written on it.

    Horizontal bars keep long row names (model or category names) readable without rotation.
    """
    rows, series = list(values.index), list(values.columns)
    bar_height = 0.8 / len(series)
    figure = Figure(
        figsize=(8.0, max(2.6, 0.32 * len(rows) * len(series) + 1.4)), layout="constrained"
    )
    ax = figure.add_subplot()
    positions = np.arange(len(rows))
    for s, column in enumerate(series):
        offsets = positions - 0.4 + bar_height * (s + 0.5)
        heights = values[column].to_numpy(dtype=float)
        spread = None if errors is None or column not in errors else errors[column].to_numpy(float)
        ax.barh(
            offsets,
            heights,
            height=bar_height * 0.92,
            xerr=spread,
            capsize=3 if spread is not None else 0,
            color=OKABE_ITO[s % len(OKABE_ITO)],
            label=str(column).replace("_", " "),
            error_kw={"elinewidth": 1, "ecolor": "0.25"},
        )
        for y, value, err in zip(
            offsets, heights, spread if spread is not None else [np.nan] * len(rows), strict=True
        ):
            if np.isnan(value):
                continue
            text = f"{value:.3f}" if np.isnan(err) else f"{value:.3f} ± {err:.3f}"
            ax.text(
                value + (0 if np.isnan(err) else err) + 0.005 * _span(limits, heights),
                y,
                text,
                va="center",
                fontsize=8,
            )
    ax.set_yticks(positions, labels=[str(r) for r in rows])
    ax.invert_yaxis()
    if limits is not None:
        ax.set_xlim(limits[0], limits[1] + 0.15 * (limits[1] - limits[0]))
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    if len(series) > 1:
        figure.legend(loc="outside lower center", ncol=len(series), frameon=False)
    ax.set_title(title)
    return figure


def _span(limits: tuple[float, float] | None, heights: np.ndarray) -> float:
    if limits is not None:
        return limits[1] - limits[0]
    finite = heights[np.isfinite(heights)]
    return float(np.ptp(finite)) if finite.size else 1.0


def model_comparison(
    results: pd.DataFrame,
    metrics: Sequence[str] = ("accuracy", "macro_f1"),
    model_column: str = "model",
    title: str = "Model comparison",
) -> Figure:
    """Accuracy and macro-F1 per model; error bars from ``<metric>_std`` columns when present.

    A metric's value is read from ``<metric>`` or, for tables aggregated over seeds,
    ``<metric>_mean``.
    """
    table = results.set_index(model_column)
    values, errors = pd.DataFrame(index=table.index), pd.DataFrame(index=table.index)
    for metric in metrics:
        column = metric if metric in table else f"{metric}_mean"
        if column not in table:
            raise ValueError(f"results have no column {metric!r} or {metric + '_mean'!r}")
        values[metric] = table[column].astype(float)
        if f"{metric}_std" in table:
            errors[metric] = table[f"{metric}_std"].astype(float)
    subtitle = " (error bars: std over seeds)" if not errors.empty else ""
    return grouped_bar_chart(
        values, errors if not errors.empty else None, title=title + subtitle, xlabel="score"
    )


def gate_distributions(gates: Mapping[str, ArrayLike], title: str = "Gate values") -> Figure:
    """One histogram per modality of a gated fusion's gate values (all units of all posts).

    A gate near 1 means the fused representation takes that modality's part; seeing the
    whole distribution shows whether the model switches per post or uses a fixed mix.
    """
    if not gates:
        raise ValueError("no gate values given")
    arrays = {name: np.asarray(v, dtype=float).ravel() for name, v in gates.items()}
    everything = np.concatenate(list(arrays.values()))
    # the axis spans the values themselves: trained gates often stay within a few hundredths
    # of their start, which a fixed [0, 1] axis would squeeze into one bar
    low, high = (float(everything.min()), float(everything.max())) if everything.size else (0, 1)
    pad = max((high - low) * 0.05, 1e-3)
    bins = np.linspace(low - pad, high + pad, 41)
    figure = Figure(figsize=(7.0, 1.0 + 1.9 * len(arrays)), layout="constrained")
    axes = figure.subplots(len(arrays), 1, sharex=True, squeeze=False)[:, 0]
    for s, (ax, (name, values)) in enumerate(zip(axes, arrays.items(), strict=True)):
        weights = np.full(values.shape, 100.0 / max(values.size, 1))
        ax.hist(values, bins=bins, weights=weights, color=OKABE_ITO[s % len(OKABE_ITO)])
        mean, median = float(np.mean(values)), float(np.median(values))
        ax.axvline(mean, color="black", linestyle="--", linewidth=1)
        ax.set_title(
            f"{name}: mean {mean:.2f}, median {median:.2f} ({values.size:,} values)",
            loc="left",
            fontsize=10,
        )
        ax.set_ylabel("share (%)")
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xlabel("gate value (dashed line: mean)")
    axes[-1].set_xlim(bins[0], bins[-1])
    figure.suptitle(title)
    return figure


def confusion_grid(
    matrices: Mapping[str, tuple[ArrayLike, Sequence[str]]], columns: int = 3
) -> Figure:
    """Several models' confusion matrices side by side, small, on one shared colour scale
    (row shares), so that a comparison reads at a glance rather than page after page."""
    if not matrices:
        raise ValueError("no confusion matrices given")
    columns = min(columns, len(matrices))
    rows = -(-len(matrices) // columns)
    k = max(len(labels) for _, labels in matrices.values())
    side = max(2.8, 0.75 * k + 1.6)
    figure = Figure(figsize=(side * columns, side * rows + 0.4), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    font = 9 if k <= 4 else 7 if k <= 8 else 5
    for ax, (title, (confusion, labels)) in zip(axes, matrices.items(), strict=False):
        counts = np.asarray(confusion, dtype=np.int64)
        totals = counts.sum(axis=1, keepdims=True)
        shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
        image = ax.imshow(shares * 100, cmap="Blues", vmin=0, vmax=100)
        for i in range(len(labels)):
            for j in range(len(labels)):
                colour = "white" if shares[i, j] > 0.55 else "black"
                ax.text(
                    j,
                    i,
                    str(counts[i, j]),
                    ha="center",
                    va="center",
                    color=colour,
                    fontsize=font,
                    fontweight="bold" if i == j else "normal",
                )
        accuracy = np.trace(counts) / counts.sum() if counts.sum() else float("nan")
        ax.set_title(f"{title}\naccuracy {accuracy:.3f}", fontsize=9)
        ax.set_xticks(range(len(labels)), labels=list(labels), fontsize=font, rotation=30)
        ax.set_yticks(range(len(labels)), labels=list(labels), fontsize=font)
    for ax in axes[len(matrices) :]:
        ax.set_visible(False)
    figure.colorbar(image, ax=axes.tolist(), fraction=0.02, label="share of the true class (%)")
    figure.supxlabel("predicted", fontsize=9)
    figure.supylabel("true", fontsize=9)
    return figure
