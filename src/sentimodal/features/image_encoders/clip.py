"""``clip:<model id or folder>``: the vision tower of a joint image-text model (CLIP, SigLIP):
unit vectors of the joint space (see :mod:`sentimodal.features.joint`). Pixels are prepared as
the model's own image processor says (shorter side, centre crop, mean and std)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from sentimodal.features.image_encoders.base import BackboneEncoder
from sentimodal.features.image_encoders.registry import register_image_encoder
from sentimodal.features.image_encoders.weights import Preprocessing, WeightSource
from sentimodal.features.joint import (
    JointImageFeatures,
    joint_image_config,
    joint_model,
    joint_source,
    joint_width,
)

#: PIL's resampling codes, as image processors save them
_RESAMPLE = {2: "bilinear", 3: "bicubic", 0: "nearest"}


def _side(size: Any, *keys: str) -> int:
    size = dict(size or {})
    for key in keys:
        if size.get(key):
            return int(size[key])
    return 224


@register_image_encoder
class JointImageEncoder(BackboneEncoder):
    """A joint model's image vectors (no ``levels``, ``grid`` or classifier)."""

    name = "clip"
    family: ClassVar[bool] = True
    joint = True

    def __init__(self, model: str, revision: str | None = None, flip: bool = False) -> None:
        self.model, self.revision = model, revision
        self.name = f"clip:{model}"
        self.flip, self.levels, self.grid = bool(flip), False, False
        self.source = joint_source(model, revision)
        self._source = WeightSource("file", model, f"{self.source.identity}:image")
        processor = joint_image_config(self.source.folder)
        crop = _side(processor["crop_size"], "height", "shortest_edge")
        resize = _side(processor["size"], "shortest_edge", "height")
        self.preprocessing = Preprocessing(
            resize=resize if processor.get("do_center_crop", True) else crop,
            crop=crop,
            mean=tuple(processor["image_mean"]),  # type: ignore[arg-type]
            std=tuple(processor["image_std"]),  # type: ignore[arg-type]
            resample=_RESAMPLE.get(processor.get("resample"), "bicubic"),  # type: ignore[arg-type]
        )
        self.load_size = self.preprocessing.resize
        self.weights, self.seed = model, 0
        self.pooled_dim = joint_width(self.source.folder)
        self.shape = (self.pooled_dim,)
        self.dim = math.prod(self.shape)
        self.device = torch.device("cpu")
        self._features: nn.Module | None = None
        self._head: nn.Module | None = None
        self._lut = self.lookup_table()

    @property
    def folder(self):
        return self.source.folder

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if self.revision is not None:
            config["revision"] = self.revision
        if self.flip:
            config["flip"] = True
        return config

    def build(self) -> nn.Module:
        return JointImageFeatures(joint_model(self.source.folder))

    def split(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        return model, nn.Identity()

    def _load(self) -> None:
        self._features = self.build().eval().to(self.device)
        self._head = nn.Identity()
