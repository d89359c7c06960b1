"""Losses of the two heads, per example, so class weights apply the same way to all.

Softmax head: cross-entropy. Embedding head (targets are label vectors): cosine proximity
(1 - cos), mean squared error, or the DeViSE hinge rank loss, which only asks the true label
to be nearer (by cosine) than every other label by a margin.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from sentimodal.errors import UserInputError
from sentimodal.models.base import SentimentNet
from sentimodal.models.label_space import cosine_scores
from sentimodal.training.config import TrainConfig

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs, targets, reduction="none")


def cosine_proximity(
    outputs: torch.Tensor, targets: torch.Tensor, label_vectors: torch.Tensor
) -> torch.Tensor:
    return 1.0 - F.cosine_similarity(outputs, label_vectors[targets], dim=1)


def mse(outputs: torch.Tensor, targets: torch.Tensor, label_vectors: torch.Tensor) -> torch.Tensor:
    return (outputs - label_vectors[targets]).pow(2).mean(dim=1)


def hinge_rank(
    outputs: torch.Tensor, targets: torch.Tensor, label_vectors: torch.Tensor, margin: float
) -> torch.Tensor:
    """Sum over other labels j of max(0, margin - cos(pred, true) + cos(pred, j))."""
    sims = cosine_scores(outputs, label_vectors)
    true = sims.gather(1, targets[:, None])
    violations = F.relu(margin - true + sims)
    others = torch.ones_like(violations).scatter_(1, targets[:, None], 0.0)
    return (violations * others).sum(dim=1)


def class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Balanced weights n / (classes * count); an absent class gets weight 0 (it never occurs)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def resolve_loss(config: TrainConfig, head: str) -> str:
    """The loss name a run uses, checked against the head (cross-entropy needs logits)."""
    loss = config.loss or ("cross_entropy" if head == "softmax" else "cosine")
    if (loss == "cross_entropy") != (head == "softmax"):
        raise UserInputError(
            f"loss {loss!r} does not fit a {head} head: softmax heads use cross_entropy, "
            f"embedding heads use cosine, mse or hinge"
        )
    return loss


def make_loss(
    model: SentimentNet, config: TrainConfig, weights: torch.Tensor | None = None
) -> LossFn:
    """(outputs, int targets) -> scalar loss: the per-example loss, weighted mean by class."""
    name = resolve_loss(config, model.head_kind)

    def per_example(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if name == "cross_entropy":
            return cross_entropy(outputs, targets)
        vectors = model.label_vectors().to(outputs.dtype)
        if name == "cosine":
            return cosine_proximity(outputs, targets, vectors)
        if name == "mse":
            return mse(outputs, targets, vectors)
        return hinge_rank(outputs, targets, vectors, config.margin)

    def loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        values = per_example(outputs, targets)
        if weights is None:
            return values.mean()
        w = weights.to(values.device)[targets]
        return (w * values).sum() / w.sum().clamp(min=1e-12)

    return loss
