"""``glove_mean``: the mean GloVe 6B 50-d vector of a text's words.

:func:`glove_vector` is the same computation for one word or phrase; label spaces use it to
place label names ("positive", "very sad") among the post vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sentimodal.features import resources
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.features.text_encoders.registry import register_text_encoder
from sentimodal.features.text_encoders.tokens import RESERVED, tokenize

GLOVE_DIM = 50


def glove_words(text: str) -> list[str]:
    """The lowercase words of ``text`` as GloVe spells them.

    Punctuation, emoji and link placeholders are dropped: averaged in, the ubiquitous "." and
    "," would pull every text towards the same point. Contractions unknown to GloVe are split
    its way ("don't" -> "do", "n't"), which keeps the negation.
    """
    vocab = resources.glove_table().vocab
    words: list[str] = []
    for token in tokenize(text, lowercase=True, map_users=True):
        if token in RESERVED or not any(ch.isalnum() for ch in token):
            continue
        token = token.replace("’", "'")
        if token in vocab or "'" not in token:
            words.append(token)
        elif token.endswith("n't"):
            words += [token[:-3], "n't"]
        else:
            cut = token.index("'")
            words += [token[:cut], token[cut:]]
    return words


def glove_vector(text: str) -> np.ndarray:
    """Mean 50-d GloVe vector of a word or phrase; zeros when no word is known."""
    return resources.glove_table().mean_vector(glove_words(text))


@register_text_encoder
class GloveMeanEncoder(TextEncoder):
    """Mean of GloVe vectors over the known words (zeros when none is known)."""

    name = "glove_mean"
    shape = (GLOVE_DIM,)

    @property
    def config(self) -> dict[str, Any]:
        return {}

    @property
    def identity(self) -> str:
        """``glove.6B.50d:file:<sha256[:16]>`` of the vector file."""
        digest = resources.file_sha256(resources.glove_table().path)
        return f"glove.6B.50d:file:{digest[:16]}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), GLOVE_DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = glove_vector(text)
        return out
