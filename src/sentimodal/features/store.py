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

import math
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError

from sentimodal.config import Config, validation_message
from sentimodal.devices import Device, resolve_device
from sentimodal.errors import UserInputError
from sentimodal.features.batch_work import ImageBatchWork, TextBatchWork, is_token_encoder
from sentimodal.features.defaults import (
    DEFAULT_IMAGE_ENCODER,
    FEATURE_BATCH_SIZE,
    FEATURE_WORKERS,
    FROZEN_TEXT_ENCODER,
)
from sentimodal.features.engine import BatchResult, BatchWork, Engine, Row, get_engine
from sentimodal.features.folder import FEATURES_DIR, FeatureFolder
from sentimodal.features.image_encoders import get_image_encoder
from sentimodal.features.image_encoders.base import ImageEncoder
from sentimodal.features.keys import STORE_FORMAT, STORE_VERSION, examples_fingerprint, feature_key
from sentimodal.features.text_encoders import get_text_encoder
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.files import folder_lock
from sentimodal.net import FetchPolicy
from sentimodal.preparation.dataset import PreparedDataset, as_dataset, image_or_none
from sentimodal.progress import progress_bar

#: Splits whose texts the ``tokens`` vocabulary is learned from, in order of preference
#: (``all`` is the only split of an unsplit dataset).
FIT_SPLITS = ("train", "all")


class FeatureConfig(Config):
    """Settings of one ``extract_features`` run (saved in each feature folder's meta.json)."""

    image: str | None = DEFAULT_IMAGE_ENCODER
    text: str | None = FROZEN_TEXT_ENCODER
    image_config: dict[str, Any] = Field(default_factory=dict)
    text_config: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = Field(FEATURE_BATCH_SIZE, ge=1)
    workers: int = Field(FEATURE_WORKERS, ge=0)
    dtype: Literal["float32", "float16"] = "float32"
    engine: Literal["local", "ray"] = "local"
    #: a running Ray cluster to use (``ray start --head`` prints it); None starts a local one
    ray_address: str | None = None
    #: let image URLs reach loopback / private / link-local addresses (see sentimodal.net)
    allow_private_addresses: bool = False
    #: rows per shard: what a killed run can lose at most
    shard_size: int = Field(512, ge=1)
    #: where the encoders' networks run (see sentimodal.devices); not part of the cache key:
    #: features do not depend on it beyond rounding
    device: Device = "auto"


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
    image: str | ImageEncoder | None = DEFAULT_IMAGE_ENCODER,
    text: str | TextEncoder | None = FROZEN_TEXT_ENCODER,
    image_config: dict[str, Any] | None = None,
    text_config: dict[str, Any] | None = None,
    batch_size: int = FEATURE_BATCH_SIZE,
    workers: int = FEATURE_WORKERS,
    dtype: str = "float32",
    engine: str = "local",
    shard_size: int = 512,
    progress: bool = True,
    ray_address: str | None = None,
    allow_private_addresses: bool = False,
    device: str = "auto",
) -> dict[str, ExtractionResult]:
    """Compute (or find cached) features of every example, per modality; ``None`` skips one.

    Encoders are registry names (built with ``image_config`` / ``text_config``) or ready
    instances (a custom or fine-tuned encoder). Rows without an image (or with an empty text)
    are simply not featurised for that modality; images that fail to decode go to the
    folder's rejects.csv. Image URLs are fetched by :func:`sentimodal.net.fetch`, refusing
    non-public addresses unless ``allow_private_addresses``. Returns ``{kind: result}``.
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
            ray_address=ray_address,
            allow_private_addresses=allow_private_addresses,
            device=device,
        )
    except ValidationError as exc:
        raise UserInputError(validation_message(exc, "invalid feature setting ")) from None
    data = as_dataset(dataset)
    if data.root is None:
        raise UserInputError("the dataset has no directory: save it before extracting features")
    runner = get_engine(config.engine, workers=config.workers, address=config.ray_address)
    results: dict[str, ExtractionResult] = {}
    if config.image:
        encoder = image_encoder or get_image_encoder(config.image, **config.image_config).to(
            resolve_device(config.device)
        )
        fetch = FetchPolicy(allow_private=config.allow_private_addresses)
        results["image"] = _extract(
            data, _image_plan(data, encoder, config.dtype, fetch), config, runner, progress
        )
    if config.text:
        encoder = text_encoder or get_text_encoder(config.text, **config.text_config).to(
            resolve_device(config.device)
        )
        results["text"] = _extract(
            data, _text_plan(data, encoder, config.dtype), config, runner, progress
        )
    return results


def _image_plan(
    data: PreparedDataset, encoder: ImageEncoder, dtype: str, fetch: FetchPolicy
) -> _Plan:
    examples = data.examples
    images = [image_or_none(v) for v in examples["image"].tolist()]
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
        work=ImageBatchWork(encoder, fetch),
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
    with folder_lock(folder.path):  # a second extraction into this folder fails at once
        return _extract_locked(data, plan, config, runner, progress, folder, started)


def _extract_locked(
    data: PreparedDataset,
    plan: _Plan,
    config: FeatureConfig,
    runner: Engine,
    progress: bool,
    folder: FeatureFolder,
    started: float,
) -> ExtractionResult:
    key = plan.key
    if folder.complete:  # finished by the run that held the lock before us
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
    with progress_bar(progress) as bar:
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
