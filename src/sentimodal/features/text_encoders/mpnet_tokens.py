"""``mpnet_tokens``: all-mpnet-base-v2's own token ids, the input of the partly fine-tuned MPNet.

MPNet's vocabulary uses id 0 for ``<s>`` (every sequence's first token) and pads with 1, while
the feature store and the trainer count lengths and trim batches by padding 0. The ids are
therefore stored shifted by one (``id + 1``; 0 is padding) and the model shifts them back
(:mod:`sentimodal.models.text_mpnet`). Nothing is learned from the data; the tokenizer ships
with the weights, so its vocabulary file names the ids (part of ``identity``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sentimodal.features import resources
from sentimodal.features.text_encoders.registry import register_text_encoder
from sentimodal.features.text_encoders.transformer_tokens import TransformerTokensEncoder

#: stored id = MPNet id + ID_SHIFT, so that 0 is free to mean padding
ID_SHIFT = 1


@register_text_encoder
class MPNetTokensEncoder(TransformerTokensEncoder):
    """Texts -> (N, max_len) int64 MPNet ids plus one (``<s>`` ... ``</s>``), post-padded with 0.

    128 tokens keeps every MVSA-Single tweet whole.
    """

    name = "mpnet_tokens"
    backbone = "all-mpnet-base-v2"
    ids_name = "all-mpnet-base-v2-ids+1"

    @staticmethod
    def bundle() -> Path:
        return resources.mpnet_path()

    def token_ids(self, texts: Sequence[str]) -> np.ndarray:
        encoded = resources.mpnet_tokenizer()(
            [text or "" for text in texts],
            truncation=True,
            max_length=self.max_len,
            padding="max_length",
        )
        ids = np.asarray(encoded["input_ids"], dtype=np.int64).reshape(len(texts), self.max_len)
        mask = np.asarray(encoded["attention_mask"], dtype=bool).reshape(ids.shape)
        return np.where(mask, ids + ID_SHIFT, 0)
