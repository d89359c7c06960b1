"""What every image encoder provides, so the feature store, the trainer and the server can use
any backbone the same way; and the shared machinery of the ImageNet CNN backbones."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from sentimodal.errors import UserInputError
from sentimodal.features.image_encoders.weights import (
    IMAGENET,
    Preprocessing,
    WeightSource,
    resolve_weights,
)
from sentimodal.features.images import load_image
from sentimodal.net import FetchPolicy

_RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


def spatial_mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each channel's mean and standard deviation over the positions of a map (N, C, H, W):
    the statistics a stage contributes to the multi-level (``levels``) features. Written out
    rather than ``torch.std``, which the ONNX exporter handles less well."""
    mean = x.mean((2, 3), keepdim=True)
    return mean.flatten(1), (x - mean).square().mean((2, 3)).sqrt()


def stages_by_width(blocks: Iterable[nn.Module], widths: Iterable[int]) -> tuple[nn.Module, ...]:
    """Blocks grouped into stages: a stage is a run of consecutive blocks of one output width
    (``widths``: each block's output channels)."""
    groups: list[list[nn.Module]] = []
    previous = None
    for block, width in zip(blocks, widths, strict=True):
        if width != previous:
            groups.append([])
            previous = width
        groups[-1].append(block)
    return tuple(nn.Sequential(*group) for group in groups)


@dataclass(frozen=True)
class Walk:
    """One pass through a CNN's convolutional layers, the way the output modes read it:
    ``stem`` makes the first map, each of ``stages`` the next (a stage's output is what
    ``levels`` summarises), ``head`` the last map (what ``grid`` gives and the pool averages).
    The modules are the network's own, so they share its weights, device and eval mode."""

    stem: nn.Module
    stages: tuple[nn.Module, ...]
    head: nn.Module


class BackboneFeatures(nn.Module):
    """A CNN's features in one output mode, from one pass along its :class:`Walk`:

    - ``"pool"``: the global average pool of the last map, (N, C);
    - ``"levels"``: that pool, then each stage output's spatial means, then their standard
      deviations, (N, C + 2 x sum of the stage widths);
    - ``"grid"``: the last map unpooled, one vector per position row by row, (N, H x W, C).
    """

    def __init__(self, net: nn.Module, walk: Walk, mode: str) -> None:
        super().__init__()
        #: the whole network (registered, so parameters, devices and eval mode follow it); the
        #: walk's modules are its own, held outside the module tree so they count once
        self.net = net
        self.walk = walk
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.walk.stem(x)
        means, stds = [], []
        for stage in self.walk.stages:
            x = stage(x)
            if self.mode == "levels":
                mean, std = spatial_mean_std(x)
                means.append(mean)
                stds.append(std)
        x = self.walk.head(x)
        if self.mode == "grid":
            return x.flatten(2).transpose(1, 2)
        pooled = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return torch.cat([pooled, *means, *stds], dim=1) if self.mode == "levels" else pooled


