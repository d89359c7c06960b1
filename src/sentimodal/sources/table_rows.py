"""The one reader of table files (CSV, TSV, JSON lines, Parquet), shared by ``prepare table``
and ``predict --input``, so that both make the same decision about every row.

A problem with the whole file (not a table, no header, a named column absent) is a
:class:`~sentimodal.errors.UserInputError`; a problem with one row (too many or too few fields,
broken or too deeply nested JSON, bytes that are not UTF-8, a row over the size cap) makes that
row a :class:`TableRow` with an ``error``, and the rows after it are read as usual. Cells come
through :func:`cell_text`, where objects, lists and text that cannot be written as UTF-8
(lone surrogates) are the row's error too. Memory is bounded by a chunk of rows, each at most
``max_row_bytes``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from sentimodal.config import Config
from sentimodal.errors import RecordError, UserInputError
from sentimodal.files import check_regular

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
#: one row (a CSV record, a JSON line, a Parquet row's cells) may hold this many bytes
DEFAULT_MAX_ROW_BYTES = 1024 * 1024
#: JSON lines name their columns in the keys of the first this many rows
COLUMN_WINDOW = 1000
#: JSON nested deeper than this is a bad row (a post's cells are flat)
DEFAULT_MAX_DEPTH = 32


class TableLimits(Config):
    """Bounds on one row of a table, whatever reads it."""

    max_row_bytes: int = Field(DEFAULT_MAX_ROW_BYTES, ge=64)
    max_depth: int = Field(DEFAULT_MAX_DEPTH, ge=1, le=1000)


@dataclass
class TableRow:
    """One data row: its 1-based number among the rows, the wanted cells it has, and why it
    could not be read (``error``), when it could not."""

    number: int
    cells: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


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
            return None  # read_rows says what is wrong with it
    return None


def read_rows(
    path: Path,
    columns: Sequence[str],
    *,
    required: Sequence[str] = (),
    chunk_size: int = 10_000,
    limits: TableLimits | None = None,
) -> Iterator[tuple[list[str], list[TableRow]]]:
    """``(present, rows)`` a chunk at a time: ``present`` are the wanted ``columns`` the table
    has (every ``required`` one, else a UserInputError), ``rows`` hold those columns' cells."""
    limits = limits or TableLimits()
    fmt = table_format(path)
    wanted = list(dict.fromkeys(columns))
    try:
        check_regular(path, error=UserInputError)
        if fmt == "parquet":
            chunks = _parquet_chunks(path, wanted, chunk_size, limits)
        elif fmt == "jsonl":
            chunks = _jsonl_chunks(path, wanted, chunk_size, limits)
        else:
            chunks = _csv_chunks(path, "\t" if fmt == "tsv" else ",", wanted, chunk_size, limits)
        checked = False
        for available, rows in chunks:
            if not checked:
                missing = [c for c in required if c not in available]
                if missing:
                    raise UserInputError(
                        f"column {missing[0]!r} not in {path} "
                        f"(columns: {', '.join(map(str, available))})"
                    )
                checked = True
            yield [c for c in wanted if c in available], rows
    except (ValueError, OSError, csv.Error, pa.ArrowException) as exc:
        message = " ".join(str(exc).split())
        raise UserInputError(f"cannot read table {path}: {message}") from None


def cell_text(value: Any) -> str:
    """A cell as text; missing values (None, NaN) are empty. Numbers are their canonical
    spelling (12.0 -> "12": JSON ids come back as floats when a column has nulls), booleans
    "true"/"false"; bytes must be UTF-8; objects and lists are not text (their Python repr would
    pass for it), nor are strings that cannot be written as UTF-8 (lone surrogates)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise RecordError("a binary cell that is not UTF-8 text") from None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise RecordError(f"a {type(value).__name__} cell where text was expected")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RecordError(
            f"text that is not valid Unicode ({exc.reason} at character {exc.start})"
        ) from None
    return value


def column_text(cells: dict[str, Any], column: str) -> str:
    """A row's cell as text (see :func:`cell_text`), a refusal naming the column."""
    try:
        return cell_text(cells.get(column))
    except RecordError as exc:
        raise RecordError(f"column {column!r}: {exc}") from None


class _RowTooLarge(Exception):
    """A line read past the row cap (raised out of the line feed, caught per row)."""


