"""The ``prepare`` step: read a source, label and filter each post, balance, split, and write
the prepared dataset directory.

Posts stream through in chunks: each record is screened (reader rejects, duplicate ids,
labelling, text filters, cheapest first), then the survivors' images are checked in a thread
pool, and what is kept or rejected goes to the :class:`StagedWriter`, which balances, splits
and replaces the final files at the end, so memory holds the current chunk only.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentimodal import __version__
from sentimodal.errors import RecordError, UserInputError
from sentimodal.files import (
    LOCK_FILE,
    STAGING_PREFIX,
    check_output_folder,
    folder_lock,
    read_regular,
    remove_staging,
    write_json_atomic,
)
from sentimodal.preparation.config import PrepareConfig, make_config
from sentimodal.preparation.dataset import INFO_FILE, INFO_LIMIT, PreparedDataset, manifest
from sentimodal.preparation.filters import ImageCheck, PostFilter, build_filters
from sentimodal.preparation.labelling import (
    AnpEmotionLabeller,
    AnpScoreLabeller,
    Labeller,
    RuledLabeller,
    SourceLabeller,
    VaderLabeller,
)
from sentimodal.preparation.splits import check_class_sizes
from sentimodal.preparation.staging import StagedWriter
from sentimodal.progress import note, progress_bar
from sentimodal.sources import mvso
from sentimodal.sources.record import Post, Record, Reject
from sentimodal.sources.registry import SourceKind
from sentimodal.sources.source import SourceReader

CHUNK_SIZE = 256


def prepare(
    source: SourceKind | None,
    path: str | Path,
    out: str | Path,
    config: PrepareConfig | None = None,
    *,
    progress: bool = True,
    overwrite: bool = False,
    **options: Any,
) -> PreparedDataset:
    """Prepare ``path`` (a ``source`` of kind mvsa, mvso or table) into the folder ``out``.

    ``options`` are :class:`PrepareConfig` fields overriding ``config``, e.g.
    ``prepare("mvso", root, out, anp_scores=csv, preset="study", classes=2)``. ``out`` must be
    empty, new, or a dataset prepared from the same input (a rerun); anything else is refused
    unless ``overwrite``. MVSO's XML
    files are parsed in ``parse_workers`` spawned processes, so a script that calls this on
    MVSO needs the usual ``if __name__ == "__main__":`` guard (or ``parse_workers=1``).
    """
    config = make_config(source, config, **options)
    path, out = Path(path), check_output_folder(out)
    if not path.exists():
        raise UserInputError(f"{config.source} input not found: {path}")
    reader = config.source_entry.open(config, path)
    text_filters, image_check = build_filters(
        config.effective_filters(),
        seed=config.seed,
        url_timeout=config.url_timeout,
        allow_private_addresses=config.allow_private_addresses,
    )
    with folder_lock(out):
        # Holding the folder: what a killed run left behind is nobody's now.
        remove_staging(out)
        if not overwrite:
            _check_replaceable(out, config.source, path)
        vocabulary = config.label_vocabulary()
        writer = StagedWriter(out=out, vocabulary=vocabulary)
        labeller = _labeller(config)
        reading = _Reading(writer, labeller, text_filters, image_check, config.max_classes)
        try:
            with writer:
                reading.read(reader, workers=config.workers, show_progress=progress)
                if writer.n_kept == 0:
                    raise UserInputError(_nothing_kept(reading.n_read, writer.reasons))
                _check_labels(config, labeller, writer, vocabulary, path)
                counts = writer.finish(
                    balance=config.balance, fractions=config.split, seed=config.seed
                )
        finally:
            reader.close()
            writer.discard_staging()
        info = {
            "config": config.to_dict(),
            "labels": writer.label_names,
            "counts": counts,
            "n_examples": sum(sum(c.values()) for c in counts.values()),
            "n_rejects": writer.n_rejects,
            "provenance": _provenance(config, path, reader, reading),
            # dataset.json is written last and names the files of this run: a reader that
            # finds other files beside it (a run killed between renames) refuses the folder
            "files": manifest(out),
        }
        write_json_atomic(out / INFO_FILE, info)
    # the examples are read when first used: a caller that needs only the counts (the CLI)
    # does not hold millions of rows
    return PreparedDataset.load(out, lazy=True)


def _check_replaceable(out: Path, source: str, path: Path) -> None:
    """Refuse to write over what is not this input's dataset: a folder holding other files,
    or a dataset prepared from another input (its provenance names source and path)."""
    present = sorted(
        p.name
        for p in out.iterdir()
        if p.name != LOCK_FILE and not p.name.startswith(STAGING_PREFIX)
    )
    if not present:
        return
    try:
        info = json.loads(read_regular(out / INFO_FILE, INFO_LIMIT, error=UserInputError))
        provenance = info.get("provenance", {}) if isinstance(info, dict) else {}
    except (UserInputError, ValueError, RecursionError):
        provenance = {}
    origin = (provenance.get("source"), provenance.get("path"))
    if origin == (source, os.path.abspath(path)):
        return
    held = (
        f"a dataset prepared from {origin[1]}"
        if isinstance(origin[1], str)
        else f"other files ({', '.join(present[:3])}{' ...' if len(present) > 3 else ''})"
    )
    raise UserInputError(
        f"{out} holds {held}, not a dataset of {path}: choose an empty folder or pass "
        "--overwrite (overwrite=True) to replace it"
    )


def _check_labels(
    config: PrepareConfig,
    labeller: Labeller,
    writer: StagedWriter,
    vocabulary: list[str] | None,
    path: Path,
) -> None:
    """After the read, before anything is written: label rules that matched nothing in the
    data, and classes too small for a split to have posts, are refused; classes too small
    for some split, and merged numeric spellings, are warnings."""
    if isinstance(labeller, RuledLabeller) and vocabulary is None:
        seen = labeller.rules.matched | set(writer.label_sizes)
        labeller.rules.check_used(labeller.rules.matched, str(path), known=seen)
    sizes = dict(writer.label_sizes)
    if config.balance and sizes:
        sizes = dict.fromkeys(sizes, min(sizes.values()))
    if thin := check_class_sizes(sizes, config.split):
        note(("warning: ", "bold yellow"), thin)
    inner = labeller.inner if isinstance(labeller, RuledLabeller) else labeller
    if isinstance(inner, SourceLabeller) and (warning := inner.spellings.warning()):
        note(("warning: ", "bold yellow"), warning)


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
        assert config.anp_emotions is not None  # checked by make_config
        table = mvso.load_anp_emotions(config.anp_emotions)
        labeller = AnpEmotionLabeller(table, config.emotion_classes)
    else:
        labeller = SourceLabeller(classes)
    rules = config.label_rules()
    return RuledLabeller(labeller, rules) if rules.mapping or rules.keep is not None else labeller


@dataclass
class _Reading:
    """The read through one source: every record screened, then kept or rejected."""

    writer: StagedWriter
    labeller: Labeller
    text_filters: list[PostFilter]
    image_check: ImageCheck
    max_classes: int
    n_read: int = 0
    #: how many texts were not UTF-8, by the encoding they were read in
    encodings: Counter[str] = field(default_factory=Counter)

    def read(self, reader: SourceReader, *, workers: int, show_progress: bool) -> None:
        """Screen every record, then check the survivors' images in a thread pool."""
        writer = self.writer
        progress = progress_bar(show_progress, unit="records")
        with progress, ThreadPoolExecutor(max_workers=workers) as pool:
            task = progress.add_task("reading", total=reader.total)
            for chunk in _batched(reader.records, CHUNK_SIZE):
                screened = [post for post in map(self._screen, chunk) if post is not None]
                for post, reason in zip(
                    screened, pool.map(self._image_problem, screened), strict=True
                ):
                    if reason is None:
                        writer.keep(post)
                    else:
                        writer.reject(post.id, post.location, reason)
                if len(writer.label_sizes) > self.max_classes:
                    raise UserInputError(
                        f"more than {self.max_classes:,} distinct labels in the first "
                        f"{self.n_read:,} records (max_classes, --max-classes): is the label "
                        "column the right one? Merge or drop labels with --label-map, "
                        "--labels-keep"
                    )
                progress.update(
                    task,
                    advance=len(chunk),
                    description=f"kept {writer.n_kept:,}, rejected {writer.n_rejects:,}",
                )

    def _screen(self, record: Record) -> Post | None:
        """Reader rejects, duplicate ids, labelling and the text filters, cheapest first."""
        self.n_read += 1
        if isinstance(record, Reject):
            self.writer.reject(record.id, record.location, record.reason)
            return None
        if "encoding" in record.meta:
            self.encodings[record.meta["encoding"]] += 1
        try:
            if not self.writer.first_time(record.id):
                raise RecordError(f"duplicate id: {record.id!r} was read before")
            self.labeller.label(record)
            for text_filter in self.text_filters:
                text_filter.check(record)
        except RecordError as exc:
            self.writer.reject(record.id, record.location, str(exc))
            return None
        return record

    def _image_problem(self, post: Post) -> str | None:
        try:
            self.image_check.check(post)
        except RecordError as exc:
            return str(exc)
        return None


def _provenance(
    config: PrepareConfig, path: Path, reader: SourceReader, reading: _Reading
) -> dict[str, Any]:
    """Where the data came from and what happened to it, with no timestamps, so two runs over
    the same input give identical files."""
    reasons = reading.writer.reasons
    return {
        "source": config.source,
        "path": os.path.abspath(path),
        "reader": reader.name,
        "sentimodal_version": __version__,
        "n_read": reading.n_read,
        "redecoded_texts": {
            "count": sum(reading.encodings.values()),
            "encodings": dict(sorted(reading.encodings.items())),
        },
        "reject_reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        **reader.provenance,
    }


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
