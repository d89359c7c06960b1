"""The ``prepare`` step: read a source, label and filter each post, balance, split, and write
the prepared dataset directory.

Posts stream through in chunks: kept rows go to a staging Parquet file, rejects to a staging
CSV, and every id read (with a kept row's label and position) to a staging SQLite table that
finds duplicates and lists each label's rows in id order, so memory holds the current chunk
and about 10 bytes per kept row, not the ids. Balancing and splitting work on those position
lists, and the final files replace the old ones atomically, so rerunning over the same folder
never duplicates rows.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import os
import sqlite3
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, ValidationError, field_validator, model_validator

from sentimodal import __version__
from sentimodal.config import Config, Seed, validation_message
from sentimodal.errors import RecordError, UserInputError
from sentimodal.files import (
    check_output_folder,
    folder_lock,
    open_staging,
    remove_staging,
    write_json_atomic,
)
from sentimodal.pool import default_workers
from sentimodal.preparation.balancing import downsample_groups
from sentimodal.preparation.dataset import (
    EXAMPLE_SCHEMA,
    EXAMPLES_FILE,
    INFO_FILE,
    REJECT_COLUMNS,
    REJECTS_FILE,
    PreparedDataset,
    manifest,
    post_to_row,
)
from sentimodal.preparation.filters import (
    STUDY_FILTERS,
    ImageCheck,
    PostFilter,
    build_filters,
    normalise_filters,
)
from sentimodal.preparation.label_set import (
    LabelRules,
    parse_label_list,
    parse_label_map,
    sort_labels,
)
from sentimodal.preparation.labelling import (
    DISTRIBUTION_KEY,
    AnpEmotionLabeller,
    AnpScoreLabeller,
    Labeller,
    RuledLabeller,
    SourceLabeller,
    VaderLabeller,
    emotion_labels,
    label_set,
)
from sentimodal.preparation.splits import (
    DEFAULT_FRACTIONS,
    assign_split_codes,
    parse_split,
    split_names,
)
from sentimodal.progress import progress_bar
from sentimodal.sources import mvsa, mvso, table
from sentimodal.sources.record import Post, Record, Reject

SourceKind = Literal["mvsa", "mvso", "table"]
PRESETS: dict[str, tuple[str, ...]] = {"study": STUDY_FILTERS}
#: Where each source's labels come from unless the config says otherwise.
DEFAULT_LABELS: dict[str, str] = {"mvsa": "source", "mvso": "anp", "table": "source"}
CHUNK_SIZE = 256
#: kept rows are staged in row groups of this many rows
STAGE_ROWS = 4096
#: staged row groups copied to the final file at a time (each copy one row group there)
COPY_ROW_GROUPS = 4
#: the staging file kept rows stream into before balancing and splitting
ROWS_FILE = f"{EXAMPLES_FILE}.rows"
#: the staging SQLite file of every id read, with each kept row's label code and position
IDS_FILE = f"{EXAMPLES_FILE}.ids"
_TABLE_OPTIONS = (
    "text_columns",
    "image_column",
    "label_column",
    "id_column",
    "label_distribution_columns",
)


class PrepareConfig(Config):
    """Every setting of a ``prepare`` run; written in full to ``dataset.json``."""

    source: SourceKind = "mvsa"
    # mvsa: which annotation becomes the label, and the encodings tried after UTF-8
    label_mode: mvsa.LabelMode = "merged"
    text_encodings: list[str] = Field(default_factory=lambda: list(mvsa.DEFAULT_FALLBACK_ENCODINGS))
    # mvso: the ANP -> sentiment score table, or the ANP -> 24 emotions table
    anp_scores: str | None = None
    anp_emotions: str | None = None
    #: anp-emotion labels: Plutchik's 24 emotions, or the 8 basic ones (intensities summed)
    emotion_classes: Literal[8, 24] = 24
    # table: the column mapping
    text_columns: list[str] = Field(default_factory=list)
    image_column: str | None = None
    label_column: str | None = None
    id_column: str | None = None
    #: probability columns, one per label (named by the column): label = argmax, and the
    #: distribution is kept as the soft label
    label_distribution_columns: list[str] = Field(default_factory=list)
    # filters: explicit specs ("english", "spelling=0.8", "min-words=10", "image-reachable")
    # on top of an optional preset; URL checks time out after url_timeout seconds
    filters: list[str] = Field(default_factory=list)
    preset: Literal["study"] | None = None
    url_timeout: float = Field(default=5.0, gt=0)
    # let URL checks reach loopback / private / link-local addresses (refused by default)
    allow_private_addresses: bool = False
    # labelling (None: the source's own labels, or ANP scores for mvso)
    labels: Literal["source", "anp", "vader", "anp-emotion"] | None = None
    #: 2 or 3 sentiment classes where the tool makes the labels (ANP scores, VADER, MVSA's
    #: merge); None: 3 there, and a table's own labels are never touched by it
    classes: Literal[2, 3] | None = None
    #: rename or merge labels (old -> new), then keep only these (others become rejects)
    label_map: dict[str, str] = Field(default_factory=dict)
    labels_keep: list[str] | None = None
    anp_negative: float = -0.035
    anp_positive: float = 0.035
    vader_negative: float = -0.05
    vader_positive: float = 0.05
    vader_margin: float = Field(default=0.0, ge=0)
    balance: bool = False
    # train/val/test fractions, or None for one split named "all"
    split: list[float] | None = Field(default_factory=lambda: list(DEFAULT_FRACTIONS))
    seed: Seed = 0
    # threads for image checks (decoding, URL requests); results do not depend on it
    workers: int = Field(default=4, ge=1)
    # processes parsing MVSO's XML files (None: this machine's cores, up to 8); results do
    # not depend on it
    parse_workers: int | None = Field(default=None, ge=1)

    @field_validator("label_map", mode="before")
    @classmethod
    def _parse_label_map(cls, value: Any) -> dict[str, str]:
        return parse_label_map(value)

    @field_validator("labels_keep", mode="before")
    @classmethod
    def _parse_labels_keep(cls, value: Any) -> list[str] | None:
        return parse_label_list(value)

    @field_validator("filters")
    @classmethod
    def _canonical_filters(cls, specs: list[str]) -> list[str]:
        return normalise_filters(specs)

    @field_validator("split", mode="before")
    @classmethod
    def _parse_split(cls, value: Any) -> list[float] | None:
        return parse_split(value)

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> PrepareConfig:
        if self.anp_negative > self.anp_positive:
            raise ValueError("anp_negative must not exceed anp_positive")
        if self.vader_negative > self.vader_positive:
            raise ValueError("vader_negative must not exceed vader_positive")
        return self

    def effective_filters(self) -> list[str]:
        """The preset's filters with the explicit ones on top (an explicit value wins)."""
        preset = PRESETS[self.preset] if self.preset else ()
        return normalise_filters([*preset, *self.filters])

    def label_method(self) -> str:
        return self.labels or DEFAULT_LABELS[self.source]

    def label_rules(self) -> LabelRules:
        return LabelRules(dict(self.label_map), self.labels_keep)

    def label_vocabulary(self) -> list[str] | None:
        """The label set when the tool makes the labels (or the distribution columns name
        them), after the label rules; None when the labels come from the data."""
        method = self.label_method()
        if self.label_distribution_columns:
            vocabulary = list(self.label_distribution_columns)
        elif method == "anp-emotion":
            vocabulary = emotion_labels(self.emotion_classes)
        elif method == "source" and self.source == "table":
            return None
        else:
            vocabulary = label_set(self.classes or 3)
        return self.label_rules().vocabulary(vocabulary)


