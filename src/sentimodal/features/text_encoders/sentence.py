"""Sentence-transformers encoders: unit-length embeddings of texts after tweet normalisation.

MiniLM and MPNet differ only in their folder of weights and their width; this module holds
what they share, so that a third such model is a folder and a number.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from sentimodal.features import resources
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.features.text_normalize import (
    DEFAULT_TEXT_NORMALIZATION,
    check_normalization,
    normalize_texts,
)

_WEIGHTS_FILE = "model.safetensors"


def sentence_vectors(
    folder: Path, texts: Sequence[str], *, batch_size: int = 64, device: str = "cpu"
) -> np.ndarray:
    """(N, width) float32 unit vectors for ``texts`` from the model in ``folder``: a dot
    product is then the cosine similarity."""
    model = resources.sentence_model(folder, device)
    vectors = model.encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


class SentenceEncoder(TextEncoder):
    """Embeddings of the texts after ``normalize`` (see
    :mod:`sentimodal.features.text_normalize`); ``batch_size`` and ``device`` change speed, not
    the vectors, so they stay out of ``config`` (and of the feature cache key)."""

    #: the model's name in :attr:`identity`
    model_name: str

    def __init__(
        self,
        batch_size: int = 64,
        device: str = "cpu",
        normalize: str = DEFAULT_TEXT_NORMALIZATION,
    ) -> None:
        self.batch_size = batch_size
        self.device = device
        self.normalize = check_normalization(normalize)

    @staticmethod
    @abstractmethod
    def folder() -> Path:
        """The sentence-transformers folder of the weights."""

    @property
    def config(self) -> dict[str, Any]:
        return {"normalize": self.normalize}

    @property
    def identity(self) -> str:
        """``<model name>:file:<sha256[:16]>`` of the weights."""
        digest = resources.file_sha256(self.folder() / _WEIGHTS_FILE)
        return f"{self.model_name}:file:{digest[:16]}"

    def to(self, device: Any) -> Self:
        self.device = str(device)
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return sentence_vectors(
            self.folder(),
            normalize_texts(texts, self.normalize),
            batch_size=self.batch_size,
            device=self.device,
        )
