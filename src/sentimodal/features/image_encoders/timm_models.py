"""``timm:<model name>``: any image model of timm, frozen, with its weights' own preprocessing.

``weights`` is ``pretrained`` (the model's weights from the Hugging Face hub, read from the hub
cache offline and downloaded there online), a local ``.safetensors`` / ``.pth`` state-dict file
(``--image-weights FILE``), or ``none`` (random, from ``seed``). The pixels are prepared as the
weights' data config says (timm's ``resolve_data_config``: input size, crop fraction,
interpolation, mean and std), as torchvision weights carry their transforms. Features are the
pooled vector the classifier reads (``num_features`` wide); ``grid=True`` gives the last
feature map unpooled instead, one vector per position (a CNN's map row by row, or a vision
transformer's patch tokens), the regions ``model=cross`` reads.
"""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar

import torch
from torch import nn

from sentimodal.errors import UserInputError
from sentimodal.extras import import_extra
from sentimodal.features.image_encoders.base import BackboneEncoder
from sentimodal.features.image_encoders.registry import register_image_encoder
from sentimodal.features.image_encoders.weights import (
    RANDOM,
    Preprocessing,
    WeightSource,
    resolve_weights,
)

#: the ``weights`` setting that means: the model's own pretrained weights from the hub
PRETRAINED = "pretrained"
#: weight files of a timm hub repository, in order of preference
_HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def _timm() -> Any:
    return import_extra("timm", "encoders", "a timm: image encoder")


@functools.cache
def _shape_of(model: str, crop: int) -> tuple[int, int, int]:
    """(pooled width, grid positions, grid width) of ``model`` at ``crop`` pixels, found on
    torch's meta device (no memory, no weights)."""
    with torch.device("meta"):
        net = _create(model)
        features = net.forward_features(torch.zeros(1, 3, crop, crop))
    if features.ndim == 4:  # a CNN's map (N, C, H, W)
        positions, width = features.shape[2] * features.shape[3], features.shape[1]
    else:  # a transformer's tokens (N, T, C), less its class / register tokens
        positions = features.shape[1] - int(getattr(net, "num_prefix_tokens", 0))
        width = features.shape[2]
    return int(net.num_features), int(positions), int(width)


def _create(model: str) -> nn.Module:
    try:
        return _timm().create_model(model, pretrained=False)
    except RuntimeError as exc:  # timm's "Unknown model"
        raise UserInputError(f"timm:{model}: {exc}") from None


class TimmGrid(nn.Module):
    """A timm model's last feature map as (N, positions, C)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.prefix = int(getattr(net, "num_prefix_tokens", 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.net.forward_features(x)
        if features.ndim == 4:
            return features.flatten(2).transpose(1, 2)
        return features[:, self.prefix :]


@register_image_encoder
class TimmEncoder(BackboneEncoder):
    """A timm model (see the module docstring); ``flip`` and ``grid`` as for the shipped
    CNNs, no ``levels``."""

    name = "timm"
    family: ClassVar[bool] = True

    def __init__(
        self,
        model: str,
        weights: str = PRETRAINED,
        seed: int = 0,
        flip: bool = False,
        grid: bool = False,
    ) -> None:
        self.model = model
        self.name = f"timm:{model}"
        self.flip, self.levels, self.grid = bool(flip), False, bool(grid)
        if self.grid and self.flip:
            raise UserInputError(f"{self.name}: grid=true does not combine with flip")
        if not _timm().is_model(model.split(".")[0]):
            raise UserInputError(f"timm:{model}: timm has no such model (see timm.list_models())")
        self.preprocessing = self._preprocessing()
        self.pooled_dim, positions, width = _shape_of(model, self.preprocessing.crop)
        self._source = self._weights(weights, seed)
        self.load_size = self.preprocessing.resize
        self.weights, self.seed = self._source.setting, seed
        self.shape = (positions, width) if self.grid else (self.pooled_dim,)
        self.dim = math.prod(self.shape)
        self.device = torch.device("cpu")
        self._features: nn.Module | None = None
        self._head: nn.Module | None = None
        self._lut = self.lookup_table()

    def _weights(self, weights: str, seed: int) -> WeightSource:
        if weights != PRETRAINED:
            return resolve_weights(self.name, weights, seed)
        cfg = _timm().models.get_pretrained_cfg(self.model)
        hub_id = getattr(cfg, "hf_hub_id", None)
        if not hub_id:
            raise UserInputError(
                f"{self.name} has no weights on the Hugging Face hub: give a state-dict file "
                "(--image-weights FILE, or weights: FILE) or weights=none"
            )
        from sentimodal.features.hub import resolve_source

        source = resolve_source(
            hub_id,
            prefix="timm",
            label=f"{self.name} (hub weights {hub_id})",
            provide="give a state-dict file (--image-weights FILE, or weights: FILE)",
        )
        file = next((source.folder / f for f in _HUB_FILES if (source.folder / f).is_file()), None)
        if file is None:
            raise UserInputError(f"{self.name}: {source.folder} holds no weight file")
        return WeightSource("file", PRETRAINED, source.identity, str(file))

    def _preprocessing(self) -> Preprocessing:
        """The weights' data config (timm's defaults for a file or random weights)."""
        cfg = _timm().models.get_pretrained_cfg(self.model)
        data = _timm().data.resolve_data_config({}, pretrained_cfg=cfg.to_dict())
        crop = int(data["input_size"][-1])
        resample = data.get("interpolation", "bilinear")
        return Preprocessing(
            resize=int(math.floor(crop / float(data.get("crop_pct", 0.875)))),
            crop=crop,
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            resample=resample if resample in ("bilinear", "bicubic", "nearest") else "bilinear",
        )

    @property
    def config(self) -> dict[str, Any]:
        config = super().config
        if self._source.kind == "random":
            config["seed"] = self.seed
        return config

    def build(self) -> nn.Module:
        return _create(self.model)

    def split(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        head = model.get_classifier()
        model.reset_classifier(0)
        return (TimmGrid(model) if self.grid else model), head

    def _load(self) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = self.build()
        self._source.load_into(model)
        features, head = self.split(model)
        self._features = features.eval().to(self.device)
        self._head = head.eval().to(self.device)


__all__ = ["PRETRAINED", "RANDOM", "TimmEncoder"]