def make_config(
    source: str | None = None, config: PrepareConfig | None = None, **options: Any
) -> PrepareConfig:
    """A checked config from a base config and overrides; problems are one-line user errors."""
    values = config.to_dict() if config is not None else {}
    if source is not None:
        values["source"] = source
    values.update(options)
    try:
        checked = PrepareConfig.model_validate(values)
    except ValidationError as exc:
        raise UserInputError(validation_message(exc, "invalid prepare option ")) from None
    _check_consistency(checked)
    resolved: dict[str, Any] = {"labels": checked.label_method()}
    for name in ("anp_scores", "anp_emotions"):
        if getattr(checked, name) is not None:
            resolved[name] = os.path.abspath(getattr(checked, name))
    return checked.model_copy(update=resolved)


def prepare(
    source: SourceKind | None,
    path: str | Path,
    out: str | Path,
    config: PrepareConfig | None = None,
    *,
    progress: bool = True,
    **options: Any,
) -> PreparedDataset:
    """Prepare ``path`` (a ``source`` of kind mvsa, mvso or table) into the folder ``out``.

    ``options`` are :class:`PrepareConfig` fields overriding ``config``, e.g.
    ``prepare("mvso", root, out, anp_scores=csv, preset="study", classes=2)``. MVSO's XML
    files are parsed in ``parse_workers`` spawned processes, so a script that calls this on
    MVSO needs the usual ``if __name__ == "__main__":`` guard (or ``parse_workers=1``).
    """
    config = make_config(source, config, **options)
    path, out = Path(path), check_output_folder(out)
    reader = _open_reader(config, path)
    text_filters, image_check = build_filters(
        config.effective_filters(),
        seed=config.seed,
        url_timeout=config.url_timeout,
        allow_private_addresses=config.allow_private_addresses,
    )
    with folder_lock(out):
        # Holding the folder: what a killed run left behind is nobody's now.
        remove_staging(out)
        run = _Run(
            out=out,
            labeller=_labeller(config),
            text_filters=text_filters,
            image_check=image_check,
            vocabulary=config.label_vocabulary(),
        )
        try:
            with run:
                run.read(reader, workers=config.workers, show_progress=progress)
                counts = run.finish(config)
        finally:
            reader.close()
            run.discard_staging()
        info = {
            "config": config.to_dict(),
            "labels": run.label_names,
            "counts": counts,
            "n_examples": sum(sum(c.values()) for c in counts.values()),
            "n_rejects": run.n_rejects,
            "provenance": _provenance(config, path, reader, run),
            # dataset.json is written last and names the files of this run: a reader that
            # finds other files beside it (a run killed between renames) refuses the folder
            "files": manifest(out),
        }
        write_json_atomic(out / INFO_FILE, info)
    # the examples are read when first used: a caller that needs only the counts (the CLI)
    # does not hold millions of rows
    return PreparedDataset.load(out, lazy=True)


