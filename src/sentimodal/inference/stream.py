"""Predict a table of posts of any size: read in chunks, write as it goes, resume after a stop.

Memory stays flat in the number of rows: the input is read ``chunk_rows`` at a time by the
table reader ``prepare table`` uses (:mod:`sentimodal.sources.table_rows`, so both decide the
same about every row, and each row is capped in bytes), each chunk runs through
:class:`~sentimodal.inference.posts.PostBatchWork` on an engine (DataLoader workers, or Ray),
and its predictions are appended to the output before the next chunk is read.

Resuming: after each chunk the output is flushed to disk and a small progress file beside it
(``OUT.progress.json``) records how many rows, errors and output bytes (JSONL) or part files
(Parquet) are committed. A rerun with the same output and input truncates whatever a killed
run wrote past the last commit, skips the committed rows and goes on, so every input row ends
up exactly once, in input order. Parquet is written as committed part files in ``OUT.parts/``
and merged into ``OUT`` (row group by row group) at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sentimodal.errors import RecordError, UserInputError
from sentimodal.features.engine import Engine, LocalEngine
from sentimodal.files import read_tagged_json, remove_staging, write_atomic, write_json_atomic
from sentimodal.inference.explanations import ExplainSettings, explain_predictions
from sentimodal.inference.posts import PostBatchWork, Prediction, post_rows
from sentimodal.progress import progress_bar
from sentimodal.sources.table_rows import TableLimits, TableRow, column_text, read_rows

PROGRESS_FORMAT = "sentimodal-predict-progress"
PROGRESS_VERSION = 1
INPUT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")


@dataclass
class StreamSummary:
    """What a streaming run did: rows in the output now, of them with errors, and how many
    were already there from an earlier, interrupted run."""

    output: Path
    rows: int
    errors: int
    resumed: int
    seconds: float
    already_complete: bool = False


@dataclass
class Columns:
    """Which input columns hold the post's text, image (path or URL) and id."""

    text: str = "text"
    image: str = "image"
    id: str = "id"


def read_chunks(
    path: Path, columns: Columns, chunk_rows: int, limits: TableLimits | None = None
) -> Iterator[list[dict[str, Any]]]:
    """The table's records ``chunk_rows`` at a time, renamed to ``id``/``text``/``image``,
    read by the one table reader ``prepare`` uses; relative image paths are taken from the
    table's folder. A row that reader refuses, or a cell that is not text (an object, a list,
    a lone surrogate), keeps its place with the reason in :data:`REJECT`."""
    if not path.is_file():
        raise UserInputError(f"input file not found: {path}")
    if path.suffix.lower() not in INPUT_SUFFIXES:
        raise UserInputError(f"{path}: use one of {', '.join(INPUT_SUFFIXES)}")
    fields = {"id": columns.id, "text": columns.text, "image": columns.image}
    # a column named on purpose must exist: a typo would silently read nothing
    named = [c for f, c in fields.items() if c != f]
    checked = False
    for present, rows in read_rows(
        path, list(fields.values()), required=named, chunk_size=chunk_rows, limits=limits
    ):
        if not checked:
            if columns.text not in present and columns.image not in present:
                raise UserInputError(
                    f"{path}: neither a text column {columns.text!r} nor an image column "
                    f"{columns.image!r}"
                )
            checked = True
        yield [_record(row, fields, path.parent) for row in rows]


def _record(row: TableRow, fields: dict[str, str], base: Path) -> dict[str, Any]:
    if row.error is not None:
        return {REJECT: row.error}
    record: dict[str, Any] = {}
    try:
        for field, column in fields.items():
            if column in row.cells:
                record[field] = column_text(row.cells, column).strip()
    except RecordError as exc:
        return {"id": record.get("id"), REJECT: str(exc)}
    if "image" in record:
        record["image"] = _resolve(record["image"], base)
    return record


#: a record that cannot be a post says why in this column; it becomes that row's error
REJECT = "reject"


def _resolve(text: str, base: Path) -> str:
    if not text or "://" in text or Path(text).is_absolute():
        return text
    return str(base / text)


def count_rows(path: Path) -> int | None:
    """Rows of a Parquet table from its footer (other formats: unknown without reading)."""
    if path.suffix.lower() == ".parquet":
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (OSError, pa.ArrowException):
            return None
    return None


class JsonlSink:
    """One JSON object per line, appended; a commit flushes and fsyncs and returns the size."""

    def __init__(self, path: Path, committed: int) -> None:
        self.path = path
        mode = "r+b" if committed and path.exists() else "wb"
        self.handle = path.open(mode)
        self.handle.truncate(committed)
        self.handle.seek(committed)

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.handle.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))

    def commit(self) -> dict[str, Any]:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        return {"bytes": self.handle.tell()}

    def finish(self) -> None:
        self.handle.close()

    def close(self) -> None:
        self.handle.close()


