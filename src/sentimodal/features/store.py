"""The resumable on-disk feature cache of a prepared dataset.

Encoding images is the slow step of every experiment, so features are computed once per
(encoder, settings, weights, examples) and read back by id afterwards. Layout:
``DATASET/features/<kind>/<name>-<key>/`` with ``meta.json``, ``shard-00000.safetensors`` ...
(``features``, ``positions`` = rows of ``examples.parquet``, ``lengths`` for token ids; the
shard's rejects in its metadata), ``rejects.csv``, learned encoder state (``vocab.json``) and,
once every shard exists, ``ids.json``. A shard is written under a temporary name and renamed,
so a killed run leaves only whole shards and the next run computes just the missing ones.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from safetensors import safe_open
from safetensors.numpy import save as safetensors_bytes

from sentimodal.config import Config
from sentimodal.errors import RecordError, UserInputError
from sentimodal.features.engine import BatchResult, BatchWork, Engine, Row, get_engine
from sentimodal.features.image_encoders import get_image_encoder
from sentimodal.features.image_encoders.base import ImageEncoder
from sentimodal.features.text_encoders import get_text_encoder, lengths_from_ids
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.preparation.dataset import PreparedDataset

STORE_FORMAT = "sentimodal-features"
#: Bumped whenever stored values would change for the same encoder (decoding, layout), so
#: that old folders get a different key instead of being read as current.
STORE_VERSION = 1
KINDS = ("image", "text")
FEATURES_DIR = "features"
META_FILE = "meta.json"
IDS_FILE = "ids.json"
REJECTS_FILE = "rejects.csv"
SHARD_PATTERN = "shard-{:05d}.safetensors"
#: Splits whose texts the ``tokens`` vocabulary is learned from, in order of preference
#: (``all`` is the only split of an unsplit dataset).
FIT_SPLITS = ("train", "all")

_stderr = Console(stderr=True)


class FeatureConfig(Config):
    """Settings of one ``extract_features`` run (saved in each feature folder's meta.json)."""

    image: str | None = "efficientnet_lite0"
    text: str | None = "minilm"
    image_config: dict[str, Any] = Field(default_factory=dict)
    text_config: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = Field(64, ge=1)
    workers: int = Field(2, ge=0)
    dtype: Literal["float32", "float16"] = "float32"
    engine: Literal["local", "ray"] = "local"
    #: rows per shard: what a killed run can lose at most
    shard_size: int = Field(512, ge=1)


@dataclass
class FeatureSet:
    """Features of some examples: ``values[i]`` (and ``lengths[i]`` for token ids) is ``ids[i]``.

    ``directory`` is the feature folder they came from (it holds e.g. the ``tokens`` vocab).
    """

    ids: list[str]
    values: np.ndarray
    lengths: np.ndarray | None = None
    directory: Path | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, ids: Sequence[str]) -> FeatureSet:
        """The rows of ``ids``, in that order (every id must be present)."""
        index = {id_: i for i, id_ in enumerate(self.ids)}
        missing = [i for i in ids if i not in index]
        if missing:
            raise KeyError(f"{len(missing)} ids have no features, e.g. {missing[0]!r}")
        rows = np.fromiter((index[i] for i in ids), dtype=np.int64, count=len(ids))
        return FeatureSet(
            ids=list(ids),
            values=self.values[rows],
            lengths=None if self.lengths is None else self.lengths[rows],
            directory=self.directory,
        )


@dataclass
class ExtractionResult:
    """What ``extract_features`` did for one modality (the CLI prints these)."""

    kind: str
    name: str
    directory: Path
    cache_hit: bool
    rows: dict[str, int]
    n_rejects: int
    seconds: float
    #: rows handled by this run (0 on a cache hit)
    items: int = 0

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0


# ----------------------------------------------------------------------------- per-batch work


@dataclass
class LoadedImages:
    """A decoded batch on its way from a loading worker to the forward pass."""

    positions: np.ndarray
    pixels: torch.Tensor | None
    rejects: list[Row] = field(default_factory=list)


