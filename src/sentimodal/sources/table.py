"""Reader for plain tables (CSV, TSV, JSON lines, Parquet) with a column mapping.

Tables are read in chunks by the one table reader (:mod:`sentimodal.sources.table_rows`,
which ``predict --input`` uses too), so a table larger than memory streams like the other
sources. Text columns are joined into the post's text; image cells are URLs, absolute paths,
or paths relative to the table's folder.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from sentimodal.config import Config
from sentimodal.errors import RecordError, UserInputError
from sentimodal.sources.record import LABEL_ALIASES, Post, Record, Reject
from sentimodal.sources.source import Source, SourceReader
from sentimodal.sources.table_rows import (
    TableLimits,
    cell_text,
    column_text,
    count_rows,
    read_rows,
    table_format,
)

__all__ = ["cell_text", "count_rows", "read_table", "table_format", "TableOptions"]

DEFAULT_CHUNK_SIZE = 10_000


def read_table(
    path: str | Path,
    *,
    text_columns: Sequence[str] = (),
    image_column: str | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    distribution_columns: Sequence[str] = (),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    limits: TableLimits | None = None,
) -> Iterator[Record]:
    """Stream one post per row.

    A row the table reader could not read is a reject. Either text or image may be absent
    (not mapped, or an empty cell), not both. A label is the cell's value (see
    :func:`label_text`): any label set the table holds. Without an id column the id is the
    1-based row number.

    ``distribution_columns`` name probability columns, one per label (the column's name is
    the label): the post keeps the normalised distribution in ``meta["label_distribution"]``
    and its label is the argmax, a tie going to the column named first.
    """
    path = Path(os.path.abspath(path))  # locations in rejects name absolute files
    if not path.is_file():
        raise UserInputError(f"table not found: {path}")
    if not text_columns and image_column is None:
        raise UserInputError("a table needs at least one --text-column or an --image-column")
    if label_column and distribution_columns:
        raise UserInputError(
            "give a label column or label distribution columns, not both "
            "(the hard label is the distribution's argmax)"
        )
    mapped = [*text_columns, image_column, label_column, id_column, *distribution_columns]
    wanted = list(dict.fromkeys(c for c in mapped if c is not None))
    base_dir = path.parent
    for _, rows in read_rows(path, wanted, required=wanted, chunk_size=chunk_size, limits=limits):
        for table_row in rows:
            location = f"{path} row {table_row.number}"
            post_id = str(table_row.number)
            row = table_row.cells
            try:
                if table_row.error is not None:
                    raise RecordError(table_row.error)
                if id_column:
                    post_id = column_text(row, id_column).strip()
                post = _post_from_row(
                    row, post_id, location, base_dir, text_columns, image_column, label_column
                )
                if distribution_columns:
                    distribution = label_distribution(row, distribution_columns)
                    post.meta["label_distribution"] = distribution
                    post.label = max(distribution, key=distribution.__getitem__)
                yield post
            except RecordError as exc:
                yield Reject(id=post_id, location=location, reason=str(exc))


def _post_from_row(
    row: dict[str, Any],
    post_id: str,
    location: str,
    base_dir: Path,
    text_columns: Sequence[str],
    image_column: str | None,
    label_column: str | None,
) -> Post:
    # cells that are not text refuse the row first, as predict --input refuses it
    text = join_text_cells(column_text(row, c) for c in text_columns)
    image = (
        resolve_image_reference(column_text(row, image_column), base_dir) if image_column else None
    )
    if not post_id:
        raise RecordError("empty id")
    if not text and image is None:
        raise RecordError("no text and no image")
    label = None
    if label_column:
        label = label_text(column_text(row, label_column))
        if not label:
            raise RecordError(f"empty label: column {label_column!r}")
    return Post(id=post_id, text=text, image=image, label=label, location=location)


def label_distribution(row: dict[str, Any], columns: Sequence[str]) -> dict[str, float]:
    """The row's probability cells (non-negative numbers, not all zero) normalised to sum 1,
    keyed by column name in the order the columns were named (so ``max`` breaks ties by it)."""
    values = {}
    for column in columns:
        cell = column_text(row, column).strip()
        try:
            value = float(cell)
        except ValueError:
            raise RecordError(
                f"label distribution: column {column!r} is not a number: {cell!r}"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise RecordError(f"label distribution: column {column!r} is {cell!r}, not >= 0")
        values[column] = value
    total = sum(values.values())
    if total <= 0:
        raise RecordError("label distribution: every probability is 0")
    return {column: value / total for column, value in values.items()}


def label_text(value: Any) -> str:
    """A label cell as its label: any text (spaces inside kept, collapsed), integers as
    integers (1 and 1.0 -> "1"), and the spellings of the three sentiment words (pos, NEG,
    Neutral...) as those words. Missing cells (None, NaN) are ""."""
    if isinstance(value, bool):
        return str(value).lower()
    text = " ".join(cell_text(value).split())
    return LABEL_ALIASES.get(text.lower(), text)


def join_text_cells(values: Iterable[Any]) -> str:
    """Several text cells as one text, one line each, empty cells skipped."""
    return "\n".join(t for t in (cell_text(v).strip() for v in values) if t)


def resolve_image_reference(value: Any, base_dir: Path) -> str | None:
    """An image cell -> a URL as is, or an absolute path (relative ones against ``base_dir``)."""
    cell = cell_text(value).strip()
    if not cell:
        return None
    if cell.lower().startswith(("http://", "https://")):
        return cell
    return os.path.abspath(base_dir / os.path.expanduser(cell))


class TableOptions(Config):
    """``prepare``'s column mapping of a table."""

    text_columns: list[str] = Field(default_factory=list)
    image_column: str | None = None
    label_column: str | None = None
    id_column: str | None = None
    #: probability columns, one per label (named by the column): label = argmax, and the
    #: distribution is kept as the soft label
    label_distribution_columns: list[str] = Field(default_factory=list)
    #: bounds on one row (bytes, JSON depth): a row over them is a reject
    table_limits: TableLimits = Field(default_factory=TableLimits)


def _open(options: TableOptions, path: Path) -> SourceReader:
    records = read_table(
        path,
        text_columns=options.text_columns,
        image_column=options.image_column,
        label_column=options.label_column,
        id_column=options.id_column,
        distribution_columns=options.label_distribution_columns,
        limits=options.table_limits,
    )
    return SourceReader(records, count_rows(path), f"{__name__}.read_table")


def _check(options: TableOptions, labels: str) -> None:
    if labels == "source" and not options.label_column and not options.label_distribution_columns:
        raise UserInputError(
            "source labels from a table need a label column (or use labels 'vader')"
        )
    if options.label_distribution_columns and options.label_column:
        raise UserInputError(
            "give a label column or label distribution columns, not both "
            "(the hard label is the distribution's argmax)"
        )
    if not options.text_columns and not options.image_column:
        raise UserInputError("a table needs at least one text column or an image column")


SOURCE = Source(
    name="table",
    options=TableOptions,
    open=_open,
    input="the table file (CSV, TSV, JSON lines or Parquet)",
    default_labels="source",
    refused_elsewhere=tuple(f for f in TableOptions.model_fields if f != "table_limits"),
    check=_check,
)