class ParquetSink:
    """Committed chunks as part files in ``OUT.parts/``, merged into ``OUT`` at the end."""

    def __init__(
        self, path: Path, committed: int, classes: list[str], explained: bool = False
    ) -> None:
        self.path = path
        self.parts = path.with_name(path.name + ".parts")
        self.parts.mkdir(parents=True, exist_ok=True)
        remove_staging(self.parts)
        for part in self.parts.glob("part-*.parquet"):
            if int(part.stem.split("-")[1]) >= committed:
                part.unlink()  # written after the last commit
        self.n_parts = committed
        self.schema = pa.schema(
            [
                ("id", pa.string()),
                ("label", pa.string()),
                ("scores", pa.struct([(c, pa.float32()) for c in classes])),
                ("modalities", pa.string()),
                ("error", pa.string()),
                ("warning", pa.string()),
                # an explanation's nested lists vary per post: kept as its JSON text
                *([("explanation", pa.string())] if explained else []),
            ]
        )
        self.explained = explained
        self.pending: list[dict[str, Any]] = []

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self.explained:
            rows = [
                {**row, "explanation": json.dumps(row["explanation"], ensure_ascii=False)}
                if row.get("explanation") is not None
                else row
                for row in rows
            ]
        self.pending += rows

    def commit(self) -> dict[str, Any]:
        if self.pending:
            table = pa.Table.from_pylist(self.pending, schema=self.schema)
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            part = self.parts / f"part-{self.n_parts:06d}.parquet"
            write_atomic(part, sink.getvalue().to_pybytes())
            self.n_parts += 1
            self.pending = []
        return {"parts": self.n_parts}

    def finish(self) -> None:
        """Merge the parts into the output, one part in memory at a time."""
        staged = self.path.with_name(f".staging-{self.path.name}.{os.getpid()}")
        with pq.ParquetWriter(staged, self.schema) as writer:
            for i in range(self.n_parts):
                writer.write_table(pq.read_table(self.parts / f"part-{i:06d}.parquet"))
        os.replace(staged, self.path)
        shutil.rmtree(self.parts)

    def close(self) -> None:
        self.pending = []


def progress_path(output: Path) -> Path:
    return output.with_name(output.name + ".progress.json")


def _fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _start_state(output: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The committed state of an earlier run on the same output, or None for a fresh start.

    Refuses an output that belongs to something else: a different input or model, or a file
    no predict run is resuming (it would be silently overwritten otherwise).
    """
    state_file = progress_path(output)
    if not state_file.is_file():
        if output.exists():
            raise UserInputError(
                f"{output} already exists and no unfinished prediction is writing it: "
                f"remove it or choose another --output"
            )
        return None
    state = read_tagged_json(state_file, PROGRESS_FORMAT, "prediction progress file")
    if state.get("identity") != identity:
        raise UserInputError(
            f"{output} was started for another input, model or settings; remove it and "
            f"{state_file.name} to start again, or choose another --output"
        )
    return state


def predict_table(
    work: PostBatchWork,
    input_path: Path,
    output: Path,
    *,
    model_name: str,
    columns: Columns | None = None,
    batch_size: int = 32,
    chunk_rows: int = 2048,
    engine: Engine | None = None,
    progress: bool = True,
    limits: TableLimits | None = None,
    explain: ExplainSettings | None = None,
) -> StreamSummary:
    """Predict every row of ``input_path`` into ``output`` (``.parquet``: Parquet, anything
    else: JSONL), resuming an interrupted run on the same output (see the module docstring).

    Rows keep the same keys whatever happened: ``id``, ``label``, ``scores`` (label ->
    score) and ``error`` (null, or why the post could not be predicted); with ``explain``,
    ``explanation`` too (in Parquet as its JSON text).
    """
    if batch_size < 1 or chunk_rows < 1:
        raise UserInputError("batch size and chunk rows must be >= 1")
    columns = columns or Columns()
    started = time.perf_counter()
    if not input_path.is_file():
        raise UserInputError(f"input file not found: {input_path}")
    parquet = output.suffix.lower() == ".parquet"
    identity = {
        "input": _fingerprint(input_path),
        "model": model_name,
        "classes": list(work.classes),
        "columns": vars(columns),
        "output_format": "parquet" if parquet else "jsonl",
        "limits": (limits or TableLimits()).model_dump(),
    }
    if explain is not None:  # a table explained differs from one predicted
        identity["explain"] = vars(explain)
    state = _start_state(output, identity)
    if state is not None and state.get("complete"):
        return StreamSummary(output, state["rows"], state["errors"], state["rows"], 0.0, True)
    output.parent.mkdir(parents=True, exist_ok=True)
    done = int(state["rows"]) if state else 0
    errors = int(state["errors"]) if state else 0
    committed = state.get("commit", {}) if state else {}
    sink: JsonlSink | ParquetSink = (
        ParquetSink(output, int(committed.get("parts", 0)), list(work.classes), explain is not None)
        if parquet
        else JsonlSink(output, int(committed.get("bytes", 0)))
    )

    def save_state(complete: bool, commit: dict[str, Any]) -> None:
        write_json_atomic(
            progress_path(output),
            {
                "format": PROGRESS_FORMAT,
                "version": PROGRESS_VERSION,
                "identity": identity,
                "rows": done,
                "errors": errors,
                "commit": commit,
                "complete": complete,
            },
        )

    if state is None:
        save_state(False, sink.commit())
    engine = engine or LocalEngine()
    resumed = done
    seen = 0
    try:
        with progress_bar(progress, unit="posts") as bar:
            task = bar.add_task("predicting", total=count_rows(input_path), completed=done)
            for records in read_chunks(input_path, columns, chunk_rows, limits):
                start = seen
                seen += len(records)
                if seen <= done:
                    continue  # committed by an earlier run
                records = records[max(0, done - start) :]
                rows = post_rows(records, start=max(start, done))
                batches = work.batches(rows, batch_size)
                predictions: list[Prediction] = work.predictions(rows, engine.run(work, batches))
                if explain is not None:
                    predictions = explain_predictions(
                        work, rows, predictions, settings=explain, engine=engine
                    )
                sink.write([p.to_row() for p in predictions])
                errors += sum(p.error is not None for p in predictions)
                done += len(rows)
                save_state(False, sink.commit())
                bar.update(task, completed=done)
        sink.finish()
    except BaseException:
        sink.close()
        raise
    save_state(True, {})
    return StreamSummary(output, done, errors, resumed, time.perf_counter() - started)
