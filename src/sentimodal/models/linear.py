"""A linear classifier over one modality's feature vectors: the image-only default."""

from __future__ import annotations

import torch

from sentimodal.models.base import Batch, SentimentNet
from sentimodal.models.config import LinearConfig
from sentimodal.models.heads import make_head


class FeatureLinear(SentimentNet):
    """The head straight on the (standardised) features: no hidden layer.

    With a softmax head the trainer solves it as L2-regularised logistic regression, the
    strength chosen by cross-validation (:mod:`sentimodal.training.linear_fit`).
    """

    def __init__(self, config: LinearConfig) -> None:
        super().__init__(config)
        self.inputs = (config.input,)
        self.head = make_head(config, config.input_dim)

    def embed(self, batch: Batch) -> torch.Tensor:
        self.check_inputs(batch)
        return batch[self.config.input].float()
