"""Optimisers and learning-rate schedules by name.

RMSprop uses Keras' defaults (rho 0.9, epsilon 1e-7), as the study did. A model's pretrained
backbone (:meth:`SentimentNet.backbone_parameters`) gets its own, smaller learning rate.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from sentimodal.models.base import SentimentNet
from sentimodal.training.train_config import TrainConfig


def parameter_groups(
    params: SentimentNet | Iterable[torch.nn.Parameter], config: TrainConfig, lr: float
) -> list[dict[str, Any]]:
    """Trainable parameters as optimiser groups: the backbone at ``backbone_lr`` (scaled like
    ``lr`` when ``lr`` overrides the config's rate), everything else at ``lr``."""
    if not isinstance(params, SentimentNet):
        return [{"params": [p for p in params if p.requires_grad], "lr": lr}]
    backbone = [p for p in params.backbone_parameters() if p.requires_grad]
    in_backbone = {id(p) for p in backbone}
    rest = [p for p in params.parameters() if p.requires_grad and id(p) not in in_backbone]
    groups = [{"params": rest, "lr": lr}]
    if backbone:
        groups.append({"params": backbone, "lr": config.backbone_lr * lr / config.lr})
    return [group for group in groups if group["params"]]


def make_optimizer(
    params: SentimentNet | Iterable[torch.nn.Parameter],
    config: TrainConfig,
    lr: float | None = None,
) -> torch.optim.Optimizer:
    """The configured optimiser over a model (backbone at its own rate) or plain parameters."""
    lr = config.lr if lr is None else lr
    groups = parameter_groups(params, config, lr)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            groups, lr=lr, alpha=0.9, eps=1e-7, weight_decay=config.weight_decay
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(groups, lr=lr, weight_decay=config.weight_decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step schedule over ``total_steps`` optimiser steps (constant, or linear warmup
    then linear decay to 0)."""
    if config.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    total = max(1, total_steps)
    warmup = int(config.warmup * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
