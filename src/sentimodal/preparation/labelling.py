"""How a post gets its final label: from the source, from its ANP's sentiment score or emotion
distribution, or from VADER run on its text. Every labeller sets ``post.label`` or raises
:class:`~sentimodal.errors.RecordError` with the reason the post has no usable label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sentimodal.errors import RecordError
from sentimodal.preparation.label_set import LabelRules, LabelSpellings
from sentimodal.sources.mvso import PLUTCHIK_BASIC, PLUTCHIK_EMOTIONS
from sentimodal.sources.record import NEGATIVE, NEUTRAL, POSITIVE, SENTIMENT_LABELS, Post

LabelMethod = Literal["source", "anp", "vader", "anp-emotion"]
#: where a post's label distribution (soft label) travels from its labeller to its row
DISTRIBUTION_KEY = "label_distribution"


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
    """Keep the label the source gave (MVSA annotations, a table's label column), numbers
    in their canonical form (``label_set.canonical_label``), remembering the spellings."""

    classes: int = 3
    spellings: LabelSpellings = field(default_factory=LabelSpellings)

    def label(self, post: Post) -> None:
        # distribution columns name their labels as the user wrote them: kept as they are
        if post.label is not None and DISTRIBUTION_KEY not in post.meta:
            post.label = self.spellings.add(post.label) or None
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


def emotion_labels(emotion_classes: int) -> list[str]:
    """The labels of ANP emotion labelling: Plutchik's 24 emotions or his 8 basic ones."""
    return sorted(PLUTCHIK_EMOTIONS if emotion_classes == 24 else PLUTCHIK_BASIC)


def argmax_label(distribution: dict[str, float]) -> str:
    """The most probable label; a tie goes to the label listed first (the order the source's
    columns are named in), so the rule never depends on floating-point noise elsewhere."""
    best = max(distribution.values())
    return next(label for label, p in distribution.items() if p == best)


@dataclass
class AnpEmotionLabeller:
    """Label by the post's ANP's emotion distribution (MVSO's ANP -> 24 Plutchik emotions).

    With 8 classes each basic emotion sums its three intensities (ecstasy + joy + serenity ->
    joy, and so on). The label is the argmax; the whole distribution is kept as the post's soft
    label (normalised to sum 1).
    """

    table: dict[str, dict[str, float]]
    emotion_classes: int = 24

    def label(self, post: Post) -> None:
        if post.anp is None:
            raise RecordError("no ANP")
        emotions = self.table.get(post.anp)
        if emotions is None:
            raise RecordError(f"ANP not in the emotion table: {post.anp!r}")
        if self.emotion_classes == 8:
            emotions = {b: sum(emotions[e] for e in trio) for b, trio in PLUTCHIK_BASIC.items()}
        else:
            emotions = {e: emotions[e] for e in PLUTCHIK_EMOTIONS}
        total = sum(emotions.values())
        if not total > 0:
            raise RecordError(f"ANP {post.anp!r} has an all-zero emotion distribution")
        distribution = {label: p / total for label, p in emotions.items()}
        post.label = argmax_label(distribution)
        post.meta[DISTRIBUTION_KEY] = distribution


@dataclass
class RuledLabeller:
    """Another labeller, then the label rules (rename/merge, keep) on what it gave."""

    inner: Labeller
    rules: LabelRules

    def label(self, post: Post) -> None:
        self.inner.label(post)
        if post.label is not None:
            post.label = self.rules.apply(post.label)
        distribution = post.meta.get(DISTRIBUTION_KEY)
        if distribution:
            merged: dict[str, float] = {}
            for label, p in distribution.items():
                new = self.rules.mapping.get(label, label)
                if self.rules.keep is None or new in self.rules.keep:
                    merged[new] = merged.get(new, 0.0) + p
            total = sum(merged.values())
            post.meta[DISTRIBUTION_KEY] = {k: v / total for k, v in merged.items()} if total else {}