class ImageBatchWork:
    """Images: read + decode + transform per row (``load``), one batched forward (``compute``).

    Decoding goes through ``encoder.read``, which decodes JPEGs straight down to the size the
    transform needs (draft mode), keeping decode well below the cost of the forward pass.
    """

    parallel = True

    def __init__(self, encoder: ImageEncoder) -> None:
        self.encoder = encoder

    @property
    def compute_in_workers(self) -> bool:
        """True when the model runs on the CPU (builds it, so that forked workers share it)."""
        parameter = next(iter(self.encoder.module().parameters()), None)
        return parameter is None or parameter.device.type == "cpu"

    def load(self, rows: list[Row]) -> LoadedImages:
        tensors: list[torch.Tensor] = []
        positions: list[int] = []
        rejects: list[Row] = []
        for row in rows:
            try:
                tensors.append(self.encoder.read(row["image"]))
            except RecordError as exc:
                rejects.append(_reject(row, str(exc)))
                continue
            positions.append(int(row["position"]))
        pixels = torch.stack(tensors) if tensors else None
        return LoadedImages(np.asarray(positions, dtype=np.int64), pixels, rejects)

    def compute(self, loaded: LoadedImages) -> BatchResult:
        if loaded.pixels is None:
            values = np.zeros((0, *self.encoder.shape), dtype=np.float32)
        else:
            values = self.encoder.encode(loaded.pixels)
        return BatchResult(loaded.positions, values, rejects=loaded.rejects)

    def __call__(self, rows: list[Row]) -> BatchResult:
        return self.compute(self.load(rows))


class TextBatchWork:
    """Texts: nothing to load; ``compute`` encodes the batch (and counts tokens for ids).

    Runs in the main process: text encoders are cheap or already use every core, and each
    worker would load its own copy of a transformer.
    """

    parallel = False
    compute_in_workers = False

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder

    def load(self, rows: list[Row]) -> list[Row]:
        return rows

    def compute(self, loaded: list[Row]) -> BatchResult:
        texts = [str(row["text"]) for row in loaded]
        positions = np.array([int(row["position"]) for row in loaded], dtype=np.int64)
        values = np.asarray(self.encoder.encode(texts))
        lengths = lengths_from_ids(values) if is_token_encoder(self.encoder) else None
        return BatchResult(positions, values, lengths=lengths)

    def __call__(self, rows: list[Row]) -> BatchResult:
        return self.compute(self.load(rows))


def is_token_encoder(encoder: TextEncoder) -> bool:
    """Token-id encoders store integers (never float16) and a length per text."""
    return np.dtype(encoder.dtype).kind in "iu"


def _reject(row: Row, reason: str) -> Row:
    return {
        "position": int(row["position"]),
        "id": str(row["id"]),
        "image": str(row.get("image") or ""),
        "reason": reason,
    }


# ----------------------------------------------------------------------------- keys


