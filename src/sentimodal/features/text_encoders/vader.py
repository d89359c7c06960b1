"""``vader``: the VADER lexicon scores as a 4-d feature, the study's lexicon baseline."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

import numpy as np

from sentimodal.features import resources
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.features.text_encoders.registry import register_text_encoder

#: Column order of the output.
VADER_SCORES: tuple[str, ...] = ("neg", "neu", "pos", "compound")


@functools.cache
def _analyzer() -> Any:
    module = resources.require("vaderSentiment.vaderSentiment")
    return module.SentimentIntensityAnalyzer()


@register_text_encoder
class VaderEncoder(TextEncoder):
    """[neg, neu, pos, compound] per text: three proportions in [0, 1] and the compound
    polarity in [-1, 1]."""

    name = "vader"
    shape = (len(VADER_SCORES),)

    @property
    def config(self) -> dict[str, Any]:
        return {}

    @property
    def identity(self) -> str:
        """The lexicon ships with the package, so its version names it."""
        return f"vaderSentiment=={version('vaderSentiment')}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        analyzer = _analyzer()
        out = np.zeros((len(texts), len(VADER_SCORES)), dtype=np.float32)
        for row, text in enumerate(texts):
            scores = analyzer.polarity_scores(text or "")
            out[row] = [scores[key] for key in VADER_SCORES]
        return out
