"""Optimisers by name. RMSprop uses Keras' defaults (rho 0.9, epsilon 1e-7), as the study did."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from sentimodal.training.config import TrainConfig


def make_optimizer(
    params: Iterable[torch.nn.Parameter], config: TrainConfig, lr: float | None = None
) -> torch.optim.Optimizer:
    lr = config.lr if lr is None else lr
    params = [p for p in params if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=lr, alpha=0.9, eps=1e-7, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(params, lr=lr, weight_decay=config.weight_decay)
