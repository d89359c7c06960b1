"""Batch-execution engines: run the feature store's per-batch work over many batches.

The work is a plain function of a batch of rows, ``work(rows) -> BatchResult``, made of two
stages an engine may place apart: ``load`` (read, decode, transform: CPU, per item) and
``compute`` (the batched forward pass). ``LocalEngine`` runs whole batches in DataLoader worker
processes when the model runs on the CPU, or ``load`` in the workers and ``compute`` in the main
process when the model sits on an accelerator; ``RayEngine`` runs ``work(rows)`` in Ray Data
actors, on any machine. Engines only move rows and results; they know nothing about images or
texts.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import platform
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from sentimodal.errors import UserInputError
from sentimodal.extras import require_extra
from sentimodal.pool import available_cores

#: One record to featurise: plain data (``position``, ``id``, and ``image`` or ``text``), so
#: that it pickles cheaply into worker processes and converts to Ray columns.
Row = dict[str, Any]

ENGINES = ("local", "ray")


@dataclass
class BatchResult:
    """What one batch produced: features for the rows that worked, reasons for those that didn't.

    ``positions`` are the rows' positions in ``examples.parquet`` (the store's row index).
    """

    positions: np.ndarray
    values: np.ndarray
    lengths: np.ndarray | None = None
    rejects: list[Row] = field(default_factory=list)
    #: remarks on rows that worked (``position`` and plain fields, e.g. which modalities a
    #: prediction read), carried like the rows themselves
    notes: list[Row] = field(default_factory=list)

    @property
    def n_items(self) -> int:
        """Rows handled, whether featurised or rejected (what progress counts)."""
        return len(self.positions) + len(self.rejects)

    def to_columns(self, rows: Sequence[Row]) -> dict[str, np.ndarray]:
        """One output row per input row, rejects flagged by a reason (Ray wants equal lengths).

        Rejected rows carry zero features; ``from_columns`` drops them again.
        """
        index = {int(p): i for i, p in enumerate(self.positions)}
        reasons = {int(r["position"]): r["reason"] for r in self.rejects}
        values = np.zeros((len(rows), *self.values.shape[1:]), dtype=self.values.dtype)
        lengths = np.zeros(len(rows), dtype=np.int64)
        for out, row in enumerate(rows):
            i = index.get(int(row["position"]))
            if i is not None:
                values[out] = self.values[i]
                if self.lengths is not None:
                    lengths[out] = self.lengths[i]
        columns = {
            "position": np.array([int(r["position"]) for r in rows], dtype=np.int64),
            "id": np.array([str(r["id"]) for r in rows], dtype=object),
            "image": np.array([str(r.get("image") or "") for r in rows], dtype=object),
            "reason": np.array([reasons.get(int(r["position"]), "") for r in rows], dtype=object),
            "values": values,
        }
        if self.lengths is not None:
            columns["lengths"] = lengths
        if self.notes:
            notes = {int(n["position"]): json.dumps(n) for n in self.notes}
            columns["note"] = np.array(
                [notes.get(int(r["position"]), "") for r in rows], dtype=object
            )
        return columns

    @classmethod
    def from_columns(cls, columns: dict[str, np.ndarray]) -> BatchResult:
        """Inverse of ``to_columns``."""
        reasons = [str(r) for r in columns["reason"]]
        ok = np.array([not r for r in reasons], dtype=bool)
        rejects = [
            {"position": int(p), "id": str(i), "image": str(img), "reason": r}
            for p, i, img, r in zip(
                columns["position"], columns["id"], columns["image"], reasons, strict=True
            )
            if r
        ]
        lengths = columns.get("lengths")
        notes = [json.loads(str(n)) for n in columns.get("note", []) if n]
        return cls(
            positions=np.asarray(columns["position"], dtype=np.int64)[ok],
            values=np.asarray(columns["values"])[ok],
            lengths=None if lengths is None else np.asarray(lengths, dtype=np.int64)[ok],
            rejects=rejects,
            notes=notes,
        )


class BatchWork(Protocol):
    """The per-batch work, split in a CPU stage and a compute stage.

    ``parallel`` says whether worker processes are worth it at all (decoding images is;
    handing texts to an already multi-threaded encoder is not). ``compute_in_workers`` says
    where the forward pass goes when they are: in every worker (a CPU model; the workers then
    split the cores between them) or only in the main process (an accelerator, fed by the
    workers' decoding).
    """

    parallel: bool

    @property
    def compute_in_workers(self) -> bool: ...

    def load(self, rows: list[Row]) -> Any: ...

    def compute(self, loaded: Any) -> BatchResult: ...

    def __call__(self, rows: list[Row]) -> BatchResult: ...


class Engine(Protocol):
    def run(self, work: BatchWork, batches: Sequence[list[Row]]) -> Iterator[BatchResult]:
        """Yield one or more results covering every row of ``batches``."""
        ...


def compute_threads(cores: int | None = None) -> int:
    """Torch threads for a forward pass in the main process: every core.

    Used when nothing else runs beside it (no workers, or workers that only decode for an
    accelerator); CPU forward passes in workers get one thread each instead (see LocalEngine).
    """
    return max(1, cores or available_cores())


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Set torch's intra-op threads for a block, restoring the caller's setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# glibc mallopt options and their defaults (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_GLIBC_DEFAULTS = ((_M_MMAP_MAX, 65536), (_M_TRIM_THRESHOLD, 128 * 1024))
_reuse_depth = 0


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Within the block, serve large allocations from a heap that keeps freed memory (glibc).

    glibc gives every allocation above 32 MiB its own fresh mmap and unmaps it on free, so the
    activations of each batch (EfficientNet-Lite0 at batch 32: up to 150 MB per layer)
    page-fault in as zeroed pages again and again: measured 55 ms of kernel time per image,
    more than the convolutions themselves (40 ms). This is what jemalloc / tcmalloc fix for
    PyTorch on CPU; glibc's own switches do it without preloading anything. Defaults come
    back after the block (freed memory is then returned to the system again).

    The switches are process-wide, so only processes that exist for this work use it: the
    DataLoader workers (:func:`_worker_start`), never the caller's own process.
    """
    global _reuse_depth
    libc = _glibc()
    if libc is None:
        yield
        return
    if _reuse_depth == 0:
        keep_freed_memory()
    _reuse_depth += 1
    try:
        yield
    finally:
        _reuse_depth -= 1
        if _reuse_depth == 0:
            for option, value in _GLIBC_DEFAULTS:
                libc.mallopt(option, value)


def keep_freed_memory() -> None:
    """From now on, for the rest of this process, serve large allocations from a heap that
    keeps freed memory (see :func:`reuse_freed_memory`); for processes that exist for this
    work alone, such as the DataLoader workers.

    Not ``reuse_freed_memory().__enter__()``: that context object is dropped at once, and
    closing its generator restores the defaults straight away (pinning glibc's mmap
    threshold, which is worse than never setting it: 24k page faults per image, not 15k).
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_MAX, 0)
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)


def _glibc() -> ctypes.CDLL | None:
    """This process's C library when it is glibc (mallopt's options are glibc's)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)


class _WorkerBatches(Dataset):
    """Map-style dataset whose item i is batch i run through the workers' share of the work:
    all of it (``work(rows)``) or its loading stage only."""

    def __init__(self, work: BatchWork, batches: Sequence[list[Row]], whole: bool) -> None:
        self.work = work
        self.batches = batches
        self.whole = whole

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> Any:
        rows = self.batches[index]
        return self.work(rows) if self.whole else self.work.load(rows)


def _worker_start(_: int) -> None:
    """A loading worker lives for this work alone: recycle its large allocations for good."""
    keep_freed_memory()


def _as_is(item: Any) -> Any:
    """Collate nothing: a worker already returns a whole batch."""
    return item


class LocalEngine:
    """Run batches in ``workers`` DataLoader processes (in order, so shards complete in order).

    A CPU model runs whole batches in each worker, on one thread per worker (more would
    deadlock GNU OpenMP in a forked child, and one per core is the most efficient split
    anyway): on the 2-core reference machine that ran at 0.90 of the forward pass's own
    speed, where decoding in workers beside a 2-thread forward pass in the main process ran
    at 0.7, each decode burst stalling both threads of the parallel region it interrupted.
    So use about one worker per core. A model on an accelerator stays in the main process and
    the workers only decode. With ``workers=0`` (or work that is not ``parallel``) everything
    runs in the main process on ``threads`` threads (default: every core). Workers recycle
    their large allocations (``reuse_freed_memory``).
    """

    def __init__(self, workers: int = 2, threads: int | None = None, prefetch: int = 2) -> None:
        if workers < 0:
            raise UserInputError(f"workers must be >= 0, got {workers}")
        self.workers = workers
        self.threads = threads
        self.prefetch = prefetch

    def run(self, work: BatchWork, batches: Sequence[list[Row]]) -> Iterator[BatchResult]:
        threads = self.threads or compute_threads()
        with torch_threads(threads):
            if self.workers == 0 or not work.parallel or len(batches) <= 1:
                for rows in batches:
                    yield work(rows)
                return
            # asked before the workers fork: it builds the model once, and they share it
            whole = work.compute_in_workers
            loader = DataLoader(
                _WorkerBatches(work, batches, whole),
                batch_size=None,
                shuffle=False,
                num_workers=min(self.workers, len(batches)),
                collate_fn=_as_is,
                prefetch_factor=self.prefetch,
                worker_init_fn=_worker_start,
            )
            for item in loader:
                yield item if whole else work.compute(item)


class _RayBatchActor:
    """Ray Data callable class: keeps the work (and its model) resident in one actor."""

    def __init__(self, work: BatchWork, threads: int) -> None:
        self.work = work
        # one actor per core, like the local engine's workers: more threads per actor only
        # make the actors' parallel regions fight over the same cores
        torch.set_num_threads(threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = list(batch)
        columns = [batch[name] for name in names]
        rows = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
        return self.work(rows).to_columns(rows)


class RayEngine:
    """Run ``work(rows)`` with Ray Data across a Ray cluster (``address``) or a local one.

    Optional: needs the ``ray`` extra (``pip install 'sentimodal[ray]'``).
    """

    def __init__(self, workers: int = 2, address: str | None = None) -> None:
        self.workers = max(1, workers)
        self.address = address

    def run(self, work: BatchWork, batches: Sequence[list[Row]]) -> Iterator[BatchResult]:
        ray = _import_ray()
        if not batches:
            return
        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False  # the feature store shows its own
        rows = [row for batch in batches for row in batch]
        dataset = ray.data.from_items(rows).map_batches(
            _RayBatchActor,
            fn_constructor_args=(work, 1),
            batch_size=max(len(batch) for batch in batches),
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.workers),
        )
        for columns in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            yield BatchResult.from_columns(columns)


def _import_ray() -> Any:
    require_extra("ray", "the 'ray' engine")
    import ray

    return ray


def get_engine(name: str, workers: int = 2, address: str | None = None) -> Engine:
    """The engine called ``name`` (``local`` or ``ray``; ``address``: a running Ray cluster)."""
    if address is not None and name != "ray":
        raise UserInputError("a Ray address needs the ray engine (--engine ray)")
    if name == "local":
        return LocalEngine(workers=workers)
    if name == "ray":
        _import_ray()
        return RayEngine(workers=workers, address=address)
    raise UserInputError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
