"""``resnet50``: the study's ResNet-50 backbone; features are the global average pool (2048-d).
``grid=True`` (see :class:`~sentimodal.features.image_encoders.base.BackboneEncoder`) gives the
last map before the pool instead, one 2048-d vector per position (7 x 7 = 49 at 224 px). No
``levels``: its last stage is the pooled map itself."""

from __future__ import annotations

from torch import nn

from sentimodal.features.image_encoders.base import BackboneEncoder, Walk
from sentimodal.features.image_encoders.registry import register_image_encoder


@register_image_encoder
class ResNet50Encoder(BackboneEncoder):
    name = "resnet50"
    pooled_dim = 2048
    # five stride-2 steps (convolutions and the max pool) padded to keep sides: halvings round up
    map_stride = 32

    def build(self) -> nn.Module:
        import torchvision.models

        return torchvision.models.resnet50(weights=None)

    def split(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        # torchvision's forward ends with pool -> flatten -> fc: without fc it returns the pool.
        head = model.fc
        model.fc = nn.Identity()
        return model, head

    def walk(self, net: nn.Module) -> Walk:
        return Walk(
            stem=nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool),
            stages=(net.layer1, net.layer2, net.layer3, net.layer4),
            head=nn.Identity(),
        )
