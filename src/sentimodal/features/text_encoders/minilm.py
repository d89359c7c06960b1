"""``minilm``: 384-d sentence embeddings from all-MiniLM-L6-v2 (bundled, offline).

Embeddings are L2-normalised, so a dot product is the cosine similarity; label spaces use
:func:`minilm_vectors` to embed label names in the same space as the posts.
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

MINILM_DIM = 384
_WEIGHTS_FILE = "model.safetensors"


def minilm_vectors(
    texts: Sequence[str], *, batch_size: int = 64, device: str = "cpu"
) -> np.ndarray:
    """(N, 384) float32 unit vectors for ``texts`` (posts, label names, phrases)."""
    model = resources.minilm_model(device)
    vectors = model.encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), MINILM_DIM)


@register_text_encoder
class MiniLMEncoder(TextEncoder):
    """Sentence embeddings of the texts after ``normalize`` (see
    :mod:`sentimodal.features.text_normalize`); ``batch_size`` and ``device`` change speed, not
    the vectors, so they stay out of ``config`` (and of the feature cache key)."""

    name = "minilm"
    legacy_config = {"normalize": "none"}
    shape = (MINILM_DIM,)

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
        """``all-MiniLM-L6-v2:file:<sha256[:16]>`` of the bundled weights."""
        digest = resources.file_sha256(resources.minilm_path() / _WEIGHTS_FILE)
        return f"all-MiniLM-L6-v2:file:{digest[:16]}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return minilm_vectors(
            normalize_texts(texts, self.normalize), batch_size=self.batch_size, device=self.device
        )
