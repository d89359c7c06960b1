"""What the token-id encoders of bundled transformers share: a length, a tweet normalisation,
and an identity fixed by the bundled vocabulary file (nothing is learned from the data)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sentimodal.errors import UserInputError
from sentimodal.features import resources
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.features.text_normalize import (
    DEFAULT_TEXT_NORMALIZATION,
    check_normalization,
    normalize_texts,
)


class TransformerTokensEncoder(TextEncoder):
    """Texts -> (N, max_len) int64 ids of a bundled transformer's tokenizer, post-padded with
    0 (what the store and the trainer take as padding when they count lengths and trim
    batches); texts are normalised first by ``normalize``."""

    dtype = "int64"
    #: names the id scheme in ``identity`` (with the vocabulary file's digest)
    ids_name: ClassVar[str]
    vocabulary_file: ClassVar[str] = "vocab.txt"
    #: the bundled transformers' position embeddings: no text can be read past them, and a
    #: saved config claiming 10^7 would cost 80 MB of ids per text
    max_tokens: ClassVar[int] = 512

    def __init__(self, max_len: int = 128, normalize: str = DEFAULT_TEXT_NORMALIZATION) -> None:
        if type(max_len) is not int or not 3 <= max_len <= self.max_tokens:
            raise UserInputError(
                f"{self.name}: max_len must be a whole number from 3 to {self.max_tokens}, "
                f"got {max_len!r}"
            )
        self.max_len = max_len
        self.shape = (max_len,)
        self.normalize = check_normalization(normalize)

    @staticmethod
    @abstractmethod
    def bundle() -> Path:
        """The folder of the bundled transformer (tokenizer files included)."""

    @abstractmethod
    def token_ids(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised texts -> their ids."""

    @property
    def config(self) -> dict[str, Any]:
        return {"max_len": self.max_len, "normalize": self.normalize}

    @property
    def identity(self) -> str:
        """``<ids_name>:file:<sha256[:16]>`` of the bundled vocabulary."""
        digest = resources.file_sha256(self.bundle() / self.vocabulary_file)
        return f"{self.ids_name}:file:{digest[:16]}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.token_ids(normalize_texts(texts, self.normalize))
