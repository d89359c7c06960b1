"""``alexnet``: the study's AlexNet backbone; features are fc7 after its ReLU (4096-d)."""

from __future__ import annotations

from torch import nn

from sentimodal.features.image_encoders.base import BackboneEncoder
from sentimodal.features.image_encoders.registry import register_image_encoder


@register_image_encoder
class AlexNetEncoder(BackboneEncoder):
    name = "alexnet"
    pooled_dim = 4096

    def build(self) -> nn.Module:
        import torchvision.models

        return torchvision.models.alexnet(weights=None)

    def split(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        # classifier = Dropout, fc6, ReLU, Dropout, fc7, ReLU, fc8: stop after fc7's ReLU.
        layers = list(model.classifier.children())
        features = nn.Sequential(model.features, model.avgpool, nn.Flatten(1), *layers[:6])
        return features, layers[6]
