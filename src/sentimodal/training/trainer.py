"""The training loop: seeded, length-bucketed batches, early stopping on validation, history.

``fit`` trains any :class:`~sentimodal.models.base.SentimentNet` on in-memory arrays and
integer labels (indices into the model's classes or label space). With the same seed on CPU,
two runs give identical weights: the global RNG is seeded inside a forked RNG state (dropout),
and batch order comes from a private generator.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import TextColumn

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
from sentimodal.progress import progress_bar, stderr
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
) -> dict[str, float]:
    """Loss and accuracy of the model on prepared tensors (one forward pass)."""
    device = module_device(model)
    outputs = run_batched(
        model, data, model, config.eval_batch_size, trim=config.length_batching != "none"
    ).to(device)
    labels = labels.to(device)
    with torch.no_grad():
        loss = float(loss_fn(outputs, labels))
        accuracy = float((model.scores_of(outputs).argmax(dim=1) == labels).float().mean())
    return {"val_loss": loss, "val_accuracy": accuracy}


def _improved(score: float, best: float | None, monitor: str) -> bool:
    if best is None:
        return True
    return score > best if monitor == "val_accuracy" else score < best


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
    hard labels still drive accuracy and early stopping.
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
    weights = class_weights(y.numpy(), count) if config.class_weight == "balanced" else None
    soft = None if soft_targets is None else torch.as_tensor(soft_targets, dtype=torch.float32)
    if soft is not None and (soft.shape != (len(y), count) or weights is not None):
        raise UserInputError(f"soft targets must be ({len(y)}, {count}), without class weights")
    loss_fn = make_loss(model, config, weights)
    val_data = None
    if val is not None:
        val_tensors = as_tensors(val[0])
        val_data = (val_tensors, as_labels(val[1], n_examples(val_tensors)))

    if soft is None:
        start = time.perf_counter()
        solved = model.solve(
            train, y, seed=config.seed, sample_weight=None if weights is None else weights[y]
        )
        if solved is not None:
            return _solved(
                model, solved, train, y, val_data, config, loss_fn, progress, console, start
            )

    if device is not None:
        model.to(device)
    device = module_device(model)
    trim = config.length_batching != "none"
    lengths = sequence_lengths(train) if config.length_batching == "bucket" else None
    console = console or stderr
    result = TrainResult()
    best_score: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    waited = 0

    with (
        torch.random.fork_rng(devices=[]),
        progress_bar(
            progress,
            unit="batches",
            transient=True,
            extra=(TextColumn("loss {task.fields[loss]:.4f}"),),
            console=console,
        ) as bar,
    ):
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        optimizer = make_optimizer(model, config, lr)
        scheduler = None
        for epoch in range(1, config.epochs + 1):
            start = time.perf_counter()
            batches = epoch_batches(
                len(y), config.batch_size, generator, lengths, config.bucket_chunk
            )
            if scheduler is None:
                scheduler = make_scheduler(optimizer, config, config.epochs * len(batches))
            task = bar.add_task(f"epoch {epoch}/{config.epochs}", total=len(batches), loss=0.0)
            model.train()
            total, seen = 0.0, 0
            for index in batches:
                batch = to_device(take(train, index, trim=trim), device)
                target = (y[index] if soft is None else soft[index]).to(device)
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, config.mixed_precision):
                    outputs = model.training_outputs(batch)
                loss = sum(loss_fn(out.float(), target) for out in outputs)
                loss.backward()
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(index)
                seen += len(index)
                bar.update(task, advance=1, loss=total / seen)
            bar.remove_task(task)
            record: dict[str, float] = {"epoch": epoch, "train_loss": total / seen}
            if val_data is not None:
                record.update(evaluate_outputs(model, *val_data, loss_fn, config))
            record["seconds"] = time.perf_counter() - start
            result.history.append(record)
            if progress:
                console.print(_epoch_line(record, config.epochs))

            if val_data is None:
                continue
            score = record[config.monitor]
            if _improved(score, best_score, config.monitor):
                best_score, result.best_epoch, waited = score, epoch, 0
                if config.restore_best:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                waited += 1
                if config.patience is not None and waited >= config.patience:
                    result.stopped_early = epoch < config.epochs
                    break

    if progress and result.best_epoch is not None:
        how = "stopped early" if result.stopped_early else "trained"
        console.print(
            f"{how} after {len(result.history)} of {config.epochs} epochs; "
            f"best epoch {result.best_epoch} ({config.monitor} {best_score:.4f})"
            + (", its weights kept" if config.restore_best else "")
        )
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result


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
