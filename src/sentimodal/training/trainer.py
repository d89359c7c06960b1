"""The training loop: seeded, length-bucketed batches, early stopping on validation, history.

``fit`` trains any :class:`~sentimodal.models.base.SentimentNet` on in-memory arrays and
integer labels (indices into the model's classes or label space). With the same seed on CPU,
two runs give identical weights: the global RNG is seeded inside a forked RNG state (dropout),
and batch order comes from a private generator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from rich.console import Console

from sentimodal.devices import autocast, module_device
from sentimodal.errors import UserInputError
from sentimodal.models.base import SentimentNet, Solved
from sentimodal.models.batches import (
    Data,
    as_labels,
    as_tensors,
    epoch_batches,
    n_examples,
    sequence_lengths,
    take,
    to_device,
)
from sentimodal.models.forward import run_batched
from sentimodal.progress import stderr
from sentimodal.training.checkpoint import Checkpoints
from sentimodal.training.epoch_progress import EpochProgress, epoch_progress
from sentimodal.training.losses import LossFn, class_weights, make_loss, resolve_loss
from sentimodal.training.optim import make_optimizer, make_scheduler
from sentimodal.training.train_config import TrainConfig

Labels = np.ndarray | torch.Tensor | list[int]


@dataclass
class TrainResult:
    """Per-epoch history (dicts of plain numbers) and the best validation epoch (1-based;
    None without validation), whose weights the model ends with when ``restore_best``."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def n_labels(model: SentimentNet) -> int:
    """How many labels the model scores: its classes, or the labels of its label space."""
    if model.head_kind == "embedding":
        return int(model.label_vectors().shape[0])
    return model.config.n_classes


def evaluate_outputs(
    model: SentimentNet,
    data: dict[str, torch.Tensor],
    labels: torch.Tensor,
    loss_fn: LossFn,
    config: TrainConfig,
    replica: Replica | None = None,
) -> dict[str, float]:
    """Loss and accuracy of the model on prepared tensors (one forward pass, on the model's
    device); a replica's over every copy's part of the validation rows."""
    device = module_device(model)
    outputs = run_batched(
        model, data, model, config.eval_batch_size, trim=config.length_batching != "none"
    ).to(device)
    labels = labels.to(device)
    with torch.no_grad():
        loss = float(loss_fn(outputs, labels))
        accuracy = float((model.scores_of(outputs).argmax(dim=1) == labels).float().mean())
    if replica is not None:
        n = len(labels)
        loss_sum, correct, total = replica.sums([loss * n, accuracy * n, float(n)])
        loss, accuracy = loss_sum / total, correct / total
    return {"val_loss": loss, "val_accuracy": accuracy}


def _improved(score: float, best: float | None, monitor: str) -> bool:
    if best is None:
        return True
    return score > best if monitor == "val_accuracy" else score < best


class Replica(Protocol):
    """One of ``world_size`` data-parallel copies of a training run (a Ray Train worker):
    each trains on its own part of the rows, ``rows`` of them an epoch (the same count on
    every copy, so that all take the same number of steps), its gradients averaged with the
    others' (``wrap``: DistributedDataParallel); ``sums`` adds numbers across the copies."""

    rank: int
    world_size: int
    rows: int
    device: torch.device

    def wrap(self, model: SentimentNet) -> Callable[[dict[str, torch.Tensor]], Any]: ...

    def sums(self, values: list[float]) -> list[float]: ...


