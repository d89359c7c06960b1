"""Rich tables the commands share: metrics of one model, and a comparison of several."""

from __future__ import annotations

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
            str(metrics["support"][label]),
            _number(metrics["per_class"][label]),
            _number(metrics["per_class_f1"][label]),
            *[str(n) for n in metrics["confusion"][row]],
        )
    table.add_section()
    table.add_row(
        "all",
        str(metrics["n"]),
        f"acc {metrics['accuracy']:.3f}",
        f"macro {metrics['macro_f1']:.3f}",
        f"weighted F1 {metrics['weighted_f1']:.3f}",
    )
    return table


def _number(value: float | None) -> str:
    """A per-class figure; None for a class with no example in the data (a 3-class model
    evaluated on a 2-class dataset)."""
    return "-" if value is None else f"{value:.3f}"


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


def _cell(row: Mapping[str, Any], key: str) -> str:
    std = row.get(f"{key}_std")
    return f"{row[key]:.3f}" if std is None else f"{row[key]:.3f} ± {std:.3f}"
