"""A linear classifier over one modality's feature vectors: the image-only default."""

from __future__ import annotations

import torch

from sentimodal.models.base import Batch, SentimentNet, Solved
from sentimodal.models.config import LinearConfig
from sentimodal.models.heads import make_head
from sentimodal.models.logistic import fit_linear
from sentimodal.models.registry import register_network


@register_network(LinearConfig)
class FeatureLinear(SentimentNet):
    """The head straight on the (standardised) features: no hidden layer.

    With a softmax head the trainer solves it as L2-regularised logistic regression, the
    strength chosen by cross-validation (:mod:`sentimodal.models.logistic`).
    """

    def solve(
        self, data: Batch, labels: torch.Tensor, *, seed: int, sample_weight: torch.Tensor | None
    ) -> Solved | None:
        """A softmax layer is a convex problem: solved to convergence, its L2 strength
        chosen by CV on the training data (the optimiser and epoch settings do not apply)."""
        settings = self.config
        if settings.head != "softmax":
            return None
        fitted = fit_linear(
            data[settings.input].double(),
            labels,
            settings.n_classes,
            settings.c_values,
            folds=settings.cv_folds,
            seed=seed,
            sample_weight=sample_weight,
            max_iter=settings.max_iter,
            select=settings.select,
            one_se=settings.one_standard_error,
        )
        with torch.no_grad():
            self.head.linear.weight.copy_(fitted.weight)
            self.head.linear.bias.copy_(fitted.bias)
        record = {"c": fitted.c}
        if fitted.cv_accuracy:
            record["cv_accuracy"] = fitted.cv_accuracy[fitted.c]
        how = f"{settings.cv_folds}-fold CV {settings.select}" if fitted.cv_loss else "given"
        return Solved(record, f"linear classifier: C={fitted.c:g} ({how})")

    def __init__(self, config: LinearConfig) -> None:
        super().__init__(config)
        self.inputs = (config.input,)
        self.head = make_head(config, config.input_dim)

    def embed(self, batch: Batch) -> torch.Tensor:
        self.check_inputs(batch)
        return batch[self.config.input].float()
