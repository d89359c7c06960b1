"""What every image encoder provides, so the feature store, the trainer and the server can use
any backbone the same way."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch
from PIL import Image


class ImageEncoder(ABC):
    """A frozen (or fine-tunable) image backbone: PIL image -> tensor -> feature vector.

    ``transform`` runs in data-loading workers (CPU, per image); ``encode`` runs batched in the
    main process. ``identity`` names the weights exactly (file hash, torchvision weight enum,
    or "random-seed-N"), so cached features are never reused across different weights.
    """

    name: str
    dim: int

    @property
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Plain-data settings that rebuild this encoder with ``get_image_encoder(name, **config)``."""

    @property
    @abstractmethod
    def identity(self) -> str:
        """A stable string naming the weights (part of the feature cache key)."""

    @abstractmethod
    def transform(self, image: Image.Image) -> torch.Tensor:
        """One RGB PIL image -> one preprocessed tensor (C, H, W)."""

    @abstractmethod
    def module(self) -> torch.nn.Module:
        """The torch module mapping a preprocessed batch to (N, dim) features (for fine-tuning)."""

    @torch.inference_mode()
    def encode(self, batch: torch.Tensor) -> np.ndarray:
        """A preprocessed batch (N, C, H, W) -> float32 features (N, dim)."""
        module = self.module().eval()
        return module(batch).float().cpu().numpy()
