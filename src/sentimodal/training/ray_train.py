"""Data-parallel training on Ray Train: ``RunConfig(engine="ray", workers=N)``.

The driver (the process that called ``fit``) never holds the training rows. It decides which
rows each worker trains on (contiguous parts of the eligible training rows, the same count per
epoch on every worker) and hands each worker the positions of its part; every worker reads
its rows from the feature store's shards (:meth:`FeatureFolder.read_positions`), standardises
them with statistics summed over all workers, and trains a copy of the network under
DistributedDataParallel (gloo on CPU, NCCL on GPU). Each worker takes ``ceil(batch / N)`` rows
a step, so N workers together take the configured batch at the configured learning rate: the
same steps as one process (:func:`~sentimodal.training.trainer.worker_batch_size`).

After each epoch the first worker reports a checkpoint (the trainer's whole state) to Ray,
which keeps it under the output folder; a worker that dies is restarted with the others from
that checkpoint (``FailureConfig(max_failures)``), and ``train --resume`` continues from it
after the driver itself was stopped. Progress goes from the first worker through a Ray queue
to the driver, which shows it once. A network fitted in closed form (the ``image`` recipe's
logistic regression) is one full-batch problem: it is solved on one worker.
"""

from __future__ import annotations

import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sentimodal.errors import UserInputError
from sentimodal.extras import import_extra
from sentimodal.features.folder import FeatureFolder
from sentimodal.features.model_inputs import model_inputs
from sentimodal.features.store import ExtractionResult
from sentimodal.models.base import SentimentNet
from sentimodal.pool import available_cores
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.dataset_labels import soft_targets
from sentimodal.training.checkpoint import STATE_FILE, Checkpoints, read_state, state_bytes
from sentimodal.training.epoch_progress import EpochProgress, Silent, epoch_progress
from sentimodal.training.fitted import FittedState
from sentimodal.training.inputs import label_indices
from sentimodal.training.scaler import FeatureScaler
from sentimodal.training.trainer import TrainResult, fit

RESULT_FILE = "result.safetensors"
_CHECKPOINT_DIR = re.compile(r"checkpoint_[0-9_.-]+")


@dataclass
class Plan:
    """What each worker reads: row positions (in ``examples.parquet``) and labels of its
    part of train and of val, and how many training rows every worker takes an epoch."""

    folders: dict[str, str]
    train: list[np.ndarray]
    labels: list[np.ndarray]
    soft: list[np.ndarray] | None
    val: list[np.ndarray]
    val_labels: list[np.ndarray]

    @property
    def rows(self) -> int:
        return min(len(part) for part in self.train)


def _eligible(dataset: PreparedDataset, folders: Mapping[str, Path], splits: list[str]) -> Any:
    """The examples of ``splits`` that have features of every modality, in dataset order."""
    examples = dataset.examples.reset_index(drop=True)
    keep = examples["split"].isin(splits).to_numpy().copy()
    for folder in folders.values():
        have = set(FeatureFolder(folder).read_ids())
        keep &= examples["id"].astype(str).isin(have).to_numpy()
    return examples[keep]


def plan(model: FittedState, dataset: PreparedDataset, folders: Mapping[str, Path]) -> Plan:
    run = model.run_
    workers = 1 if closed_form(model.network_) else run.workers
    train = _eligible(dataset, folders, model.train_splits_)
    if len(train) < workers:
        raise UserInputError(f"{len(train)} training posts cannot be split over {workers} workers")
    ids = train["id"].astype(str).tolist()
    labels = label_indices(dataset, ids, model.labels_)
    soft = soft_targets(dataset, ids, run.head) if run.train.soft_targets else None
    parts = np.array_split(np.arange(len(train)), workers)
    validate = "val" in dataset.splits and "val" not in model.train_splits_
    val = _eligible(dataset, folders, ["val"]) if validate else train.iloc[:0]
    val_labels = label_indices(dataset, val["id"].astype(str).tolist(), model.labels_)
    val_parts = np.array_split(np.arange(len(val)), workers) if len(val) >= workers else []
    positions, val_positions = train.index.to_numpy(), val.index.to_numpy()
    return Plan(
        folders={kind: str(path) for kind, path in folders.items()},
        train=[positions[p] for p in parts],
        labels=[labels[p] for p in parts],
        soft=None if soft is None else [soft[p] for p in parts],
        val=[val_positions[p] for p in val_parts],
        val_labels=[val_labels[p] for p in val_parts],
    )


