"""What every image encoder provides, so the feature store, the trainer and the server can use
any backbone the same way; and the shared machinery of the ImageNet CNN backbones."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from PIL import Image

from sentimodal.features.image_encoders.weights import (
    IMAGENET,
    Preprocessing,
    WeightSource,
    resolve_weights,
)
from sentimodal.features.images import load_image
from sentimodal.net import FetchPolicy


def spatial_mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each channel's mean and standard deviation over the positions of a map (N, C, H, W):
    the statistics a stage contributes to the multi-level (``levels``) features. Written out
    rather than ``torch.std``, which the ONNX exporter handles less well."""
    mean = x.mean((2, 3), keepdim=True)
    return mean.flatten(1), (x - mean).square().mean((2, 3)).sqrt()


def pooled_levels(
    x: torch.Tensor,
    layers: Iterable[torch.nn.Module],
    stage_ends: set[int],
    head: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The multi-level features of one pass through ``layers``: the pool of the last map (after
    ``head``), then the spatial mean of each stage's output (the layers at ``stage_ends``),
    then their standard deviations."""
    means, stds = [], []
    for index, layer in enumerate(layers):
        x = layer(x)
        if index in stage_ends:
            mean, std = spatial_mean_std(x)
            means.append(mean)
            stds.append(std)
    if head is not None:
        x = head(x)
    return torch.cat([x.mean((2, 3)), *means, *stds], dim=1)


class ImageEncoder(ABC):
    """A frozen (or fine-tunable) image backbone: PIL image -> tensor -> feature vector.

    ``transform`` runs in data-loading workers (CPU, per image); ``encode`` runs batched in the
    main process. ``identity`` names the weights exactly (file hash, torchvision weight enum,
    or "random:seed=N"), so cached features are never reused across different weights.
    """

    name: str
    #: number of values per image (``prod(shape)``)
    dim: int
    #: per-image output shape of ``encode``: ``(dim,)`` for vectors, ``(3, 32, 32)`` for the
    #: unflattened pixels the small CNN reads
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
    def module(self) -> torch.nn.Module:
        """The torch module: preprocessed batch -> (N, *shape) features (for fine-tuning)."""

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
    """

    #: how weights that do not say otherwise (a user's file, random init) are fed
    default_preprocessing: Preprocessing = IMAGENET

    def __init__(self, weights: str = "imagenet", seed: int = 0, flip: bool = False) -> None:
        self._source: WeightSource = resolve_weights(self.name, weights, seed)
        self.preprocessing = self._source.preprocessing or self.default_preprocessing
        self.load_size = self.preprocessing.resize
        self.weights = self._source.setting
        self.seed = seed
        self.flip = bool(flip)
        self.shape = (self.dim,)
        self.device = torch.device("cpu")
        self._features: torch.nn.Module | None = None
        self._head: torch.nn.Module | None = None
        # Normalisation as a lookup table: (value * 1/255 - mean) / std for each of the 256
        # byte values per channel. Indexing is several times cheaper per image than the
        # arithmetic, and the transform runs once per image in the loading workers.
        values = np.arange(256, dtype=np.float32)
        mean, std = self.preprocessing.mean, self.preprocessing.std
        self._lut = np.stack(
            [(values / 255.0 - m) / s for m, s in zip(mean, std, strict=True)]
        ).astype(np.float32)

    @abstractmethod
    def build(self) -> torch.nn.Module:
        """The full ImageNet classifier architecture (random init), whose state dict the weight
        files hold."""

    @abstractmethod
    def split(self, model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(features module -> (N, dim), head module features -> (N, 1000) logits)."""

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"weights": self.weights}
        if self._source.kind == "random":
            config["seed"] = self.seed
        if self.flip:  # only when set: the features of the plain encoder keep their cache key
            config["flip"] = True
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
            Image.Resampling.BILINEAR,
            box=(left, top, left + side, top + side),
            reducing_gap=3.0,
        )
        pixels = np.asarray(crop, dtype=np.uint8).transpose(2, 0, 1)
        out = np.empty(pixels.shape, dtype=np.float32)
        for channel in range(3):
            np.take(self._lut[channel], pixels[channel], out=out[channel])
        return torch.from_numpy(out)

    def module(self) -> torch.nn.Module:
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
        if features.ndim == 3:  # a grid of positions: the head reads their mean
            features = features.mean(1)
        # multi-level features start with the last layer's pool, which is what the head reads
        features = features[:, : type(self).dim]
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
        features, head = self.split(model)
        self._features = features.eval().to(self.device, memory_format=torch.channels_last)
        self._head = head.eval().to(self.device)
