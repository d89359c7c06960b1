"""The study's small CNN trained from scratch on 32x32 images (the ``pixels32`` encoder)."""

from __future__ import annotations

import torch
from torch import nn

from sentimodal.errors import UserInputError
from sentimodal.models.base import Batch, SentimentNet
from sentimodal.models.config import PixelCNNConfig
from sentimodal.models.heads import make_head
from sentimodal.models.mlp import MLPBody
from sentimodal.models.registry import register_network


@register_network(PixelCNNConfig, branch_of=("image",))
class PixelCNN(SentimentNet):
    """conv(96) -> max-pool -> batch-norm -> conv(256) -> max-pool -> batch-norm -> dense -> head.

    Convolutions keep the spatial size ("same" padding) and use ReLU; each max-pool halves it,
    so a 32x32 image ends as 256 maps of 8x8 before the dense layers.
    """

    inputs = ("image",)

    def __init__(self, config: PixelCNNConfig) -> None:
        super().__init__(config)
        first, second = config.channels
        pad = config.kernel_size // 2
        self.features = nn.Sequential(
            nn.Conv2d(3, first, config.kernel_size, padding=pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(first),
            nn.Conv2d(first, second, config.kernel_size, padding=pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(second),
            nn.Flatten(),
        )
        side = config.image_size // 2 // 2
        self.body = MLPBody(second * side * side, config.hidden, config.dropout)
        self.head = make_head(config, self.body.out_dim)

    def embed(self, batch: Batch) -> torch.Tensor:
        self.check_inputs(batch)
        images = batch["image"]
        size = self.config.image_size
        if images.ndim == 2 and images.shape[1] == 3 * size * size:
            # pixels32 stores flattened (channel-major) pixels by default
            images = images.view(-1, 3, size, size)
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
            raise UserInputError(
                f"the pixel CNN reads images of shape (N, 3, {size}, {size}) or flattened "
                f"(N, {3 * size * size}) (the 'pixels32' encoder), not {tuple(images.shape)}"
            )
        return self.body(self.features(images.float()))