@dataclass
class _Reader:
    records: Iterator[Record]
    total: int | None
    name: str

    def close(self) -> None:
        """Stop reading (finished or failed): a parsing pool ends now, not when collected."""
        close = getattr(self.records, "close", None)
        if close is not None:
            close()


def _open_reader(config: PrepareConfig, path: Path) -> _Reader:
    if not path.exists():
        raise UserInputError(f"{config.source} input not found: {path}")
    if config.source == "mvsa":
        return _Reader(
            mvsa.read_mvsa(path, config.label_mode, config.text_encodings),
            mvsa.count_posts(path),
            "sentimodal.sources.mvsa.read_mvsa",
        )
    if config.source == "mvso":
        scores = mvso.load_anp_scores(config.anp_scores) if config.anp_scores else None
        workers = config.parse_workers or default_workers()
        return _Reader(
            mvso.read_mvso(path, scores, workers), None, "sentimodal.sources.mvso.read_mvso"
        )
    return _Reader(
        table.read_table(
            path,
            text_columns=config.text_columns,
            image_column=config.image_column,
            label_column=config.label_column,
            id_column=config.id_column,
            distribution_columns=config.label_distribution_columns,
        ),
        table.count_rows(path),
        "sentimodal.sources.table.read_table",
    )


def _labeller(config: PrepareConfig) -> Labeller:
    method = config.label_method()
    classes = config.classes or 3
    labeller: Labeller
    if method == "anp":
        labeller = AnpScoreLabeller(config.anp_negative, config.anp_positive, classes)
    elif method == "vader":
        labeller = VaderLabeller(
            config.vader_negative, config.vader_positive, config.vader_margin, classes
        )
    elif method == "anp-emotion":
        assert config.anp_emotions is not None  # checked by _check_consistency
        table = mvso.load_anp_emotions(config.anp_emotions)
        labeller = AnpEmotionLabeller(table, config.emotion_classes)
    else:
        labeller = SourceLabeller(classes)
    rules = config.label_rules()
    return RuledLabeller(labeller, rules) if rules.mapping or rules.keep is not None else labeller