class ImageEncoder(ABC):
    """A frozen (or fine-tunable) image backbone: PIL image -> tensor -> feature vector.

    ``transform`` runs in data-loading workers (CPU, per image); ``encode`` runs batched in the
    main process. ``identity`` names the weights exactly (file hash, torchvision weight enum,
    or "random:seed=N"), so cached features are never reused across different weights.
    """

    name: str
    #: number of values per image (``prod(shape)``)
    dim: int
    #: per-image output shape of ``encode``: ``(dim,)`` for vectors, ``(positions, channels)``
    #: for a grid of region vectors, ``(3, 32, 32)`` for the unflattened pixels the small CNN
    #: reads
    shape: tuple[int, ...]
    #: the smallest image side ``transform`` needs; JPEGs are decoded at a reduced scale down
    #: to it (see :func:`sentimodal.features.images.load_image`). None: full resolution.
    load_size: int | None = None

    @property
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Plain-data settings that rebuild this encoder: ``get_image_encoder(name, **config)``."""

    @property
    @abstractmethod
    def identity(self) -> str:
        """A stable string naming the weights (part of the feature cache key)."""

    @abstractmethod
    def transform(self, image: Image.Image) -> torch.Tensor:
        """One RGB PIL image -> one preprocessed tensor (C, H, W)."""

    @abstractmethod
    def module(self) -> nn.Module:
        """The torch module: preprocessed batch -> (N, *shape) features (for fine-tuning)."""

    def to(self, device: str | torch.device) -> Self:
        """Run on ``device``; encoders without a network (pixels) ignore it."""
        return self

    def read(self, source: str | Path, *, policy: FetchPolicy | None = None) -> torch.Tensor:
        """Load, decode and transform one image path or URL (raises ``RecordError``): the whole
        per-image work of a data-loading worker. URLs are fetched under ``policy``."""
        return self.transform(load_image(source, draft=self.load_size, policy=policy))

    @torch.inference_mode()
    def encode(self, batch: torch.Tensor) -> np.ndarray:
        """A preprocessed batch (N, C, H, W) -> float32 features (N, *shape)."""
        module = self.module().eval()
        return module(batch).float().cpu().numpy()


class BackboneEncoder(ImageEncoder):
    """An ImageNet CNN: resize the shorter side, centre-crop, normalise, as its weights'
    :class:`Preprocessing` says (256 / 224 / ImageNet statistics for most); features are the
    layer before the classifier, and :meth:`classify` gives the ImageNet logits.

    ``weights``: ``"imagenet"`` (the encoder's entry in
    :data:`~sentimodal.features.image_encoders.weights.WEIGHTS`), a local ``.pth`` /
    ``.safetensors`` state-dict file, or ``"none"`` for a random init drawn from ``seed``.
    ``flip=True`` averages the features of the image and of its mirror image (test-time
    augmentation: twice the encoding cost). Nothing loads until the first :meth:`module` call.

    Output modes, for the backbones whose :meth:`walk` says how their layers run (see
    :class:`BackboneFeatures`): ``levels=True`` adds each stage's spatial mean and standard
    deviation to the pool (:attr:`stage_widths` declares their widths); ``grid=True`` gives the
    last map unpooled, one vector per position (its side: the crop over :attr:`map_stride`,
    rounded up). The two exclude each other, and a grid does not take ``flip`` (a mirrored
    grid's positions differ). Each is written into :attr:`config` only when set, so the plain
    features keep their cache key.
    """

    #: the width of the vector the ImageNet classifier reads (the global pool of the last map;
    #: AlexNet: fc7)
    pooled_dim: int
    #: how weights that do not say otherwise (a user's file, random init) are fed
    default_preprocessing: Preprocessing = IMAGENET
    #: the stride of the last map relative to the input, for backbones that give ``grid=True``
    map_stride: int | None = None
    #: the output channels of each stage of :meth:`walk`, for backbones that give
    #: ``levels=True``: known before any weight loads
    stage_widths: tuple[int, ...] = ()

    def __init__(
        self,
        weights: str = "imagenet",
        seed: int = 0,
        flip: bool = False,
        levels: bool = False,
        grid: bool = False,
    ) -> None:
        self.flip, self.levels, self.grid = bool(flip), bool(levels), bool(grid)
        if self.grid and (self.levels or self.flip):
            raise UserInputError(
                f"{self.name}: grid=true keeps the positions of the last map; it does not combine "
                "with levels (pooled statistics) or flip (a mirrored grid's positions differ)"
            )
        if self.levels and not self.stage_widths:
            raise self._no_mode("levels")
        if self.grid and self.map_stride is None:
            raise self._no_mode("grid")
        self._source: WeightSource = resolve_weights(self.name, weights, seed)
        self.preprocessing = self.input_preprocessing(
            self._source.preprocessing or self.default_preprocessing
        )
        self.load_size = self.preprocessing.resize
        self.weights = self._source.setting
        self.seed = seed
        self.shape = self._output_shape()
        self.dim = math.prod(self.shape)
        self.device = torch.device("cpu")
        self._features: nn.Module | None = None
        self._head: nn.Module | None = None
        self._lut = self.lookup_table()

    def lookup_table(self) -> np.ndarray:
        """Normalisation as a lookup table: (value * 1/255 - mean) / std for each of the 256
        byte values per channel. Indexing is several times cheaper per image than the
        arithmetic, and the transform runs once per image in the loading workers."""
        values = np.arange(256, dtype=np.float32)
        mean, std = self.preprocessing.mean, self.preprocessing.std
        return np.stack([(values / 255.0 - m) / s for m, s in zip(mean, std, strict=True)]).astype(
            np.float32
        )

    @abstractmethod
    def build(self) -> nn.Module:
        """The full ImageNet classifier architecture (random init), whose state dict the weight
        files hold."""

    @abstractmethod
    def split(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        """(the network without its classifier, the classifier: pooled vector -> (N, 1000)
        logits). Without a :meth:`walk`, the first is the features module itself: (N,
        pooled_dim)."""

    def walk(self, net: nn.Module) -> Walk | None:
        """How the layers of ``net`` (the first of :meth:`split`) run, which gives the output
        modes; None (the default): ``net`` gives the plain features itself, and no mode."""
        return None

    def input_preprocessing(self, preprocessing: Preprocessing) -> Preprocessing:
        """What this encoder feeds the network, given how its weights were trained: the same by
        default; an encoder with another input scale changes it."""
        return preprocessing

    def _no_mode(self, mode: str) -> UserInputError:
        modes = [
            f"{name}=true"
            for name, given in (("levels", self.stage_widths), ("grid", self.map_stride))
            if given
        ]
        gives = " or ".join(modes) or "only its feature vector"
        return UserInputError(f"{self.name} has no {mode}=true (it gives {gives})")

    def _output_shape(self) -> tuple[int, ...]:
        if self.grid:
            assert self.map_stride is not None
            # strided convolutions padded to keep "same" sizes: each halving rounds up
            side = math.ceil(self.crop_size / self.map_stride)
            return (side * side, self.pooled_dim)
        if self.levels:
            return (self.pooled_dim + 2 * sum(self.stage_widths),)
        return (self.pooled_dim,)

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"weights": self.weights}
        if self._source.kind == "random":
            config["seed"] = self.seed
        # each only when set: the features of the plain encoder keep their cache key
        for setting in ("flip", "levels", "grid"):
            if getattr(self, setting):
                config[setting] = True
        return config

    @property
    def identity(self) -> str:
        return self._source.identity

    @property
    def crop_size(self) -> int:
        return self.preprocessing.crop

    def transform(self, image: Image.Image) -> torch.Tensor:
        """Resize + centre crop done as one PIL resize of the crop box (the pixels the crop
        would discard are never resampled), then normalise."""
        width, height = image.size
        side = min(width, height) * self.preprocessing.crop / self.preprocessing.resize
        left, top = (width - side) / 2, (height - side) / 2
        crop = image.resize(
            (self.crop_size, self.crop_size),
            _RESAMPLE[self.preprocessing.resample],
            box=(left, top, left + side, top + side),
            reducing_gap=3.0,
        )
        pixels = np.asarray(crop, dtype=np.uint8).transpose(2, 0, 1)
        out = np.empty(pixels.shape, dtype=np.float32)
        for channel in range(3):
            np.take(self._lut[channel], pixels[channel], out=out[channel])
        return torch.from_numpy(out)

    def module(self) -> nn.Module:
        if self._features is None:
            self._load()
        assert self._features is not None
        return self._features

    def to(self, device: str | torch.device) -> Self:
        """Run on ``device`` (e.g. "cuda"); the features do not depend on it beyond rounding."""
        self.device = torch.device(device)
        if self._features is not None and self._head is not None:
            self._features.to(self.device)
            self._head.to(self.device)
        return self

    @torch.inference_mode()
    def encode(self, batch: torch.Tensor) -> np.ndarray:
        return self._forward(batch).float().cpu().numpy()

    @torch.inference_mode()
    def classify(self, batch: torch.Tensor) -> np.ndarray:
        """ImageNet logits (N, 1000) for a preprocessed batch: shows the weights really are the
        pretrained ones, and serves zero-shot analyses."""
        features = self._forward(batch)
        if self.grid:  # the head reads the pool: the mean of the positions
            features = features.mean(1)
        elif self.levels:  # the multi-level features start with the pool
            features = features[:, : self.pooled_dim]
        assert self._head is not None
        return self._head.eval()(features).float().cpu().numpy()

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        # channels_last lets oneDNN / cuDNN pick their fastest convolution kernels.
        batch = batch.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)
        module = self.module().eval()
        if not self.flip:
            return module(batch)
        mirrored = batch.flip(-1).contiguous(memory_format=torch.channels_last)
        return (module(batch) + module(mirrored)) / 2

    def _load(self) -> None:
        with torch.random.fork_rng(devices=[]):
            # Seeded so "none" gives the same random network every time; forked so the
            # caller's random stream is untouched.
            torch.manual_seed(self.seed)
            model = self.build()
        self._source.load_into(model)
        net, head = self.split(model)
        walk = self.walk(net)
        mode = "grid" if self.grid else "levels" if self.levels else "pool"
        assert walk is not None or mode == "pool", f"{self.name} declares {mode} but no walk"
        features = net if walk is None else BackboneFeatures(net, walk, mode)
        self._features = features.eval().to(self.device, memory_format=torch.channels_last)
        self._head = head.eval().to(self.device)
