"""``minilm_tokens``: WordPiece ids of MiniLM's own tokenizer, the input of a fine-tuned MiniLM.

Frozen sentence vectors (``minilm``) leave the transformer as it was trained for similarity;
fine-tuning it on sentiment labels needs the texts as token ids instead. The tokenizer ships
with the bundled model, so ids are fixed by its vocabulary file (part of ``identity``) and
nothing is learned from the data. Ids are post-padded with 0, MiniLM's ``[PAD]``, which is what
the store and the trainer take as padding when they count lengths and trim batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentimodal.features import resources
from sentimodal.features.text_encoders.registry import register_text_encoder
from sentimodal.features.text_encoders.transformer_tokens import TransformerTokensEncoder


@register_text_encoder
class MiniLMTokensEncoder(TransformerTokensEncoder):
    """Texts -> (N, max_len) int64 WordPiece ids with ``[CLS]``/``[SEP]``, cut at ``max_len``.

    128 tokens keeps every MVSA-Single tweet whole (the longest has 122).
    """

    name = "minilm_tokens"
    legacy_config = {"normalize": "none"}
    backbone = "all-MiniLM-L6-v2"
    ids_name = "all-MiniLM-L6-v2-wordpiece"

    @staticmethod
    def bundle() -> Path:
        return resources.minilm_path()

    def token_ids(self, texts: Sequence[str]) -> np.ndarray:
        return wordpiece_ids(resources.minilm_tokenizer(), texts, self.max_len)


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
