"""Rich tables the commands share: metrics of one model, and a comparison of several."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rich.table import Table
from rich.text import Text

#: bidirectional embeddings, overrides and isolates: in an id or a label they would reorder
#: the rest of a table's line on the terminal
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def neutral(value: object) -> object:
    """A cell with its bidirectional controls shown as escapes (``\\u202e``), so that it
    cannot reorder what is printed around it; other values are left as they are."""
    if isinstance(value, Text):
        if any(c in BIDI_CONTROLS for c in value.plain):
            return Text(str(neutral(value.plain)), style=value.style)
        return value
    if isinstance(value, str) and any(c in BIDI_CONTROLS for c in value):
        return "".join(f"\\u{ord(c):04x}" if c in BIDI_CONTROLS else c for c in value)
    return value


class SafeTable(Table):
    """The rich table every command prints: titles, headers and cells pass :func:`neutral`."""

    def __init__(self, *headers: object, title: object = None, **kwargs: object) -> None:
        super().__init__(*headers, title=neutral(title), **kwargs)  # type: ignore[arg-type]

    def add_column(self, header: object = "", *args: object, **kwargs: object) -> None:
        super().add_column(neutral(header), *args, **kwargs)  # type: ignore[arg-type]

    def add_row(self, *cells: object, **kwargs: object) -> None:
        super().add_row(*(neutral(c) for c in cells), **kwargs)  # type: ignore[arg-type]


def metrics_table(metrics: Mapping[str, Any], title: str) -> Table:
    """Overall and per-class figures of one evaluation, plus the confusion matrix."""
    labels = list(metrics["labels"])
    table = SafeTable(title=title, title_justify="left")
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
    table = SafeTable(title=title, title_justify="left")
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