def examples_fingerprint(ids: Sequence[str], contents: Sequence[str | None]) -> str:
    """Hash of the example ids, their order and the content a modality reads (image or text)."""
    digest = hashlib.sha256()
    for id_, content in zip(ids, contents, strict=True):
        digest.update(json.dumps([id_, content], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def feature_key(
    kind: str,
    name: str,
    encoder_config: dict[str, Any],
    identity: str,
    stored_dtype: str,
    fingerprint: str,
) -> str:
    """Short hash naming a feature folder: anything that changes the values changes it."""
    payload = {
        "format": STORE_FORMAT,
        "version": STORE_VERSION,
        "kind": kind,
        "name": name,
        "config": encoder_config,
        "identity": identity,
        "dtype": stored_dtype,
        "examples": fingerprint,
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# ----------------------------------------------------------------------------- folder


class FeatureFolder:
    """One feature folder: its meta, its shards, and reading them back."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def complete(self) -> bool:
        return (self.path / IDS_FILE).is_file()

    @property
    def meta(self) -> dict[str, Any]:
        path = self.path / META_FILE
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserInputError(f"unreadable feature metadata {path}: {exc}") from None

    def shard_path(self, index: int) -> Path:
        return self.path / SHARD_PATTERN.format(index)

    def begin(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Create the folder, or keep what an interrupted run left (its shard grid included)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if (self.path / META_FILE).is_file():
            existing = self.meta
            if existing.get("key") == meta["key"]:
                return existing
        _write_atomic(self.path / META_FILE, _json_bytes(meta))
        return meta

    def write_shard(
        self,
        index: int,
        positions: np.ndarray,
        values: np.ndarray,
        lengths: np.ndarray | None,
        rejects: list[Row],
    ) -> None:
        tensors = {"features": np.ascontiguousarray(values), "positions": positions}
        if lengths is not None:
            tensors["lengths"] = lengths
        metadata = {"shard": str(index), "rejects": json.dumps(rejects, ensure_ascii=False)}
        _write_atomic(self.shard_path(index), safetensors_bytes(tensors, metadata=metadata))

    def finish(
        self, meta: dict[str, Any], ids: Sequence[str], splits: Sequence[str]
    ) -> dict[str, Any]:
        """Index the shards: ids.json (rows in stored order), rejects.csv, counts in meta.json.

        ids.json is written last: its presence is what marks the folder complete.
        """
        positions, rejects = [], []
        for index in range(meta["n_shards"]):
            with self._open(index) as shard:
                positions.append(shard.get_tensor("positions"))
                rejects.extend(json.loads(shard.metadata().get("rejects", "[]")))
        stored = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)
        rows: dict[str, int] = defaultdict(int)
        for p in stored:
            rows[splits[int(p)]] += 1
        _write_atomic(self.path / REJECTS_FILE, _rejects_csv(rejects))
        meta = {**meta, "counts": {"rows": len(stored), "rejects": len(rejects), "splits": rows}}
        _write_atomic(self.path / META_FILE, _json_bytes(meta))
        _write_atomic(self.path / IDS_FILE, _json_bytes([ids[int(p)] for p in stored]))
        for leftover in self.path.glob("*.tmp"):
            leftover.unlink()
        return meta

    def read(self, dtype: str | None = None) -> FeatureSet:
        """All stored rows: float features as float32 unless ``dtype`` says otherwise."""
        if not self.complete:
            raise UserInputError(
                f"features in {self.path} are incomplete: run the extraction again"
            )
        meta = self.meta
        values, lengths = [], []
        for index in range(meta["n_shards"]):
            with self._open(index) as shard:
                values.append(shard.get_tensor("features"))
                if "lengths" in set(shard.keys()):
                    lengths.append(shard.get_tensor("lengths"))
        shape = tuple(meta["shape"])
        stored = np.concatenate(values) if values else np.zeros((0, *shape), meta["dtype"])
        if dtype is not None:
            stored = stored.astype(dtype, copy=False)
        elif stored.dtype.kind == "f":
            stored = stored.astype(np.float32, copy=False)
        ids = json.loads((self.path / IDS_FILE).read_text(encoding="utf-8"))
        if len(ids) != len(stored):
            raise UserInputError(f"corrupted feature folder {self.path}: ids and shards disagree")
        return FeatureSet(
            ids=ids,
            values=stored,
            lengths=np.concatenate(lengths) if meta.get("lengths") and lengths else None,
            directory=self.path,
        )

    def _open(self, index: int) -> Any:
        path = self.shard_path(index)
        try:
            return safe_open(str(path), framework="numpy")
        except Exception as exc:  # safetensors raises its own error types for bad files
            raise UserInputError(
                f"missing or corrupted feature shard {path} ({exc}); delete {self.path} and "
                "extract again"
            ) from None


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to ``path.tmp``, flush to disk, rename: readers see the old file or the new one."""
    staged = path.with_name(path.name + ".tmp")
    with open(staged, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staged, path)


def _rejects_csv(rejects: list[Row]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "image", "reason"])
    for reject in sorted(rejects, key=lambda r: r["position"]):
        writer.writerow([reject["id"], reject["image"], reject["reason"]])
    return buffer.getvalue().encode("utf-8")


# ----------------------------------------------------------------------------- extraction


@dataclass
class _Plan:
    """Everything needed to extract one modality: encoder, rows, key, per-batch work."""

    kind: str
    name: str
    encoder_config: dict[str, Any]
    identity: str
    shape: tuple[int, ...]
    stored_dtype: str
    fingerprint: str
    rows: list[Row]
    work: BatchWork
    encoder_state: TextEncoder | None = None

    @property
    def key(self) -> str:
        return feature_key(
            self.kind,
            self.name,
            self.encoder_config,
            self.identity,
            self.stored_dtype,
            self.fingerprint,
        )


def extract_features(
    dataset: PreparedDataset | str | Path,
    image: str | ImageEncoder | None = "efficientnet_lite0",
    text: str | TextEncoder | None = "minilm",
    image_config: dict[str, Any] | None = None,
    text_config: dict[str, Any] | None = None,
    batch_size: int = 64,
    workers: int = 2,
    dtype: str = "float32",
    engine: str = "local",
    shard_size: int = 512,
    progress: bool = True,
) -> dict[str, ExtractionResult]:
    """Compute (or find cached) features of every example, per modality; ``None`` skips one.

    Encoders are registry names (built with ``image_config`` / ``text_config``) or ready
    instances (a custom or fine-tuned encoder). Rows without an image (or with an empty text)
    are simply not featurised for that modality; images that fail to decode go to the
    folder's rejects.csv. Returns ``{kind: result}``.
    """
    image_encoder = image if isinstance(image, ImageEncoder) else None
    text_encoder = text if isinstance(text, TextEncoder) else None
    if (image_encoder and image_config) or (text_encoder and text_config):
        raise UserInputError("give an encoder instance or a name with its config, not both")
    try:
        config = FeatureConfig(
            image=image_encoder.name if image_encoder else image,
            text=text_encoder.name if text_encoder else text,
            image_config=image_config or {},
            text_config=text_config or {},
            batch_size=batch_size,
            workers=workers,
            dtype=dtype,
            engine=engine,
            shard_size=shard_size,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UserInputError(f"invalid feature setting {where}: {first['msg']}") from None
    data = _dataset(dataset)
    if data.root is None:
        raise UserInputError("the dataset has no directory: save it before extracting features")
    runner = get_engine(config.engine, workers=config.workers)
    results: dict[str, ExtractionResult] = {}
    if config.image:
        encoder = image_encoder or get_image_encoder(config.image, **config.image_config)
        results["image"] = _extract(
            data, _image_plan(data, encoder, config.dtype), config, runner, progress
        )
    if config.text:
        encoder = text_encoder or get_text_encoder(config.text, **config.text_config)
        results["text"] = _extract(
            data, _text_plan(data, encoder, config.dtype), config, runner, progress
        )
    return results


def _image_plan(data: PreparedDataset, encoder: ImageEncoder, dtype: str) -> _Plan:
    examples = data.examples
    images = [_image_or_none(v) for v in examples["image"].tolist()]
    ids = examples["id"].astype(str).tolist()
    rows = [{"position": p, "id": ids[p], "image": img} for p, img in enumerate(images) if img]
    return _Plan(
        kind="image",
        name=encoder.name,
        encoder_config=encoder.config,
        identity=encoder.identity,
        shape=tuple(int(n) for n in encoder.shape),
        stored_dtype=dtype,
        fingerprint=examples_fingerprint(ids, images),
        rows=rows,
        work=ImageBatchWork(encoder),
    )


def _text_plan(data: PreparedDataset, encoder: TextEncoder, dtype: str) -> _Plan:
    texts = data.texts()
    ids = data.examples["id"].astype(str).tolist()
    if encoder.needs_fit:
        encoder.fit(_fit_texts(data, texts, encoder.name))
    rows = [{"position": p, "id": ids[p], "text": t} for p, t in enumerate(texts) if t.strip()]
    return _Plan(
        kind="text",
        name=encoder.name,
        encoder_config=encoder.config,
        identity=encoder.identity,
        shape=tuple(int(n) for n in encoder.shape),
        stored_dtype=str(np.dtype(encoder.dtype)) if is_token_encoder(encoder) else dtype,
        fingerprint=examples_fingerprint(ids, texts),
        rows=rows,
        work=TextBatchWork(encoder),
        encoder_state=encoder if encoder.learns else None,
    )


def _fit_texts(data: PreparedDataset, texts: list[str], name: str) -> list[str]:
    """Texts a learned text encoder may see: the train split only (``all`` when unsplit)."""
    splits = data.examples["split"].astype(str).tolist()
    for split in FIT_SPLITS:
        chosen = [t for t, s in zip(texts, splits, strict=True) if s == split]
        if chosen:
            return chosen
    raise UserInputError(
        f"the {name!r} text encoder learns from the train split, and this dataset has none "
        f"(splits: {', '.join(sorted(set(splits))) or 'none'})"
    )


def _dataset(dataset: PreparedDataset | str | Path) -> PreparedDataset:
    return dataset if isinstance(dataset, PreparedDataset) else PreparedDataset.load(dataset)


def _image_or_none(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _result(
    plan: _Plan,
    folder: FeatureFolder,
    meta: dict[str, Any],
    started: float,
    *,
    cache_hit: bool,
    items: int = 0,
) -> ExtractionResult:
    """What one extraction did with its folder, from the folder's recorded counts."""
    return ExtractionResult(
        kind=plan.kind,
        name=plan.name,
        directory=folder.path,
        cache_hit=cache_hit,
        rows=dict(meta["counts"]["splits"]),
        n_rejects=int(meta["counts"]["rejects"]),
        seconds=time.perf_counter() - started,
        items=items,
    )


def _extract(
    data: PreparedDataset, plan: _Plan, config: FeatureConfig, runner: Engine, progress: bool
) -> ExtractionResult:
    started = time.perf_counter()
    key = plan.key
    folder = FeatureFolder(Path(data.root) / FEATURES_DIR / plan.kind / f"{plan.name}-{key}")
    if folder.complete:
        return _result(plan, folder, folder.meta, started, cache_hit=True)
    meta = folder.begin(
        {
            "format": STORE_FORMAT,
            "version": STORE_VERSION,
            "kind": plan.kind,
            "name": plan.name,
            "key": key,
            "config": plan.encoder_config,
            "identity": plan.identity,
            "shape": list(plan.shape),
            "dtype": plan.stored_dtype,
            "lengths": plan.kind == "text" and plan.stored_dtype.startswith("int"),
            "examples_fingerprint": plan.fingerprint,
            "n_items": len(plan.rows),
            "shard_size": config.shard_size,
            "n_shards": math.ceil(len(plan.rows) / config.shard_size),
            "extraction": config.to_dict(),
        }
    )
    if plan.encoder_state is not None:
        plan.encoder_state.save(folder.path)
    shard_size = int(meta["shard_size"])
    pending = [i for i in range(meta["n_shards"]) if not folder.shard_path(i).is_file()]
    writer = _ShardWriter(folder, plan.rows, shard_size, pending, plan.stored_dtype)
    batches = [
        rows[start : start + config.batch_size]
        for rows in writer.pending_rows()
        for start in range(0, len(rows), config.batch_size)
    ]
    total = sum(len(b) for b in batches)
    label = f"{plan.kind} {plan.name}"
    with _progress_bar(progress) as bar:
        task = bar.add_task(label, total=total)
        for result in runner.run(plan.work, batches):
            writer.add(result)
            bar.advance(task, result.n_items)
    writer.check_done()
    ids = data.examples["id"].astype(str).tolist()
    meta = folder.finish(meta, ids, data.examples["split"].astype(str).tolist())
    return _result(plan, folder, meta, started, cache_hit=False, items=total)


class _ShardWriter:
    """Collects batch results by shard and writes each shard as soon as all its rows are in.

    Results may arrive in any grouping or order (Ray); a shard is complete when every one of
    its rows came back, featurised or rejected.
    """

    def __init__(
        self,
        folder: FeatureFolder,
        rows: list[Row],
        shard_size: int,
        pending: list[int],
        stored_dtype: str,
    ) -> None:
        self.folder = folder
        self.rows = rows
        self.shard_size = shard_size
        self.pending = set(pending)
        self.stored_dtype = stored_dtype
        self.task_positions = np.array([r["position"] for r in rows], dtype=np.int64)
        self.parts: dict[int, list[BatchResult]] = defaultdict(list)
        self.received: dict[int, int] = defaultdict(int)

    def pending_rows(self) -> Iterator[list[Row]]:
        for index in sorted(self.pending):
            yield self.rows[index * self.shard_size : (index + 1) * self.shard_size]

    def _shard_of(self, positions: Sequence[int]) -> np.ndarray:
        tasks = np.searchsorted(self.task_positions, np.asarray(positions, dtype=np.int64))
        return tasks // self.shard_size

    def add(self, result: BatchResult) -> None:
        shard_of_row = self._shard_of(result.positions)
        shard_of_reject = self._shard_of([r["position"] for r in result.rejects])
        for index in set(shard_of_row.tolist()) | set(shard_of_reject.tolist()):
            mine = shard_of_row == index
            part = BatchResult(
                positions=result.positions[mine],
                values=result.values[mine],
                lengths=None if result.lengths is None else result.lengths[mine],
                rejects=[
                    r for r, s in zip(result.rejects, shard_of_reject, strict=True) if s == index
                ],
            )
            self.parts[index].append(part)
            self.received[index] += part.n_items
            if self.received[index] == len(self._shard_rows(index)):
                self._write(index)

    def _shard_rows(self, index: int) -> list[Row]:
        return self.rows[index * self.shard_size : (index + 1) * self.shard_size]

    def _write(self, index: int) -> None:
        parts = self.parts.pop(index)
        positions = np.concatenate([p.positions for p in parts]).astype(np.int64)
        order = np.argsort(positions, kind="stable")
        values = np.concatenate([p.values for p in parts])[order].astype(self.stored_dtype)
        lengths = None
        if parts[0].lengths is not None:
            lengths = np.concatenate([p.lengths for p in parts])[order].astype(np.int64)
        rejects = sorted((r for p in parts for r in p.rejects), key=lambda r: r["position"])
        self.folder.write_shard(index, positions[order], values, lengths, rejects)
        self.pending.discard(index)

    def check_done(self) -> None:
        if self.pending:
            raise RuntimeError(f"engine returned no results for shards {sorted(self.pending)}")


class _RateColumn(ProgressColumn):
    """Items per second (rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("- items/s" if speed is None else f"{speed:,.1f} items/s", style="cyan")


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_stderr,
        disable=not enabled,
    )


# ----------------------------------------------------------------------------- reading back


def find_feature_folder(
    data: PreparedDataset,
    kind: str,
    name: str,
    config: dict[str, Any] | None = None,
    stored_dtype: str | None = None,
) -> FeatureFolder:
    """The complete folder of ``kind``/``name`` extracted from these very examples.

    ``config`` narrows the choice to folders whose encoder config contains those items; when
    several folders still match, the caller must say which.
    """
    if kind not in KINDS:
        raise UserInputError(f"unknown feature kind {kind!r}: choose one of {', '.join(KINDS)}")
    if data.root is None:
        raise UserInputError("the dataset has no directory, so it has no stored features")
    ids = data.examples["id"].astype(str).tolist()
    if kind == "image":
        contents: list[str | None] = [_image_or_none(v) for v in data.examples["image"].tolist()]
    else:
        contents = list(data.texts())
    fingerprint = examples_fingerprint(ids, contents)
    found = [
        FeatureFolder(p)
        for p in sorted((Path(data.root) / FEATURES_DIR / kind).glob(f"{name}-*"))
        if (p / META_FILE).is_file()
    ]
    found = [f for f in found if f.complete and f.meta.get("name") == name]
    current = [f for f in found if f.meta.get("examples_fingerprint") == fingerprint]
    wanted = [
        f
        for f in current
        if all(f.meta["config"].get(k) == v for k, v in (config or {}).items())
        and (stored_dtype is None or f.meta["dtype"] == stored_dtype)
    ]
    command = f"sentimodal features {data.root} --{kind} {name}"
    if not wanted:
        if found and not current:
            raise UserInputError(
                f"the {kind} features {name!r} were extracted from other examples; run: {command}"
            )
        raise UserInputError(f"no {kind} features {name!r} with these settings; run: {command}")
    if len(wanted) > 1:
        choices = "; ".join(
            f"{f.path.name}: config={f.meta['config']} dtype={f.meta['dtype']}" for f in wanted
        )
        raise UserInputError(f"several {kind} features {name!r} match, pass config= ({choices})")
    return wanted[0]


def load_features(
    dataset_dir: PreparedDataset | str | Path,
    kind: str,
    name: str,
    split: str | None = None,
    config: dict[str, Any] | None = None,
    *,
    dtype: str | None = None,
    stored_dtype: str | None = None,
) -> FeatureSet:
    """Stored features of one split (or all examples), ordered as in examples.parquet.

    Examples without features (no image, empty text, rejected image) are absent from ``ids``.
    Float features come back as float32 whatever the storage, unless ``dtype`` is given.
    """
    data = (
        dataset_dir
        if isinstance(dataset_dir, PreparedDataset)
        else PreparedDataset.load(dataset_dir)
    )
    features = find_feature_folder(data, kind, name, config, stored_dtype).read(dtype)
    if split is None:
        return features
    wanted = set(data.split(split)["id"].astype(str))
    keep = [i for i, id_ in enumerate(features.ids) if id_ in wanted]
    return FeatureSet(
        ids=[features.ids[i] for i in keep],
        values=features.values[keep],
        lengths=None if features.lengths is None else features.lengths[keep],
        directory=features.directory,
    )


def aligned(
    dataset_dir: PreparedDataset | str | Path,
    image: str,
    text: str,
    split: str | None = None,
    image_config: dict[str, Any] | None = None,
    text_config: dict[str, Any] | None = None,
    *,
    dtype: str | None = None,
) -> tuple[FeatureSet, FeatureSet]:
    """Image and text features of the examples that have both, row for row (for fusion)."""
    data = (
        dataset_dir
        if isinstance(dataset_dir, PreparedDataset)
        else PreparedDataset.load(dataset_dir)
    )
    images = load_features(data, "image", image, split, image_config, dtype=dtype)
    texts = load_features(data, "text", text, split, text_config, dtype=dtype)
    in_text = set(texts.ids)
    common = [i for i in images.ids if i in in_text]
    return images.select(common), texts.select(common)
