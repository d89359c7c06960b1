"""``pixels32``: the raw image at 32x32x3 in [0, 1], the input of the study's small pixel CNN
(or, flattened, a 3072-d baseline vector)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from sentimodal.features.image_encoders.base import ImageEncoder
from sentimodal.features.image_encoders.registry import register_image_encoder

SIZE = 32


@register_image_encoder
class Pixels32Encoder(ImageEncoder):
    """The whole image squeezed to 32x32 (aspect ratio not kept, nothing cropped).

    ``flatten=True``: shape ``(3072,)``; ``flatten=False``: shape ``(3, 32, 32)``. ``dim`` is
    3072 either way.
    """

    name = "pixels32"
    dim = 3 * SIZE * SIZE
    load_size = SIZE

    def __init__(self, flatten: bool = True) -> None:
        self.flatten = flatten
        self.shape = (self.dim,) if flatten else (3, SIZE, SIZE)
        self._module: nn.Module = nn.Flatten(1) if flatten else nn.Identity()

    @property
    def config(self) -> dict[str, Any]:
        return {"flatten": self.flatten}

    @property
    def identity(self) -> str:
        """No weights: the resampling is what defines the values."""
        return f"pixels:{SIZE}x{SIZE}:box"

    def transform(self, image: Image.Image) -> torch.Tensor:
        # BOX averages every source pixel once: exact area downsampling, and the cheapest.
        small = image.resize((SIZE, SIZE), Image.Resampling.BOX)
        pixels = torch.from_numpy(np.array(small, dtype=np.uint8)).permute(2, 0, 1)
        return pixels.float().div_(255.0).contiguous()

    def module(self) -> nn.Module:
        return self._module
