"""Reader for plain tables (CSV, TSV, JSON lines, Parquet) with a column mapping.

Tables are read in chunks (pandas ``chunksize``, pyarrow record batches), so a table larger
than memory streams like the other sources. Text columns are joined into the post's text;
image cells are URLs, absolute paths, or paths relative to the table's folder.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from sentimodal.config import Config
from sentimodal.errors import RecordError, UserInputError
from sentimodal.files import check_regular
from sentimodal.sources.record import LABEL_ALIASES, Post, Record, Reject
from sentimodal.sources.source import Source, SourceReader

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
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError):
            return None  # read_table says what is wrong with it
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
            post_id = str(row_number)
            try:
                if isinstance(row, _BadRow):
                    raise RecordError(row.reason)
                if id_column:
                    post_id = cell_text(row.get(id_column)).strip()
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
    """A table cell as text; missing values (None, NaN) are empty. Bytes must be UTF-8; lists,
    structs and other containers are not text (their Python repr would pass for it)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise RecordError("a binary cell that is not UTF-8 text") from None
    if isinstance(value, dict | list | tuple | set):
        raise RecordError(f"a {type(value).__name__} cell where text was expected")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # ids in JSON lines come back as 12.0 when a column has nulls
    return str(value)


class _BadRow(dict):
    """A row that could not be read (ragged CSV row, JSON line that is not an object): it
    becomes a reject, never a shifted or half-filled post."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


def _chunks(path: Path, columns: list[str], chunk_size: int) -> Iterator[list[dict[str, Any]]]:
    """The wanted columns, a chunk of rows at a time, after checking they exist."""
    fmt = table_format(path)
    try:
        check_regular(path, error=UserInputError)
        if fmt == "parquet":
            yield from _parquet_chunks(path, columns, chunk_size)
        elif fmt == "jsonl":
            yield from _jsonl_chunks(path, columns, chunk_size)
        else:
            yield from _csv_chunks(path, "\t" if fmt == "tsv" else ",", columns, chunk_size)
    except UnicodeDecodeError as exc:
        raise UserInputError(
            f"table {path} is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    except (ValueError, OSError, csv.Error, pa.ArrowException) as exc:
        message = " ".join(str(exc).split())
        raise UserInputError(f"cannot read table {path}: {message}") from None


def _parquet_chunks(
    path: Path, columns: list[str], chunk_size: int
) -> Iterator[list[dict[str, Any]]]:
    parquet = pq.ParquetFile(path)
    _check_columns(path, columns, parquet.schema_arrow.names)
    for batch in parquet.iter_batches(batch_size=chunk_size, columns=columns):
        yield batch.to_pylist()


def _csv_chunks(
    path: Path, sep: str, columns: list[str], chunk_size: int
) -> Iterator[list[dict[str, Any]]]:
    """CSV/TSV rows as strings; a row with more or fewer fields than the header is a bad row."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=sep)
        header = next(reader, None)
        if header is None:
            raise UserInputError(f"table {path} is empty (no header row)")
        _check_columns(path, columns, header)
        positions = [header.index(c) for c in columns]
        rows: list[dict[str, Any]] = []
        for fields in reader:
            if not fields:
                continue  # a blank line
            if len(fields) != len(header):
                rows.append(
                    _BadRow(f"ragged row: {len(fields)} fields, the header has {len(header)}")
                )
            else:
                rows.append({c: fields[i] for c, i in zip(columns, positions, strict=True)})
            if len(rows) >= chunk_size:
                yield rows
                rows = []
        if rows:
            yield rows


def _jsonl_chunks(
    path: Path, columns: list[str], chunk_size: int
) -> Iterator[list[dict[str, Any]]]:
    """JSON lines, one object each; other lines (arrays, numbers, broken JSON) are bad rows.
    A mapped column must be a key of at least one object of the first chunk."""
    seen: set[str] = set()
    checked = False
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8-sig") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                rows.append(_BadRow("malformed JSON line"))
            else:
                if isinstance(value, dict):
                    seen.update(map(str, value))
                    rows.append({c: value.get(c) for c in columns})
                else:
                    rows.append(_BadRow(f"JSON line is a {type(value).__name__}, not an object"))
            if len(rows) >= chunk_size:
                if not checked:
                    _check_columns(path, columns, sorted(seen))
                    checked = True
                yield rows
                rows = []
    if not checked:
        _check_columns(path, columns, sorted(seen))
    if rows:
        yield rows


def _check_columns(path: Path, wanted: list[str], present: list[str]) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        raise UserInputError(
            f"column {missing[0]!r} not in {path} (columns: {', '.join(map(str, present))})"
        )


class TableOptions(Config):
    """``prepare``'s column mapping of a table."""

    text_columns: list[str] = Field(default_factory=list)
    image_column: str | None = None
    label_column: str | None = None
    id_column: str | None = None
    #: probability columns, one per label (named by the column): label = argmax, and the
    #: distribution is kept as the soft label
    label_distribution_columns: list[str] = Field(default_factory=list)


def _open(options: TableOptions, path: Path) -> SourceReader:
    records = read_table(
        path,
        text_columns=options.text_columns,
        image_column=options.image_column,
        label_column=options.label_column,
        id_column=options.id_column,
        distribution_columns=options.label_distribution_columns,
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
    refused_elsewhere=tuple(TableOptions.model_fields),
    check=_check,
)