def worker_batch_size(batch_size: int, workers: int) -> int:
    """Each of ``workers`` copies takes this many rows a step: together the configured
    batch, so that N workers take the steps one process would, at the same learning rate."""
    return max(1, -(-batch_size // workers))


def fit(
    model: SentimentNet,
    data: Data,
    labels: Labels,
    *,
    val: tuple[Data, Labels] | None = None,
    config: TrainConfig | None = None,
    lr: float | None = None,
    progress: bool = True,
    console: Console | None = None,
    soft_targets: np.ndarray | None = None,
    checkpoints: Checkpoints | None = None,
    replica: Replica | None = None,
    display: EpochProgress | None = None,
    device: torch.device | None = None,
) -> TrainResult:
    """Train ``model`` in place; returns the history. ``lr`` overrides the config's rate.

    Gradient steps run on ``device`` (None: where the model is), the model moved there, each
    batch moved as it is taken; ``mixed_precision`` runs the forward passes in bfloat16 on
    CUDA.

    With ``val``, each epoch reports validation loss and accuracy, training stops after
    ``patience`` epochs without improvement of ``monitor``, and (``restore_best``) the model
    ends with the best epoch's weights. ``soft_targets`` (N, classes), rows summing to 1,
    replace the hard labels in the training loss (cross-entropy to a distribution); the
    hard labels still drive accuracy and early stopping. With ``checkpoints``, the whole
    state is saved after every epoch and, when resuming, training continues from the saved
    one: the same weights as a run that was never stopped. With ``replica``, this process is
    one of several data-parallel copies (see :class:`Replica`).
    """
    config = config or TrainConfig()
    resolve_loss(config, model.head_kind)
    train = as_tensors(data)
    y = as_labels(labels, n_examples(train))
    count = n_labels(model)
    if len(y) == 0:
        raise UserInputError("no training examples")
    if int(y.min()) < 0 or int(y.max()) >= count:
        raise UserInputError(f"labels must be class indices in [0, {count}); got {y.unique()}")
    weights = _class_weights(y, count, replica) if config.class_weight == "balanced" else None
    soft = None if soft_targets is None else torch.as_tensor(soft_targets, dtype=torch.float32)
    if soft is not None and (soft.shape != (len(y), count) or weights is not None):
        raise UserInputError(f"soft targets must be ({len(y)}, {count}), without class weights")
    loss_fn = make_loss(model, config, weights)
    val_data = None
    if val is not None:
        val_tensors = as_tensors(val[0])
        val_data = (val_tensors, as_labels(val[1], n_examples(val_tensors)))

    if soft is None and replica is None:
        start = time.perf_counter()
        solved = model.solve(
            train, y, seed=config.seed, sample_weight=None if weights is None else weights[y]
        )
        if solved is not None:
            return _solved(
                model, solved, train, y, val_data, config, loss_fn, progress, console, start
            )

    if replica is not None:
        device = replica.device
    if device is not None:
        model.to(device)
    device = module_device(model)
    trim = config.length_batching != "none"
    lengths = sequence_lengths(train) if config.length_batching == "bucket" else None
    display = display or epoch_progress(progress, console)
    forward = replica.wrap(model) if replica is not None else model.training_outputs
    world = replica.world_size if replica is not None else 1
    batch_size = worker_batch_size(config.batch_size, world)
    rows = replica.rows if replica is not None else len(y)
    result = TrainResult()
    best: dict[str, Any] = {"score": None, "state": None, "waited": 0}

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + (replica.rank if replica is not None else 0))
        generator = torch.Generator().manual_seed(config.seed)
        optimizer = make_optimizer(model, config, lr)
        steps = len(epoch_batches(rows, batch_size, torch.Generator(), None))
        scheduler = make_scheduler(optimizer, config, config.epochs * steps)
        first = 1
        saved = checkpoints.load() if checkpoints is not None else None
        if saved is not None:
            first = _restore(saved, model, optimizer, scheduler, generator, result, best)
            display.line(f"resumed after epoch {first - 1} ({checkpoints.path})")
        for epoch in range(first, config.epochs + 1) if not best.get("done") else ():
            start = time.perf_counter()
            subset = torch.randperm(len(y), generator=generator)[:rows] if world > 1 else None
            part = lengths if subset is None or lengths is None else lengths[subset]
            batches = epoch_batches(rows, batch_size, generator, part, config.bucket_chunk)
            if subset is not None:
                batches = [subset[index] for index in batches]
            display.start(epoch, config.epochs, len(batches))
            model.train()
            total, seen = 0.0, 0
            for index in batches:
                batch = to_device(take(train, index, trim=trim), device)
                target = (y[index] if soft is None else soft[index]).to(device)
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, config.mixed_precision):
                    outputs = forward(batch)
                loss = sum(loss_fn(out.float(), target) for out in outputs)
                loss.backward()
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(index)
                seen += len(index)
                display.advance(len(index) * world, total / seen)
            record: dict[str, float] = {"epoch": epoch, "train_loss": total / seen}
            if replica is not None:
                record["train_loss"] = replica.sums([total])[0] / (seen * world)
            if val_data is not None:
                record.update(evaluate_outputs(model, *val_data, loss_fn, config, replica))
            record["seconds"] = time.perf_counter() - start
            result.history.append(record)
            display.line(_epoch_line(record, config.epochs))
            stop = val_data is not None and _stop(record, epoch, model, config, result, best)
            best["done"] = stop or epoch == config.epochs
            if checkpoints is not None:
                checkpoints.save(
                    _state(epoch, model, optimizer, scheduler, generator, result, best)
                )
            if stop:
                break

    if result.best_epoch is not None:
        how = "stopped early" if result.stopped_early else "trained"
        display.line(
            f"{how} after {len(result.history)} of {config.epochs} epochs; "
            f"best epoch {result.best_epoch} ({config.monitor} {best['score']:.4f})"
            + (", its weights kept" if config.restore_best else "")
        )
    display.close()
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    return result


