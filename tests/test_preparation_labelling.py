"""The three ways a post gets its label: source, ANP score thresholds, VADER."""

from __future__ import annotations

import numpy as np
import pytest

from sentimodal.errors import RecordError
from sentimodal.preparation.labelling import (
    AnpScoreLabeller,
    SourceLabeller,
    VaderLabeller,
    label_from_score,
    label_set,
)
from sentimodal.sources.record import Post


def test_score_labels_fall_in_their_label_set() -> None:
    scores = np.linspace(-2.5, 2.5, 101)
    three = {label_from_score(s, -0.035, 0.035) for s in scores}
    assert three == set(label_set(3))
    two = {label_from_score(s, 0.0, 0.0) for s in scores}  # no band left for neutral
    assert two == set(label_set(2))


def test_source_labels() -> None:
    post = Post(id="1", label="positive")
    SourceLabeller().label(post)
    assert post.label == "positive"
    SourceLabeller().label(Post(id="2", label="neutral"))
    with pytest.raises(RecordError, match="neutral label in 2-class mode"):
        SourceLabeller(classes=2).label(Post(id="3", label="neutral"))
    with pytest.raises(RecordError, match="no source label"):
        SourceLabeller().label(Post(id="4"))


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (2.0, "positive"),
        (0.035, "positive"),
        (0.0349, "neutral"),
        (0.0, "neutral"),
        (-0.0349, "neutral"),
        (-0.035, "negative"),
        (-1.5, "negative"),
    ],
)
def test_anp_thresholds_are_inclusive(score: float, expected: str) -> None:
    assert label_from_score(score, -0.035, 0.035) == expected
    post = Post(id="p", anp="some_anp", anp_score=score)
    AnpScoreLabeller().label(post)
    assert post.label == expected


def test_anp_two_classes_and_missing_scores() -> None:
    with pytest.raises(RecordError, match="neutral score in 2-class mode"):
        AnpScoreLabeller(classes=2).label(Post(id="1", anp_score=0.01))
    post = Post(id="2", anp_score=0.5)
    AnpScoreLabeller(negative=-1.0, positive=1.0).label(post)
    assert post.label == "neutral"
    with pytest.raises(RecordError, match="no ANP score"):
        AnpScoreLabeller().label(Post(id="3"))


def test_vader_labels_text_and_tags() -> None:
    labeller = VaderLabeller()
    happy = Post(id="h", title="What a wonderful, happy day", tags=["love"])
    sad = Post(id="s", text="This is terrible, I hate it and feel awful")
    plain = Post(id="n", text="The table is in the kitchen")
    for post in (happy, sad, plain):
        labeller.label(post)
    assert (happy.label, sad.label, plain.label) == ("positive", "negative", "neutral")
    assert happy.meta["vader_compound"] > 0.5 > -0.5 > sad.meta["vader_compound"]
    with pytest.raises(RecordError, match="no text"):
        labeller.label(Post(id="e", image="x.jpg"))
    with pytest.raises(RecordError, match="neutral score in 2-class mode"):
        VaderLabeller(classes=2).label(Post(id="n2", text="The table is in the kitchen"))


def test_vader_margin_drops_weak_polar_posts() -> None:
    weak = Post(id="w", text="It is okay I guess")
    compound = VaderLabeller().compound(weak.text)
    assert 0.05 <= compound < 0.5
    with pytest.raises(RecordError, match="low-confidence VADER score"):
        VaderLabeller(margin=0.5).label(weak)
    strong = Post(id="s", text="Absolutely amazing, I love it so much!")
    VaderLabeller(margin=0.5).label(strong)
    assert strong.label == "positive"
    neutral = Post(id="n", text="The table is in the kitchen")
    VaderLabeller(margin=0.5).label(neutral)
    assert neutral.label == "neutral"
