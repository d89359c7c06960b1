"""Losses of the two heads, per example, so class weights apply the same way to all.

Softmax head: cross-entropy. Embedding head (targets are label vectors): cosine proximity
(1 - cos), mean squared error, or the DeViSE hinge rank loss, which only asks the true label
to be nearer (by cosine) than every other label by a margin. The hinge loss can also contrast
each post with a vocabulary of words (and aim at a mix of its label and words), placed by the
same vector source as the labels: see :class:`~sentimodal.training.train_config.HingeVocabulary`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sentimodal.errors import UserInputError
from sentimodal.models.base import SentimentNet
from sentimodal.models.heads import EmbeddingHead
from sentimodal.models.label_space import LabelSpace, cosine_scores
from sentimodal.training.train_config import HingeVocabulary, TrainConfig

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs, targets, reduction="none")


def cosine_proximity(
    outputs: torch.Tensor, targets: torch.Tensor, label_vectors: torch.Tensor
) -> torch.Tensor:
    return 1.0 - F.cosine_similarity(outputs, label_vectors[targets], dim=1)


def mse(outputs: torch.Tensor, targets: torch.Tensor, label_vectors: torch.Tensor) -> torch.Tensor:
    return (outputs - label_vectors[targets]).pow(2).mean(dim=1)


@dataclass
class ContrastWords:
    """A hinge vocabulary as tensors: per-label targets (L, D), unit vectors of the labels then
    the words (W, D), and which of them each label's posts are contrasted with (L, W, 0/1)."""

    targets: torch.Tensor
    words: torch.Tensor
    contrast: torch.Tensor


def hinge_rank(
    outputs: torch.Tensor,
    targets: torch.Tensor,
    label_vectors: torch.Tensor,
    margin: float,
    vocabulary: ContrastWords | None = None,
) -> torch.Tensor:
    """Sum over other labels j of max(0, margin - cos(pred, true) + cos(pred, j)).

    With a ``vocabulary``, "true" is the label's target vector and the sum also runs over the
    words the true label is contrasted with.
    """
    sims = cosine_scores(outputs, label_vectors)
    aims = label_vectors if vocabulary is None else vocabulary.targets.to(outputs)
    true = cosine_scores(outputs, aims).gather(1, targets[:, None])
    violations = F.relu(margin - true + sims)
    others = torch.ones_like(violations).scatter_(1, targets[:, None], 0.0)
    loss = (violations * others).sum(dim=1)
    if vocabulary is None:
        return loss
    word_violations = F.relu(margin - true + cosine_scores(outputs, vocabulary.words.to(outputs)))
    return loss + (word_violations * vocabulary.contrast.to(outputs)[targets]).sum(dim=1)


def contrast_words(space: LabelSpace, vocabulary: HingeVocabulary) -> ContrastWords:
    """Place a hinge vocabulary's words with the label space's source, for its labels."""
    named = set(vocabulary.negatives) | set(vocabulary.targets)
    if named - set(space.labels):
        raise UserInputError(
            f"the hinge vocabulary names labels {sorted(named - set(space.labels))} that are "
            f"not among {space.labels}"
        )
    groups = [*vocabulary.negatives.values(), *vocabulary.targets.values()]
    words = sorted({w for group in groups for w in group})
    if set(words) & set(space.labels):
        raise UserInputError(
            f"hinge vocabulary words {sorted(set(words) & set(space.labels))} are labels"
        )
    # placed together with the labels: a label space needs two entries and unique names
    placed = LabelSpace.from_source(space.source, [*space.labels, *words]).vectors
    unit = placed / np.linalg.norm(placed, axis=1, keepdims=True)
    position = {w: len(space.labels) + i for i, w in enumerate(words)}
    contrast = np.zeros((len(space), len(unit)), dtype=np.float32)
    for label, group in vocabulary.negatives.items():
        contrast[space.index(label), [position[w] for w in group]] = 1.0
    targets = unit[: len(space.labels)].copy()
    for label, group in vocabulary.targets.items():
        row = space.index(label)
        targets[row] = unit[[row, *(position[w] for w in group)]].mean(axis=0)
    return ContrastWords(
        torch.from_numpy(targets), torch.from_numpy(unit), torch.from_numpy(contrast)
    )


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
    vocabulary = None
    if config.vocabulary is not None:
        if name != "hinge":
            raise UserInputError(f"a hinge vocabulary needs the hinge loss, not {name!r}")
        vocabulary = contrast_words(_label_space(model), config.vocabulary)

    def per_example(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if name == "cross_entropy":
            return cross_entropy(outputs, targets)
        vectors = model.label_vectors().to(outputs.dtype)
        if name == "cosine":
            return cosine_proximity(outputs, targets, vectors)
        if name == "mse":
            return mse(outputs, targets, vectors)
        return hinge_rank(outputs, targets, vectors, config.margin, vocabulary)

    def loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        values = per_example(outputs, targets)
        if weights is None:
            return values.mean()
        w = weights.to(values.device)[targets]
        return (w * values).sum() / w.sum().clamp(min=1e-12)

    return loss


def _label_space(model: SentimentNet) -> LabelSpace:
    """The label space of the model's (first) embedding head; fusions share one."""
    for module in model.modules():
        if isinstance(module, EmbeddingHead) and module.label_space is not None:
            return module.label_space
    raise UserInputError("the embedding head has no label space: call set_label_space")
