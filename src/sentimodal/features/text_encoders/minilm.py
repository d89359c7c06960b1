"""``minilm``: 384-d sentence embeddings from all-MiniLM-L6-v2 (bundled, offline).

Embeddings are L2-normalised, so a dot product is the cosine similarity; label spaces use
:func:`minilm_vectors` to embed label names in the same space as the posts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sentimodal.features import resources
from sentimodal.features.text_encoders.registry import register_text_encoder
from sentimodal.features.text_encoders.sentence import SentenceEncoder, sentence_vectors

MINILM_DIM = 384


def minilm_vectors(
    texts: Sequence[str], *, batch_size: int = 64, device: str = "cpu"
) -> np.ndarray:
    """(N, 384) float32 unit vectors for ``texts`` (posts, label names, phrases)."""
    return sentence_vectors(resources.minilm_path(), texts, batch_size=batch_size, device=device)


@register_text_encoder
class MiniLMEncoder(SentenceEncoder):
    """MiniLM sentence embeddings (see :class:`SentenceEncoder`)."""

    name = "minilm"
    model_name = "all-MiniLM-L6-v2"
    legacy_config = {"normalize": "none"}
    shape = (MINILM_DIM,)

    @staticmethod
    def folder() -> Path:
        return resources.minilm_path()