def closed_form(network: SentimentNet) -> bool:
    """Whether the network fits itself in one full-batch solve (no gradient steps)."""
    return type(network).solve is not SentimentNet.solve


def read_part(folders: Mapping[str, str], positions: np.ndarray) -> dict[str, np.ndarray]:
    """The model inputs of the rows at ``positions``, from each modality's shards."""
    parts = {}
    for kind, folder in folders.items():
        features = FeatureFolder(Path(folder)).read_positions(positions)
        parts[kind] = (features.ids, features.values, features.lengths)
    return model_inputs(parts, [str(p) for p in positions], None)


def shared_scaler(data: Mapping[str, np.ndarray], replica: Any) -> FeatureScaler:
    """Standardisation statistics of every worker's rows together (what one process would
    compute over all of them): counts and sums, then squared deviations, summed."""
    scaler = FeatureScaler()
    scaler.stats_ = {}
    for key, values in data.items():
        if not FeatureScaler._scaled(key, values):
            continue
        rows = values.reshape(-1, values.shape[-1])
        total = replica.sums([float(len(rows)), *rows.sum(axis=0, dtype=np.float64).tolist()])
        mean = np.array(total[1:]) / total[0]
        squares = np.square(rows - mean).sum(axis=0)
        std = np.sqrt(np.array(replica.sums(squares.tolist())) / total[0])
        std = np.where(std > scaler.epsilon, std, 1.0)
        scaler.stats_[key] = (mean.astype(np.float32), std.astype(np.float32))
    return scaler


class _Outputs(torch.nn.Module):
    """A network's training outputs as ``forward``, the call DistributedDataParallel wraps."""

    def __init__(self, network: SentimentNet) -> None:
        super().__init__()
        self.network = network

    def forward(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return self.network.training_outputs(batch)


class RayReplica:
    """This Ray Train worker as one of the trainer's data-parallel copies."""

    def __init__(self, rows: int) -> None:
        import ray.train
        import ray.train.torch

        context = ray.train.get_context()
        self.rank = context.get_world_rank()
        self.world_size = context.get_world_size()
        self.rows = rows
        self.device = ray.train.torch.get_device()

    def wrap(self, model: SentimentNet) -> Any:
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # a fusion may leave a part unused in a step (a gate, a missing modality's vector)
        return DistributedDataParallel(_Outputs(model), device_ids=ids, find_unused_parameters=True)

    def sums(self, values: list[float]) -> list[float]:
        import torch.distributed as dist

        if self.world_size == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64)
        if dist.get_backend() == "nccl":
            tensor = tensor.to(self.device)
        dist.all_reduce(tensor)
        return tensor.cpu().tolist()


class RayCheckpoints(Checkpoints):
    """Checkpoints reported to Ray Train by the first worker (every worker reports, as Ray
    wants); a restarted worker and ``--resume`` read the last one back from Ray."""

    def __init__(self, key: str, rank: int) -> None:
        super().__init__(Path("ray"), key, resume=True)
        self.rank = rank
        self.last: bytes | None = None

    def load(self) -> dict[str, Any] | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            path = Path(folder) / STATE_FILE
            return read_state(path, self.key) if path.is_file() else None

    def save(self, state: dict[str, Any]) -> None:
        self.last = state_bytes(state, self.key) if self.rank == 0 else None
        self._report({STATE_FILE: self.last}, {"epoch": state["epoch"]})

    def finish(self, final: dict[str, Any]) -> None:
        files = {STATE_FILE: self.last, RESULT_FILE: state_bytes(final, self.key)}
        self._report(files if self.rank == 0 else {}, {"done": 1})

    def _report(self, files: Mapping[str, bytes | None], metrics: dict[str, Any]) -> None:
        import ray.train

        if self.rank != 0:
            ray.train.report(metrics)
            return
        folder = Path(tempfile.mkdtemp(prefix="sentimodal-ckpt-"))
        try:
            for name, data in files.items():
                if data is not None:
                    (folder / name).write_bytes(data)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)


