"""The two ways a model ends: class logits (softmax) or a vector in a label space (embedding).

Every model body produces a representation; the head turns it into outputs, and ``scores``
turns outputs into per-label scores: class probabilities, or cosine similarities to the label
vectors. Keeping this split lets every body (MLP, BiLSTM, CNN, fusions) use either head.
"""

from __future__ import annotations

import torch
from torch import nn

from sentimodal.errors import UserInputError
from sentimodal.models.config import ModelConfig
from sentimodal.models.label_space import LabelSpace, cosine_scores


class SoftmaxHead(nn.Module):
    """Linear layer to class logits; scores are softmax probabilities."""

    kind = "softmax"

    def __init__(self, in_dim: int, n_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, n_classes)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden)

    def scores(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.softmax(dim=1)


class EmbeddingHead(nn.Module):
    """Linear projection into a label-vector space (DeViSE-style); scores are cosines.

    The label vectors are not learned and not saved with the weights (they live in
    ``labels.json``), so a trained head can be given another label space of the same source.
    """

    kind = "embedding"

    def __init__(self, in_dim: int, label_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, label_dim)
        self.label_space: LabelSpace | None = None
        self.register_buffer("label_vectors", torch.empty(0, label_dim), persistent=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden)

    def set_label_space(self, space: LabelSpace) -> None:
        if space.dim != self.linear.out_features:
            raise UserInputError(
                f"label vectors of dimension {space.dim} do not fit a head trained for "
                f"dimension {self.linear.out_features}"
            )
        self.label_space = space
        self.label_vectors = space.tensor().to(self.linear.weight.device)

    def require_label_vectors(self) -> torch.Tensor:
        if self.label_space is None:
            raise UserInputError("the embedding head has no label space: call set_label_space")
        return self.label_vectors

    def scores(self, outputs: torch.Tensor) -> torch.Tensor:
        return cosine_scores(outputs, self.require_label_vectors().to(outputs.dtype))


Head = SoftmaxHead | EmbeddingHead


def make_head(config: ModelConfig, in_dim: int) -> Head:
    """The head a config asks for, on top of a representation of size ``in_dim``."""
    if config.head == "embedding":
        assert config.label_dim is not None  # guaranteed by ModelConfig validation
        return EmbeddingHead(in_dim, config.label_dim)
    return SoftmaxHead(in_dim, config.n_classes)
