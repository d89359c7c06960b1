"""How a post gets its final label: from the source, from its ANP's sentiment score, or from
VADER run on its text. Every labeller sets ``post.label`` or raises
:class:`~sentimodal.errors.RecordError` with the reason the post has no usable label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sentimodal.errors import RecordError
from sentimodal.sources.record import NEGATIVE, NEUTRAL, POSITIVE, SENTIMENT_LABELS, Post

LabelMethod = Literal["source", "anp", "vader"]


class Labeller(Protocol):
    def label(self, post: Post) -> None: ...


def label_set(classes: int) -> list[str]:
    """The labels a dataset of 2 or 3 classes uses, in the fixed (sorted) order."""
    return [NEGATIVE, POSITIVE] if classes == 2 else list(SENTIMENT_LABELS)


def label_from_score(score: float, negative: float, positive: float) -> str:
    """positive at or above ``positive``, negative at or below ``negative``, neutral between."""
    if score >= positive:
        return POSITIVE
    if score <= negative:
        return NEGATIVE
    return NEUTRAL


@dataclass
class SourceLabeller:
    """Keep the label the source gave (MVSA annotations, a table's label column)."""

    classes: int = 3

    def label(self, post: Post) -> None:
        if post.label is None:
            raise RecordError("no source label")
        if self.classes == 2 and post.label == NEUTRAL:
            raise RecordError("neutral label in 2-class mode")


@dataclass
class AnpScoreLabeller:
    """Label by the post's ANP sentiment score (MVSO): the image's concept carries the label."""

    negative: float = -0.035
    positive: float = 0.035
    classes: int = 3

    def label(self, post: Post) -> None:
        if post.anp_score is None:
            raise RecordError("no ANP score")
        label = label_from_score(post.anp_score, self.negative, self.positive)
        if self.classes == 2 and label == NEUTRAL:
            raise RecordError("neutral score in 2-class mode")
        post.label = label


@dataclass
class VaderLabeller:
    """Machine labels from VADER's compound score on the post's words (tags included).

    ``margin`` drops polar posts VADER is unsure of: a positive or negative post whose
    |compound| is below the margin becomes a reject instead of a noisy label.
    """

    negative: float = -0.05
    positive: float = 0.05
    margin: float = 0.0
    classes: int = 3
    _analyzer: Any = field(default=None, init=False, repr=False)

    def compound(self, text: str) -> float:
        if self._analyzer is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            self._analyzer = SentimentIntensityAnalyzer()
        return float(self._analyzer.polarity_scores(text)["compound"])

    def label(self, post: Post) -> None:
        text = post.words_text()
        if not text.strip():
            raise RecordError("no text for VADER to score")
        score = self.compound(text)
        label = label_from_score(score, self.negative, self.positive)
        if label == NEUTRAL and self.classes == 2:
            raise RecordError("neutral score in 2-class mode")
        if label != NEUTRAL and abs(score) < self.margin:
            raise RecordError(f"low-confidence VADER score: |{score:.3f}| < {self.margin}")
        post.meta["vader_compound"] = score
        post.label = label