def _check_consistency(config: PrepareConfig) -> None:
    """Options that cannot work together: refuse them before reading anything."""
    method = config.label_method()
    if config.source != "table":
        given = [name for name in _TABLE_OPTIONS if getattr(config, name)]
        if given:
            raise UserInputError(f"{given[0]} applies to the table source only")
    if config.anp_scores is not None and config.source != "mvso":
        raise UserInputError("anp_scores applies to the mvso source only")
    if method == "source" and config.source == "mvso":
        raise UserInputError("MVSO has no source labels: use labels 'anp' or 'vader'")
    if (
        method == "source"
        and config.source == "table"
        and not config.label_column
        and not config.label_distribution_columns
    ):
        raise UserInputError(
            "source labels from a table need a label column (or use labels 'vader')"
        )
    if method == "anp" and config.source != "mvso":
        raise UserInputError("ANP labels need the mvso source")
    if method == "anp" and not config.anp_scores:
        raise UserInputError("ANP labels need an ANP score table (anp_scores / --anp-scores PATH)")
    if method == "anp-emotion" and (config.source != "mvso" or not config.anp_emotions):
        raise UserInputError(
            "anp-emotion labels need the mvso source and an ANP emotion table (--anp-emotions)"
        )
    if config.anp_emotions is not None and method != "anp-emotion":
        raise UserInputError("anp_emotions applies to --labels anp-emotion only")
    tool_sentiment = method in ("anp", "vader") or config.source == "mvsa"
    if config.classes is not None and not tool_sentiment:
        raise UserInputError(
            "classes applies only where the tool makes sentiment labels (ANP scores, VADER, "
            "MVSA's merge); a table's own labels are kept: use labels_keep (--labels-keep) to "
            "drop classes"
        )
    if config.label_distribution_columns and (
        method != "source" or config.label_map or config.labels_keep
    ):
        raise UserInputError(
            "label distribution columns are the labels: they do not go with labels "
            f"{method!r}, a label map or labels_keep"
        )
    if config.source == "table" and config.label_distribution_columns and config.label_column:
        raise UserInputError(
            "give a label column or label distribution columns, not both "
            "(the hard label is the distribution's argmax)"
        )
    if config.source == "table" and not config.text_columns and not config.image_column:
        raise UserInputError("a table needs at least one text column or an image column")
    mvsa.check_encodings(config.text_encodings)


def printable(value: str, limit: int = 500) -> str:
    """A value from the input as it goes into rejects.csv: control characters (NUL, escape
    sequences) replaced, and at most ``limit`` characters."""
    shown = "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def reason_group(reason: str) -> str:
    """A reject reason without its details (the part before the first colon)."""
    return reason.split(":", 1)[0].strip()


