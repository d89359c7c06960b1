"""``mpnet_tokens``: all-mpnet-base-v2's own token ids, the input of the partly fine-tuned MPNet.

MPNet's vocabulary uses id 0 for ``<s>`` (every sequence's first token) and pads with 1, while
the feature store and the trainer count lengths and trim batches by padding 0. The ids are
therefore stored shifted by one (``id + 1``; 0 is padding) and the model shifts them back
(:mod:`sentimodal.models.text_mpnet`). Nothing is learned from the data; the tokenizer ships
with the weights, so its vocabulary file names the ids (part of ``identity``).
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
#: stored id = MPNet id + ID_SHIFT, so that 0 is free to mean padding
ID_SHIFT = 1


@register_text_encoder
class MPNetTokensEncoder(TextEncoder):
    """Texts -> (N, max_len) int64 MPNet ids plus one (``<s>`` ... ``</s>``), post-padded with 0.

    128 tokens keeps every MVSA-Single tweet whole. Texts are normalised first by
    ``normalize`` (:mod:`sentimodal.features.text_normalize`).
    """

    name = "mpnet_tokens"
    dtype = "int64"
    backbone = "all-mpnet-base-v2"

    def __init__(self, max_len: int = 128, normalize: str = DEFAULT_TEXT_NORMALIZATION) -> None:
        if max_len < 3:
            raise UserInputError(f"mpnet_tokens: max_len must be at least 3, got {max_len}")
        self.max_len = max_len
        self.shape = (max_len,)
        self.normalize = check_normalization(normalize)

    @property
    def config(self) -> dict[str, Any]:
        return {"max_len": self.max_len, "normalize": self.normalize}

    @property
    def identity(self) -> str:
        """``all-mpnet-base-v2-ids+1:file:<sha256[:16]>`` of the bundled vocabulary."""
        digest = resources.file_sha256(resources.mpnet_path() / _VOCAB_FILE)
        return f"all-mpnet-base-v2-ids+1:file:{digest[:16]}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        tokenizer = resources.mpnet_tokenizer()
        encoded = tokenizer(
            [text or "" for text in normalize_texts(texts, self.normalize)],
            truncation=True,
            max_length=self.max_len,
            padding="max_length",
        )
        ids = np.asarray(encoded["input_ids"], dtype=np.int64).reshape(len(texts), self.max_len)
        mask = np.asarray(encoded["attention_mask"], dtype=bool).reshape(ids.shape)
        return np.where(mask, ids + ID_SHIFT, 0)
