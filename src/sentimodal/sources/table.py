"""Reader for plain tables (CSV, TSV, JSON lines, Parquet) with a column mapping.

Tables are read in chunks (pandas ``chunksize``, pyarrow record batches), so a table larger
than memory streams like the other sources. Text columns are joined into the post's text;
image cells are URLs, absolute paths, or paths relative to the table's folder.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from sentimodal.errors import RecordError, UserInputError
from sentimodal.sources.record import LABEL_ALIASES, Post, Record, Reject

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
DEFAULT_CHUNK_SIZE = 10_000


def table_format(path: str | Path) -> str:
    """The table's format, from its suffix."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserInputError(
            f"unknown table format {Path(path).suffix!r} for {path} "
            f"(use one of {', '.join(sorted(FORMATS))})"
        )
    return fmt


def count_rows(path: str | Path) -> int | None:
    """Row count when the format stores it (Parquet), for a progress bar's total."""
    if table_format(path) == "parquet" and Path(path).is_file():
        return pq.ParquetFile(path).metadata.num_rows
    return None


def read_table(
    path: str | Path,
    *,
    text_columns: Sequence[str] = (),
    image_column: str | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    distribution_columns: Sequence[str] = (),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[Record]:
    """Stream one post per row.

    Either text or image may be absent (not mapped, or an empty cell), not both. A label is the
    cell's value (see :func:`label_text`): any label set the table holds. Without an id column
    the id is the 1-based row number.

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
    row_number = 0
    for rows in _chunks(path, wanted, chunk_size):
        for row in rows:
            row_number += 1
            location = f"{path} row {row_number}"
            post_id = cell_text(row.get(id_column)).strip() if id_column else str(row_number)
            try:
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
    if not post_id:
        raise RecordError("empty id")
    text = join_text_cells(row.get(c) for c in text_columns)
    image = resolve_image_reference(row.get(image_column), base_dir) if image_column else None
    if not text and image is None:
        raise RecordError("no text and no image")
    label = None
    if label_column:
        label = label_text(row.get(label_column))
        if not label:
            raise RecordError(f"empty label: column {label_column!r}")
    return Post(id=post_id, text=text, image=image, label=label, location=location)


def label_distribution(row: dict[str, Any], columns: Sequence[str]) -> dict[str, float]:
    """The row's probability cells (non-negative numbers, not all zero) normalised to sum 1,
    keyed by column name in the order the columns were named (so ``max`` breaks ties by it)."""
    values = {}
    for column in columns:
        cell = cell_text(row.get(column)).strip()
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


def cell_text(value: Any) -> str:
    """A table cell as text; missing values (None, NaN) are empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # ids in JSON lines come back as 12.0 when a column has nulls
    return str(value)


def _chunks(path: Path, columns: list[str], chunk_size: int) -> Iterator[list[dict[str, Any]]]:
    """The wanted columns, a chunk of rows at a time, after checking they exist."""
    fmt = table_format(path)
    if fmt == "parquet":
        parquet = pq.ParquetFile(path)
        _check_columns(path, columns, parquet.schema_arrow.names)
        for batch in parquet.iter_batches(batch_size=chunk_size, columns=columns):
            yield batch.to_pylist()
        return
    try:
        if fmt == "jsonl":
            frames = pd.read_json(path, lines=True, chunksize=chunk_size, dtype=False)
        else:
            sep = "\t" if fmt == "tsv" else ","
            header = pd.read_csv(path, sep=sep, nrows=0, encoding="utf-8")
            _check_columns(path, columns, list(header.columns))
            frames = pd.read_csv(
                path,
                sep=sep,
                dtype=str,
                keep_default_na=False,
                chunksize=chunk_size,
                encoding="utf-8",
            )
        with frames:
            for number, frame in enumerate(frames):
                if fmt == "jsonl" and number == 0:
                    # JSON lines have no header: check against the keys of the first chunk.
                    _check_columns(path, columns, list(frame.columns))
                yield frame.reindex(columns=columns).to_dict("records")
    except UnicodeDecodeError as exc:
        raise UserInputError(
            f"table {path} is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    except (ValueError, pd.errors.ParserError) as exc:
        message = " ".join(str(exc).split())
        raise UserInputError(f"cannot read table {path}: {message}") from None


def _check_columns(path: Path, wanted: list[str], present: list[str]) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        raise UserInputError(
            f"column {missing[0]!r} not in {path} (columns: {', '.join(map(str, present))})"
        )