class QueueProgress:
    """The first worker's progress, sent to the driver's queue (a few messages a second)."""

    def __init__(self, queue: Any, every: float = 0.5) -> None:
        self.queue, self.every = queue, every
        self.rows, self.batches, self.last = 0, 0, 0.0

    def start(self, epoch: int, epochs: int, batches: int) -> None:
        self.queue.put(("start", epoch, epochs, batches))

    def advance(self, rows: int, loss: float, batches: int = 1) -> None:
        self.rows, self.batches = self.rows + rows, self.batches + batches
        if time.perf_counter() - self.last >= self.every:
            self.last = time.perf_counter()
            self.queue.put(("advance", self.rows, loss, self.batches))
            self.rows = self.batches = 0

    def line(self, text: str) -> None:
        self.queue.put(("line", text))

    def close(self) -> None:
        pass


def worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: read its part, train its copy, report checkpoints and result."""
    import ray.train

    torch.set_num_threads(config["threads"])
    parts: Plan = config["plan"]
    network: SentimentNet = config["network"]
    rank = ray.train.get_context().get_world_rank()
    data = read_part(parts.folders, parts.train[rank])
    replica = RayReplica(parts.rows)
    scaler = shared_scaler(data, replica)
    data = scaler.transform(data)
    val = None
    if parts.val:
        val = (scaler.transform(read_part(parts.folders, parts.val[rank])), parts.val_labels[rank])
    queue = config["queue"]
    display: EpochProgress = QueueProgress(queue) if rank == 0 and queue is not None else Silent()
    checkpoints = RayCheckpoints(config["key"], rank)
    result = fit(
        network,
        data,
        parts.labels[rank],
        val=val,
        config=config["train"],
        soft_targets=None if parts.soft is None else parts.soft[rank],
        checkpoints=checkpoints,
        replica=None if config["closed_form"] else replica,
        display=display,
        progress=False,
    )
    stats = {
        key: [torch.from_numpy(m), torch.from_numpy(s)] for key, (m, s) in scaler.stats_.items()
    }
    network.to("cpu")
    checkpoints.finish({"model": network.state_dict(), "scaler": stats, "result": result.to_dict()})


def check_address(address: str, timeout: float = 5.0) -> None:
    """Refuse an address where no Ray head listens, at once: ``ray.init`` itself retries
    for minutes (measured: over 5 minutes for a closed port)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserInputError(f"--ray-address {address!r} is not HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UserInputError(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}"
        ) from None


def check_ray(address: str | None) -> None:
    """Ray Train is installed and the cluster (when one is named) answers."""
    import_extra("ray.train.torch", "ray", "--engine ray")
    if address is not None:
        check_address(address)


