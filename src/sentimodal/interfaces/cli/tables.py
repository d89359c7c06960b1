"""Rich tables the commands share: metrics of one model, and a comparison of several."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rich.table import Table


def metrics_table(metrics: Mapping[str, Any], title: str) -> Table:
    """Overall and per-class figures of one evaluation, plus the confusion matrix."""
    labels = list(metrics["labels"])
    table = Table(title=title, title_justify="left")
    table.add_column("label")
    table.add_column("support", justify="right")
    table.add_column("accuracy (recall)", justify="right")
    table.add_column("F1", justify="right")
    for label in labels:
        table.add_column(f"-> {label}", justify="right", style="dim")
    for row, label in enumerate(labels):
        table.add_row(
            label,
            str(metrics["support"].get(label, 0)),
            number(metrics["per_class"].get(label)),
            number(metrics["per_class_f1"].get(label)),
            *[str(n) for n in metrics["confusion"][row]],
        )
    table.add_section()
    table.add_row(
        "all",
        str(metrics["n"]),
        f"acc {number(metrics['accuracy'])}",
        f"macro {number(metrics['macro_f1'])}",
        f"weighted F1 {number(metrics['weighted_f1'])}",
    )
    return table


def comparison_table(rows: list[Mapping[str, Any]], title: str) -> Table:
    """One row per model: accuracy, macro-F1, weighted-F1 (and std when given)."""
    table = Table(title=title, title_justify="left")
    for column in ("model", "accuracy", "macro-F1", "weighted-F1"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        table.add_row(
            str(row["model"]),
            *[_cell(row, key) for key in ("accuracy", "macro_f1", "weighted_f1")],
        )
    return table


#: how an undefined figure (a class absent from the split, a std of one run) is shown
UNDEFINED = "–"


def number(value: Any, digits: int = 3) -> str:
    """A figure to ``digits`` decimals, or "–" when it is undefined (None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNDEFINED
    return f"{value:.{digits}f}"


def _cell(row: Mapping[str, Any], key: str) -> str:
    std = row.get(f"{key}_std")
    value = number(row.get(key))
    undefined = std is None or (isinstance(std, float) and math.isnan(std))
    return value if undefined or value == UNDEFINED else f"{value} ± {number(std)}"
