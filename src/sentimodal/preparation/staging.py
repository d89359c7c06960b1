"""Where a prepare run's output goes while it is written, so memory holds little and a
rerun over the same folder never duplicates rows.

Kept rows go to a staging Parquet file, rejects to a staging CSV, and every id read (with a kept
row's label and position) to a staging SQLite table that finds duplicates and lists each
label's rows in id order, so memory holds the current chunk and about 10 bytes per kept row,
not the ids. Balancing and splitting work on those position lists, and the final files replace
the old ones atomically.
"""

from __future__ import annotations

import csv
import os
import sqlite3
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sentimodal.files import open_staging
from sentimodal.preparation.balancing import downsample_groups
from sentimodal.preparation.dataset import (
    EXAMPLE_SCHEMA,
    EXAMPLES_FILE,
    REJECT_COLUMNS,
    REJECTS_FILE,
    post_to_row,
)
from sentimodal.preparation.label_set import sort_labels
from sentimodal.preparation.labelling import DISTRIBUTION_KEY
from sentimodal.preparation.splits import assign_split_codes, split_names
from sentimodal.sources.record import Post

#: kept rows are staged in row groups of this many rows
STAGE_ROWS = 4096
#: staged row groups copied to the final file at a time (each copy one row group there)
COPY_ROW_GROUPS = 4
#: the staging file kept rows stream into before balancing and splitting
ROWS_FILE = f"{EXAMPLES_FILE}.rows"
#: the staging SQLite file of every id read, with each kept row's label code and position
IDS_FILE = f"{EXAMPLES_FILE}.ids"


def printable(value: str, limit: int = 500) -> str:
    """A value from the input as it goes into rejects.csv: control characters (NUL, escape
    sequences) replaced, and at most ``limit`` characters."""
    shown = "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def reason_group(reason: str) -> str:
    """A reject reason without its details (the part before the first colon)."""
    return reason.split(":", 1)[0].strip()