class _LineFeed:
    """Lines of a binary file as text, each at most ``limit`` bytes and decoded strictly; a
    bad line raises (the CSV reader passes that up for the row it was reading) and the feed
    goes on at the next line. ``used`` counts the bytes since the caller last reset it."""

    def __init__(self, handle: IO[bytes], limit: int) -> None:
        self.handle = handle
        self.limit = limit
        self.used = 0
        self.first = True

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        data = self.handle.readline(self.limit + 1)
        if not data:
            raise StopIteration
        if self.first:
            data = data.removeprefix(b"\xef\xbb\xbf")
            self.first = False
        self.used += len(data)
        if len(data) > self.limit or self.used > self.limit:
            while data and not data.endswith(b"\n"):
                data = self.handle.readline(self.limit + 1)  # skip the rest of the line
            raise _RowTooLarge(f"a row over {self.limit:,} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnicodeError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _csv_chunks(
    path: Path, sep: str, columns: list[str], chunk_size: int, limits: TableLimits
) -> Iterator[tuple[list[str], list[TableRow]]]:
    """Records as strings; one with more or fewer fields than the header is a bad row."""
    with open(path, "rb") as handle:
        feed = _LineFeed(handle, limits.max_row_bytes)
        reader = csv.reader(feed, delimiter=sep)
        try:
            header = next(reader, None)
        except (_RowTooLarge, UnicodeError, csv.Error) as exc:
            raise UserInputError(f"table {path}: bad header row: {exc}") from None
        if header is None:
            raise UserInputError(f"table {path} is empty (no header row)")
        positions = {c: header.index(c) for c in columns if c in header}
        rows: list[TableRow] = []
        number = 0
        while True:
            feed.used = 0
            try:
                fields = next(reader)
            except StopIteration:
                break
            except (_RowTooLarge, UnicodeError, csv.Error) as exc:
                fields, error = None, str(exc)
            if fields == []:
                continue  # a blank line
            number += 1
            if fields is None:
                rows.append(TableRow(number, error=error))
            elif len(fields) != len(header):
                reason = f"ragged row: {len(fields)} fields, the header has {len(header)}"
                rows.append(TableRow(number, error=reason))
            else:
                rows.append(TableRow(number, {c: fields[i] for c, i in positions.items()}))
            if len(rows) >= chunk_size:
                yield header, rows
                rows = []
        yield header, rows


def json_depth(value: Any) -> int:
    """How deeply a parsed JSON value nests (a scalar is 0), walked without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend(
                (child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def _jsonl_chunks(
    path: Path, columns: list[str], chunk_size: int, limits: TableLimits
) -> Iterator[tuple[list[str], list[TableRow]]]:
    """One JSON object a line; other lines (arrays, numbers, broken JSON) are bad rows. A
    column is present when a key of at least one object of the first
    :data:`COLUMN_WINDOW` rows, whatever the chunk size (so every reader agrees)."""
    seen: set[str] = set()
    available: list[str] | None = None
    rows: list[TableRow] = []
    number = 0
    with open(path, "rb") as handle:
        feed = _LineFeed(handle, limits.max_row_bytes)
        while True:
            feed.used = 0
            error = None
            try:
                line = next(feed)
            except StopIteration:
                break
            except (_RowTooLarge, UnicodeError) as exc:
                line, error = "", str(exc)
            if error is None and not line.strip():
                continue
            number += 1
            row = TableRow(number, error=error)
            if error is None:
                row.error, value = _json_line(line, limits.max_depth)
                if isinstance(value, dict):
                    if available is None:
                        seen.update(map(str, value))
                    row.cells = {c: value[c] for c in columns if c in value}
            rows.append(row)
            if available is None and number >= COLUMN_WINDOW:
                available = sorted(seen)
            while available is not None and len(rows) >= chunk_size:
                yield available, rows[:chunk_size]
                rows = rows[chunk_size:]
    available = sorted(seen) if available is None else available
    while len(rows) > chunk_size:
        yield available, rows[:chunk_size]
        rows = rows[chunk_size:]
    yield available, rows


def _json_line(line: str, max_depth: int) -> tuple[str | None, Any]:
    """(error, value) of one JSON line: the value when it is an object, else why not."""
    too_deep = f"JSON nested deeper than {max_depth} levels"
    try:
        value = json.loads(line)
    except RecursionError:
        return too_deep, None
    except ValueError as exc:
        return f"malformed JSON line ({getattr(exc, 'msg', exc)})", None
    if line.count("[") + line.count("{") > max_depth and json_depth(value) > max_depth:
        return too_deep, None
    if not isinstance(value, dict):
        return f"JSON line is a {type(value).__name__}, not an object", None
    return None, value


def _parquet_chunks(
    path: Path, columns: list[str], chunk_size: int, limits: TableLimits
) -> Iterator[tuple[list[str], list[TableRow]]]:
    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    present = [c for c in columns if c in names]
    number = 0
    for batch in parquet.iter_batches(batch_size=chunk_size, columns=present or names[:1]):
        rows = []
        for cells in batch.select(present).to_pylist():
            number += 1
            size = sum(len(c) for c in cells.values() if isinstance(c, str | bytes))
            if size > limits.max_row_bytes:
                rows.append(TableRow(number, error=f"a row over {limits.max_row_bytes:,} bytes"))
            else:
                rows.append(TableRow(number, cells))
        yield names, rows
    if number == 0:
        yield names, []
