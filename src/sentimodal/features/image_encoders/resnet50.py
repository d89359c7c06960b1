"""``resnet50``: the study's ResNet-50 backbone; features are the global average pool (2048-d)."""

from __future__ import annotations

from torch import nn

from sentimodal.features.image_encoders.base import BackboneEncoder
from sentimodal.features.image_encoders.registry import register_image_encoder


@register_image_encoder
class ResNet50Encoder(BackboneEncoder):
    name = "resnet50"
    dim = 2048

    def build(self) -> nn.Module:
        import torchvision.models

        return torchvision.models.resnet50(weights=None)

    def split(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        # torchvision's forward ends with pool -> flatten -> fc: without fc it returns the pool.
        head = model.fc
        model.fc = nn.Identity()
        return model, head