@dataclass
class _Run:
    """One prepare run's state: the staging files and the running counts."""

    out: Path
    labeller: Labeller
    text_filters: list[PostFilter]
    image_check: ImageCheck
    #: the label set when it is fixed in advance (None: the labels the kept posts have)
    vocabulary: list[str] | None = None
    label_names: list[str] = field(default_factory=list)
    n_read: int = 0
    n_kept: int = 0
    n_rejects: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    encodings: Counter[str] = field(default_factory=Counter)
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

    def __enter__(self) -> _Run:
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
        self._rejects_csv.writerow((printable(post_id), printable(location), printable(reason)))
        self.n_rejects += 1
        self.reasons[reason_group(reason)] += 1

    def read(self, reader: _Reader, *, workers: int, show_progress: bool) -> None:
        """Screen every record, then check the survivors' images in a thread pool."""
        progress = progress_bar(show_progress, unit="records")
        with progress, ThreadPoolExecutor(max_workers=workers) as pool:
            task = progress.add_task("reading", total=reader.total)
            for chunk in _batched(reader.records, CHUNK_SIZE):
                screened = [post for post in map(self._screen, chunk) if post is not None]
                for post, reason in zip(
                    screened, pool.map(self._image_problem, screened), strict=True
                ):
                    if reason is None:
                        self._keep(post)
                    else:
                        self.reject(post.id, post.location, reason)
                progress.update(
                    task,
                    advance=len(chunk),
                    description=f"kept {self.n_kept:,}, rejected {self.n_rejects:,}",
                )

    def _screen(self, record: Record) -> Post | None:
        """Reader rejects, duplicate ids, labelling and the text filters, cheapest first."""
        self.n_read += 1
        if isinstance(record, Reject):
            self.reject(record.id, record.location, record.reason)
            return None
        if "encoding" in record.meta:
            self.encodings[record.meta["encoding"]] += 1
        try:
            if not self._first_time(record.id):
                raise RecordError(f"duplicate id: {record.id!r} was read before")
            self.labeller.label(record)
            for text_filter in self.text_filters:
                text_filter.check(record)
        except RecordError as exc:
            self.reject(record.id, record.location, str(exc))
            return None
        return record

    def _first_time(self, post_id: str) -> bool:
        """Record ``post_id`` as read; False when it was read before."""
        assert self._ids is not None
        cursor = self._ids.execute("INSERT OR IGNORE INTO ids (id) VALUES (?)", (_key(post_id),))
        return cursor.rowcount == 1

    def _image_problem(self, post: Post) -> str | None:
        try:
            self.image_check.check(post)
        except RecordError as exc:
            return str(exc)
        return None

    def _keep(self, post: Post) -> None:
        row = post_to_row(post)
        distribution = post.meta.get(DISTRIBUTION_KEY)
        if distribution is not None and self.vocabulary is not None:
            row[DISTRIBUTION_KEY] = [float(distribution.get(x, 0.0)) for x in self.vocabulary]
        self._rows.append(row)
        assert self._ids is not None
        code = self._label_codes.setdefault(post.label, len(self._label_codes))
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

    def finish(self, config: PrepareConfig) -> dict[str, dict[str, int]]:
        """Balance and split on each label's row positions in id order (read from the ids
        table), write the final files, return the counts."""
        if self.n_kept == 0:
            raise UserInputError(_nothing_kept(self.n_read, self.reasons))
        self._flush()
        self._close_rows()
        labels, groups = self._label_groups()
        keep = np.ones(self.n_kept, dtype=bool)
        if config.balance:
            keep = downsample_groups(groups, self.n_kept, config.seed)
        kept_groups = [members[keep[members]] for members in groups]
        split_list = split_names(config.split)
        if config.split is None:
            codes = np.where(keep, 0, -1).astype(np.int8)
        else:
            nonempty = [members for members in kept_groups if len(members)]
            codes = assign_split_codes(nonempty, self.n_kept, config.split, config.seed)
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


def _provenance(config: PrepareConfig, path: Path, reader: _Reader, run: _Run) -> dict[str, Any]:
    """Where the data came from and what happened to it, with no timestamps, so two runs over
    the same input give identical files."""
    provenance: dict[str, Any] = {
        "source": config.source,
        "path": os.path.abspath(path),
        "reader": reader.name,
        "sentimodal_version": __version__,
        "n_read": run.n_read,
        "redecoded_texts": {
            "count": sum(run.encodings.values()),
            "encodings": dict(sorted(run.encodings.items())),
        },
        "reject_reasons": dict(sorted(run.reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
    }
    if config.anp_scores:
        digest = hashlib.sha256(Path(config.anp_scores).read_bytes()).hexdigest()
        provenance["anp_scores_sha256"] = digest
    return provenance


def _nothing_kept(n_read: int, reasons: Counter[str]) -> str:
    """Why an empty dataset is not written: every record was rejected (or none was read)."""
    if not n_read:
        return "the input holds no records: nothing to prepare"
    top = ", ".join(f"{reason} ({n:,})" for reason, n in reasons.most_common(3))
    return f"every one of the {n_read:,} records was rejected ({top}): no dataset written"


def _batched(records: Iterator[Record], size: int) -> Iterator[Sequence[Record]]:
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
