"""Multilayer perceptrons: the body of the feature classifiers and of fusions' top layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sentimodal.models.base import Batch, SentimentNet
from sentimodal.models.config import MLPConfig
from sentimodal.models.heads import make_head
from sentimodal.models.registry import register_network


class MLPBody(nn.Module):
    """Linear -> ReLU -> Dropout per hidden layer; no hidden layer is the identity."""

    def __init__(
        self, in_dim: int, hidden: Sequence[int], dropout: float | Sequence[float] = 0.0
    ) -> None:
        super().__init__()
        rates = [dropout] * len(hidden) if isinstance(dropout, int | float) else list(dropout)
        if len(rates) != len(hidden):
            raise ValueError(f"{len(hidden)} hidden layers but {len(rates)} dropout rates")
        layers: list[nn.Module] = []
        size = in_dim
        for width, rate in zip(hidden, rates, strict=True):
            layers += [nn.Linear(size, width), nn.ReLU(), nn.Dropout(rate)]
            size = width
        self.layers = nn.Sequential(*layers)
        self.out_dim = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@register_network(MLPConfig, branch_of=("text", "image"))
class FeatureMLP(SentimentNet):
    """Classifier over one modality's feature vectors (the study's classical classifier).

    A grid of vectors (N, positions, dim), e.g. a CNN's map for token-level fusion, is read as
    its mean over positions: the pooled vector the CNN would have given.
    """

    def __init__(self, config: MLPConfig) -> None:
        super().__init__(config)
        self.inputs = (config.input,)
        self.body = MLPBody(config.input_dim, config.hidden, config.dropout)
        self.head = make_head(config, self.body.out_dim)

    def embed(self, batch: Batch) -> torch.Tensor:
        self.check_inputs(batch)
        x = batch[self.config.input].float()
        if x.ndim == 3:
            x = x.mean(dim=1)
        return self.body(x)