def _class_weights(y: torch.Tensor, count: int, replica: Replica | None) -> torch.Tensor:
    """Balanced class weights from every copy's labels, not only this one's."""
    if replica is None:
        return class_weights(y.numpy(), count)
    counts = replica.sums(np.bincount(y.numpy(), minlength=count).astype(float).tolist())
    present = [c > 0 for c in counts]
    total, classes = sum(counts), sum(present)
    return torch.tensor(
        [total / (classes * c) if c > 0 else 0.0 for c in counts], dtype=torch.float32
    )


def _stop(
    record: dict[str, float],
    epoch: int,
    model: SentimentNet,
    config: TrainConfig,
    result: TrainResult,
    best: dict[str, Any],
) -> bool:
    """Keep the best epoch (and its weights); whether patience has run out."""
    score = record[config.monitor]
    if _improved(score, best["score"], config.monitor):
        best["score"], result.best_epoch, best["waited"] = score, epoch, 0
        if config.restore_best:
            best["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return False
    best["waited"] += 1
    if config.patience is not None and best["waited"] >= config.patience:
        result.stopped_early = epoch < config.epochs
        return True
    return False


def _state(
    epoch: int,
    model: SentimentNet,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    result: TrainResult,
    best: dict[str, Any],
) -> dict[str, Any]:
    """Everything the next epoch depends on, as a checkpoint holds it."""
    return {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "batches": generator.get_state()},
        "result": result.to_dict(),
        "best": best,
    }


def _restore(
    saved: dict[str, Any],
    model: SentimentNet,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    result: TrainResult,
    best: dict[str, Any],
) -> int:
    """Put a checkpoint's state back; returns the first epoch still to train."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"]["torch"])
    generator.set_state(saved["rng"]["batches"])
    result.history = list(saved["result"]["history"])
    result.best_epoch = saved["result"]["best_epoch"]
    result.stopped_early = bool(saved["result"]["stopped_early"])
    best.update(saved["best"])
    return int(saved["epoch"]) + 1


def _solved(
    model: SentimentNet,
    solved: Solved,
    train: dict[str, torch.Tensor],
    y: torch.Tensor,
    val: tuple[dict[str, torch.Tensor], torch.Tensor] | None,
    config: TrainConfig,
    loss_fn: LossFn,
    progress: bool,
    console: Console | None,
    start: float,
) -> TrainResult:
    """The one-epoch history of a network the network fitted itself (``SentimentNet.solve``)."""
    model.eval()
    with torch.no_grad():
        record: dict[str, float] = {"epoch": 1, "train_loss": float(loss_fn(model(train), y))}
    record.update(solved.record)
    if val is not None:
        record.update(evaluate_outputs(model, *val, loss_fn, config))
    record["seconds"] = time.perf_counter() - start
    if progress:
        (console or stderr).print(solved.summary)
        (console or stderr).print(_epoch_line(record, 1))
    return TrainResult(history=[record], best_epoch=1 if val is not None else None)


def _epoch_line(record: dict[str, float], epochs: int) -> str:
    parts = [f"epoch {int(record['epoch'])}/{epochs}", f"train_loss {record['train_loss']:.4f}"]
    if "val_loss" in record:
        parts += [f"val_loss {record['val_loss']:.4f}", f"val_acc {record['val_accuracy']:.4f}"]
    parts.append(f"{record['seconds']:.1f}s")
    return "  ".join(parts)
