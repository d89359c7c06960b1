"""Result pictures: the numbers written on them are the right ones."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from sentimodal.analysis.plots import (
    SENTIMENT_COLOURS,
    category_colours,
    confusion_heatmap,
    figure_to_data_uri,
    figure_to_png,
    gate_distributions,
    model_comparison,
    training_curves,
)

LABELS = ["negative", "neutral", "positive"]


def texts_of(figure) -> list[str]:
    return [t.get_text() for ax in figure.axes for t in ax.texts]


def test_confusion_heatmap_writes_counts_and_row_percentages() -> None:
    confusion = np.array([[120, 30, 12], [20, 25, 15], [18, 22, 400]])
    figure = confusion_heatmap(confusion, LABELS, title="Fused")
    cells = texts_of(figure)
    assert cells[0] == "120\n74.1%"  # 120 / 162
    assert cells[4] == "25\n41.7%"  # 25 / 60
    assert cells[8] == "400\n90.9%"  # 400 / 440
    assert len(cells) == 9
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "negative\n(n=162)",
        "neutral\n(n=60)",
        "positive\n(n=440)",
    ]
    assert ax.get_title() == "Fused\naccuracy 0.823 on 662 posts"  # 545 / 662
    assert ax.get_xlabel() == "predicted label" and ax.get_ylabel() == "true label"


def test_confusion_heatmap_survives_an_empty_class() -> None:
    figure = confusion_heatmap(np.array([[3, 1], [0, 0]]), ["a", "b"])
    assert texts_of(figure)[2:] == ["0\n0.0%", "0\n0.0%"]
    with pytest.raises(ValueError, match="does not match"):
        confusion_heatmap(np.zeros((2, 2)), LABELS)


def test_training_curves_mark_the_best_epoch() -> None:
    history = [
        {"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "val_accuracy": 0.50},
        {"epoch": 2, "train_loss": 0.7, "val_loss": 0.9, "val_accuracy": 0.64},
        {"epoch": 3, "train_loss": 0.5, "val_loss": 1.0, "val_accuracy": 0.61},
    ]
    figure = training_curves(history, title="gated")
    assert figure.get_suptitle() == "gated: best validation accuracy 0.640 at epoch 2"
    loss_ax, score_ax = figure.axes
    assert [line.get_label() for line in loss_ax.get_lines() if line.get_label()[0] != "_"] == [
        "train loss",
        "val loss",
    ]
    val = [line for line in score_ax.get_lines() if line.get_label() == "val accuracy"][0]
    assert list(val.get_ydata()) == [0.50, 0.64, 0.61]
    with pytest.raises(ValueError, match="empty"):
        training_curves([])


def test_model_comparison_uses_means_and_std_over_seeds() -> None:
    results = pd.DataFrame(
        {
            "model": ["text only", "fused"],
            "accuracy_mean": [0.68, 0.73],
            "accuracy_std": [0.01, 0.02],
            "macro_f1_mean": [0.58, 0.63],
            "macro_f1_std": [0.015, 0.005],
        }
    )
    figure = model_comparison(results)
    ax = figure.axes[0]
    widths = sorted(round(p.get_width(), 3) for p in ax.patches)
    assert widths == [0.58, 0.63, 0.68, 0.73]
    assert "0.730 ± 0.020" in texts_of(figure)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["text only", "fused"]
    assert "std over seeds" in ax.get_title()
    with pytest.raises(ValueError, match="macro_f1"):
        model_comparison(results.drop(columns=["macro_f1_mean"]))


def test_gate_distributions_report_mean_per_modality() -> None:
    gates = {"text": np.full((10, 4), 0.75), "image": np.linspace(0, 0.5, 11)}
    figure = gate_distributions(gates)
    titles = [ax.get_title(loc="left") for ax in figure.axes]
    assert titles == [
        "text: mean 0.75, median 0.75 (40 values)",
        "image: mean 0.25, median 0.25 (11 values)",
    ]
    heights = [p.get_height() for p in figure.axes[0].patches]
    assert sum(heights) == pytest.approx(100.0)  # shares in percent


def test_png_helpers_embed_a_readable_heatmap() -> None:
    """The report's inline picture decodes to the PNG, whose cells are shaded by the counts."""
    figure = confusion_heatmap(np.array([[9, 0, 0], [0, 9, 0], [0, 0, 9]]), LABELS)
    uri = figure_to_data_uri(figure)
    assert uri.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as picture:
        pixels = np.asarray(picture.convert("L"))
    assert picture.format == "PNG"
    # full cells are dark, empty ones light, and the text and frame leave plenty of white
    assert pixels.min() < 80 and (pixels > 245).mean() > 0.2
    assert len(figure_to_png(figure)) > 1000


def test_category_colours_are_fixed_for_sentiments_and_distinct() -> None:
    colours = category_colours(["positive", "joy", "negative", "anger", "missing"])
    assert colours["positive"] == SENTIMENT_COLOURS["positive"]
    assert colours["negative"] == SENTIMENT_COLOURS["negative"]
    many = category_colours([f"group {i}" for i in range(25)])
    assert len({to_rgb(c) for c in many.values()}) == 25