@dataclass
class StagedWriter:
    """One prepare run's output while it is written: the staging files and the running
    counts, used as a context manager (``with writer:``) around reading."""

    out: Path
    #: the label set when it is fixed in advance (None: the labels the kept posts have)
    vocabulary: list[str] | None = None
    label_names: list[str] = field(default_factory=list)
    n_kept: int = 0
    n_rejects: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    #: kept posts per label (unlabelled posts, kept to be predicted, not counted)
    label_sizes: Counter[str] = field(default_factory=Counter)
    #: label -> its code in the ids table
    _label_codes: dict[Any, int] = field(default_factory=dict)
    _ids: sqlite3.Connection | None = None
    _rows: list[dict[str, Any]] = field(default_factory=list)
    _writer: pq.ParquetWriter | None = None
    _rows_file: Any = None
    _rejects_file: Any = None
    _rejects_csv: Any = None
    #: this run's staging files (unique names, created exclusively, no symlink followed)
    _staged: dict[str, Path] = field(default_factory=dict)

    def _stage(self, name: str, mode: str) -> Any:
        path, fd = open_staging(self.out / name)
        self._staged[name] = path
        if "b" in mode:
            return os.fdopen(fd, mode)
        return os.fdopen(fd, mode, encoding="utf-8", newline="")

    def __enter__(self) -> StagedWriter:
        self._rejects_file = self._stage(REJECTS_FILE, "w")
        self._rejects_csv = csv.writer(self._rejects_file)
        self._rejects_csv.writerow(REJECT_COLUMNS)
        self._stage(IDS_FILE, "wb").close()  # created exclusively, then opened by SQLite
        self._ids = sqlite3.connect(self._staged[IDS_FILE], isolation_level=None)
        # Scratch data, deleted after the run: no journal, no fsync, one transaction.
        self._ids.execute("PRAGMA journal_mode = OFF")
        self._ids.execute("PRAGMA synchronous = OFF")
        self._ids.execute(
            "CREATE TABLE ids (id BLOB PRIMARY KEY, label INTEGER, pos INTEGER) WITHOUT ROWID"
        )
        self._ids.execute("BEGIN")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._close_rows()
        self._rejects_file.close()
        if self._ids is not None:
            if self._ids.in_transaction:
                self._ids.execute("COMMIT")  # closing inside a transaction would roll back
            self._ids.close()
            self._ids = None

    def _close_rows(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._rows_file is not None:
            self._rows_file.close()
            self._rows_file = None

    def discard_staging(self) -> None:
        """Remove what a finished or failed run leaves behind; the last good output stays."""
        for path in self._staged.values():
            path.unlink(missing_ok=True)

    def reject(self, post_id: str, location: str, reason: str) -> None:
        """One record left out, with its reason, as a row of rejects.csv."""
        self._rejects_csv.writerow((printable(post_id), printable(location), printable(reason)))
        self.n_rejects += 1
        self.reasons[reason_group(reason)] += 1

    def first_time(self, post_id: str) -> bool:
        """Record ``post_id`` as read; False when it was read before."""
        assert self._ids is not None
        cursor = self._ids.execute("INSERT OR IGNORE INTO ids (id) VALUES (?)", (_key(post_id),))
        return cursor.rowcount == 1

    def keep(self, post: Post) -> None:
        """One post kept: its row staged, its label and position in the ids table."""
        row = post_to_row(post)
        distribution = post.meta.get(DISTRIBUTION_KEY)
        if distribution is not None and self.vocabulary is not None:
            row[DISTRIBUTION_KEY] = [float(distribution.get(x, 0.0)) for x in self.vocabulary]
        self._rows.append(row)
        assert self._ids is not None
        code = self._label_codes.setdefault(post.label, len(self._label_codes))
        if post.label is not None:
            self.label_sizes[post.label] += 1
        self._ids.execute(
            "UPDATE ids SET label = ?, pos = ? WHERE id = ?", (code, self.n_kept, _key(post.id))
        )
        self.n_kept += 1
        if len(self._rows) >= STAGE_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._writer is None:
            self._rows_file = self._stage(ROWS_FILE, "wb")
            self._writer = pq.ParquetWriter(self._rows_file, EXAMPLE_SCHEMA)
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=EXAMPLE_SCHEMA))
            self._rows.clear()

    def finish(
        self, *, balance: bool, fractions: list[float] | None, seed: int
    ) -> dict[str, dict[str, int]]:
        """Balance and split (by ``fractions``, or one split ``all``) on each label's row
        positions in id order (read from the ids table), write the final files, return the
        counts (split -> label -> posts)."""
        assert self.n_kept, "nothing kept: the caller says why no dataset is written"
        self._flush()
        self._close_rows()
        labels, groups = self._label_groups()
        keep = np.ones(self.n_kept, dtype=bool)
        if balance:
            keep = downsample_groups(groups, self.n_kept, seed)
        kept_groups = [members[keep[members]] for members in groups]
        split_list = split_names(fractions)
        if fractions is None:
            codes = np.where(keep, 0, -1).astype(np.int8)
        else:
            nonempty = [members for members in kept_groups if len(members)]
            codes = assign_split_codes(nonempty, self.n_kept, fractions, seed)
        self._write_examples(codes, keep, split_list)
        self._rejects_file.close()
        os.replace(self._staged.pop(REJECTS_FILE), self.out / REJECTS_FILE)
        present = [
            label for label, members in zip(labels, kept_groups, strict=True) if len(members)
        ]
        names = self.vocabulary
        if names is None:
            names = sort_labels(str(label) for label in present)
        self.label_names = names
        counts = {split: dict.fromkeys(names, 0) for split in split_list}
        for label, members in zip(labels, kept_groups, strict=True):
            if label is None:  # unlabelled posts (data to predict) count in n_examples only
                continue
            per_split = np.bincount(codes[members], minlength=len(split_list))
            for split, n in zip(split_list, per_split.tolist(), strict=True):
                if n:
                    counts[split][label] = counts[split].get(label, 0) + n
        return counts

    def _label_groups(self) -> tuple[list[Any], list[np.ndarray]]:
        """The kept labels in sorted order, and each one's row positions ordered by id (the
        ids table's key order: UTF-8 bytes sort as Python sorts strings)."""
        assert self._ids is not None
        positions = {code: array("q") for code in self._label_codes.values()}
        cursor = self._ids.execute("SELECT label, pos FROM ids WHERE pos IS NOT NULL ORDER BY id")
        while rows := cursor.fetchmany(65536):
            for code, pos in rows:
                positions[code].append(pos)
        by_label = {label: positions[code] for label, code in self._label_codes.items()}
        labels = sorted(by_label)
        return labels, [np.frombuffer(by_label[label], dtype=np.int64) for label in labels]

    def _write_examples(self, codes: np.ndarray, keep: np.ndarray, split_list: list[str]) -> None:
        """Copy the staged rows with their split, dropping (and rejecting) balanced-out ones."""
        final = self._stage(EXAMPLES_FILE, "wb")
        reason = f"class balancing: downsampled to {int(keep.sum()):,} posts in equal classes"
        split_index = EXAMPLE_SCHEMA.get_field_index("split")
        split_values = np.asarray([*split_list, None], dtype=object)  # code -1: None
        start = 0
        with (
            pq.ParquetFile(self._staged[ROWS_FILE]) as staged,
            pq.ParquetWriter(final, EXAMPLE_SCHEMA) as writer,
        ):
            for first in range(0, staged.num_row_groups, COPY_ROW_GROUPS):
                # a few whole row groups at a time, with one thread: one batch reader over
                # the whole file (iter_batches) holds more memory the more rows it has read
                groups = list(range(first, min(first + COPY_ROW_GROUPS, staged.num_row_groups)))
                rows = staged.read_row_groups(groups, use_threads=False)
                stop = start + rows.num_rows
                splits = split_values[codes[start:stop]].tolist()
                rows = rows.set_column(split_index, "split", pa.array(splits, pa.string()))
                mask = keep[start:stop]
                for dropped in rows.filter(pa.array(~mask)).select(["id", "location"]).to_pylist():
                    self.reject(dropped["id"], dropped["location"], reason)
                writer.write_table(rows.filter(pa.array(mask)))
                start = stop
        final.close()
        os.replace(self._staged.pop(EXAMPLES_FILE), self.out / EXAMPLES_FILE)


def _key(post_id: str) -> bytes:
    """An id as the ids table keys it: UTF-8 (lone surrogates kept), whose byte order is the
    code point order Python sorts strings in."""
    return post_id.encode("utf-8", "surrogatepass")
