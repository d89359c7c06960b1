"""Text encoders behind one registry: ``list_text_encoders()``, ``get_text_encoder(name, **cfg)``.

Importing the package registers every encoder; heavy models load on first ``encode``.
"""

from sentimodal.features.defaults import FINE_TUNED_TEXT_ENCODER, FROZEN_TEXT_ENCODER
from sentimodal.features.text_encoders import (
    clip,
    glove_mean,
    hf,
    minilm,
    mpnet,
    tokens,
    vader,
)
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.features.text_encoders.glove_mean import glove_vector
from sentimodal.features.text_encoders.minilm import minilm_vectors
from sentimodal.features.text_encoders.registry import (
    get_text_encoder,
    list_text_encoders,
    register_text_encoder,
    saved_text_encoder,
    text_encoder_class,
)
from sentimodal.features.text_encoders.tokens import lengths_from_ids, tokenize

__all__ = [
    "clip",
    "FINE_TUNED_TEXT_ENCODER",
    "FROZEN_TEXT_ENCODER",
    "TextEncoder",
    "get_text_encoder",
    "glove_mean",
    "glove_vector",
    "lengths_from_ids",
    "list_text_encoders",
    "hf",
    "minilm",
    "minilm_vectors",
    "mpnet",
    "register_text_encoder",
    "saved_text_encoder",
    "text_encoder_class",
    "tokenize",
    "tokens",
    "vader",
]