def connect(address: str | None, workers: int) -> None:
    """Join the Ray cluster at ``address``, or start a local instance on loopback."""
    import ray

    if ray.is_initialized():
        return
    if address is not None:
        check_address(address)
    try:
        if address is None:
            ray.init(
                num_cpus=max(workers, available_cores()),
                include_dashboard=False,
                log_to_driver=False,
                _node_ip_address="127.0.0.1",
            )
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = address or "a local Ray instance"
        raise UserInputError(f"cannot reach the Ray cluster at {where}: {exc}") from None


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint Ray Train kept under ``folder``."""
    found = sorted(p for p in folder.glob("checkpoint_*") if _CHECKPOINT_DIR.fullmatch(p.name))
    return found[-1] if found else None


def train_on_ray(
    model: FittedState,
    dataset: PreparedDataset,
    results: Mapping[str, ExtractionResult],
    progress: bool,
    checkpoints: Checkpoints | None,
) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
    """Train ``model.network_`` (already built) on Ray Train; sets the scaler, history and
    best epoch. Returns the val inputs the driver checks the model on (read for val alone)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    run = model.run_
    if run.confident is not None:
        raise UserInputError(
            "fine-tuning on confident examples needs every training row in one process: "
            "train it with the local engine"
        )
    folders = {kind: result.directory for kind, result in results.items()}
    parts = plan(model, dataset, folders)
    connect(run.ray_address, run.workers)
    import ray.util.queue

    storage = checkpoints.folder if checkpoints is not None else None
    temporary = None
    if storage is None:
        temporary = storage = Path(tempfile.mkdtemp(prefix="sentimodal-ray-")) / "checkpoint"
    storage = storage.resolve()
    resume_from = (
        latest_checkpoint(storage) if checkpoints is not None and checkpoints.resume else None
    )
    if resume_from is None and storage.exists():
        shutil.rmtree(storage)  # a fresh run: Ray would otherwise carry on the old one
    queue = ray.util.queue.Queue() if progress else None
    single = closed_form(model.network_)
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config={
            "plan": parts,
            "network": model.network_,
            "train": run.train,
            "key": checkpoints.key if checkpoints is not None else "ray",
            "queue": queue,
            "threads": 1,
            "closed_form": single,
        },
        scaling_config=ScalingConfig(
            num_workers=1 if single else run.workers,
            use_gpu=run.worker_gpus,
            resources_per_worker={"CPU": 1},
        ),
        run_config=RunConfig(
            name=storage.name,
            storage_path=str(storage.parent),
            failure_config=FailureConfig(max_failures=run.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
        ),
        resume_from_checkpoint=None if resume_from is None else _ray_checkpoint(resume_from),
    )
    outcome = _fit_showing(trainer, queue, epoch_progress(progress))
    if outcome.error is not None:
        raise UserInputError(f"Ray training failed: {outcome.error}") from None
    with outcome.checkpoint.as_directory() as folder:
        final = read_state(Path(folder) / RESULT_FILE, checkpoints.key if checkpoints else "ray")
    if temporary is not None:
        shutil.rmtree(temporary.parent, ignore_errors=True)
    model.network_.load_state_dict(final["model"])
    model.network_.eval()
    model.scaler_ = FeatureScaler()
    model.scaler_.stats_ = {k: (m.numpy(), s.numpy()) for k, (m, s) in final["scaler"].items()}
    trained = TrainResult(**final["result"])
    model.history_, model.best_epoch_ = trained.history, trained.best_epoch
    if not parts.val:
        return None
    val = np.concatenate(parts.val)
    return model.scaler_.transform(read_part(parts.folders, val)), np.concatenate(parts.val_labels)


def _ray_checkpoint(path: Path) -> Any:
    from ray.train import Checkpoint

    return Checkpoint.from_directory(str(path))


def _fit_showing(trainer: Any, queue: Any, display: EpochProgress) -> Any:
    """``trainer.fit()`` in a thread while this one shows what the first worker sends."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = trainer.fit()
        except Exception as exc:  # Ray wraps a worker's error in its own types
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while thread.is_alive() or (queue is not None and not queue.empty()):
        if queue is None:
            thread.join(0.5)
            continue
        try:
            message = queue.get(timeout=0.5)
        except Exception:  # the queue's Empty
            continue
        kind, *args = message
        if kind == "start":
            display.start(*args)
        elif kind == "advance":
            display.advance(*args[:2], batches=args[2])
        else:
            display.line(*args)
    display.close()
    if "error" in outcome:
        raise UserInputError(f"Ray training failed: {_one_line(outcome['error'])}") from None
    return outcome["result"]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
