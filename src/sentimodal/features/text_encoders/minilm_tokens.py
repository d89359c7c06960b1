"""``minilm_tokens``: WordPiece ids of MiniLM's own tokenizer, the input of a fine-tuned MiniLM.

Frozen sentence vectors (``minilm``) leave the transformer as it was trained for similarity;
fine-tuning it on sentiment labels needs the texts as token ids instead. The tokenizer ships
with the bundled model, so ids are fixed by its vocabulary file (part of ``identity``) and
nothing is learned from the data. Ids are post-padded with 0, MiniLM's ``[PAD]``, which is what
the store and the trainer take as padding when they count lengths and trim batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sentimodal.errors import UserInputError
from sentimodal.features import resources
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.features.text_encoders.registry import register_text_encoder
from sentimodal.features.text_normalize import (
    DEFAULT_TEXT_NORMALIZATION,
    check_normalization,
    normalize_texts,
)

_VOCAB_FILE = "vocab.txt"


@register_text_encoder
class MiniLMTokensEncoder(TextEncoder):
    """Texts -> (N, max_len) int64 WordPiece ids with ``[CLS]``/``[SEP]``, cut at ``max_len``.

    128 tokens keeps every MVSA-Single tweet whole (the longest has 122). Texts are
    normalised first by ``normalize`` (:mod:`sentimodal.features.text_normalize`).
    """

    name = "minilm_tokens"
    legacy_config = {"normalize": "none"}
    dtype = "int64"
    backbone = "all-MiniLM-L6-v2"

    def __init__(self, max_len: int = 128, normalize: str = DEFAULT_TEXT_NORMALIZATION) -> None:
        if max_len < 3:
            raise UserInputError(f"minilm_tokens: max_len must be at least 3, got {max_len}")
        self.max_len = max_len
        self.shape = (max_len,)
        self.normalize = check_normalization(normalize)

    @property
    def config(self) -> dict[str, Any]:
        return {"max_len": self.max_len, "normalize": self.normalize}

    @property
    def identity(self) -> str:
        """``all-MiniLM-L6-v2-wordpiece:file:<sha256[:16]>`` of the bundled vocabulary."""
        digest = resources.file_sha256(resources.minilm_path() / _VOCAB_FILE)
        return f"all-MiniLM-L6-v2-wordpiece:file:{digest[:16]}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return wordpiece_ids(
            resources.minilm_tokenizer(), normalize_texts(texts, self.normalize), self.max_len
        )


def wordpiece_ids(tokenizer: Any, texts: Sequence[str], max_len: int) -> np.ndarray:
    """(N, max_len) int64 ids with [CLS]/[SEP], cut and post-padded with 0: the one encoding
    of MiniLM's input, whoever loaded the tokenizer (the bundle, or an ONNX export's copy)."""
    encoded = tokenizer(
        [text or "" for text in texts],
        truncation=True,
        max_length=max_len,
        padding="max_length",
        return_attention_mask=False,
    )
    return np.asarray(encoded["input_ids"], dtype=np.int64).reshape(len(texts), max_len)
