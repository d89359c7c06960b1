"""The hinge vocabulary of sentiment words: MVSO adjectives, scored by the mean sentiment of
their adjective-noun pairs, the most opposite of a label to contrast it with and the most
like-minded to aim at."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pandas as pd

from sentimodal.analysis.label_space_check import read_anp_scores
from sentimodal.errors import UserInputError
from sentimodal.features.text_encoders.glove_mean import glove_vector
from sentimodal.training.train_config import HingeVocabulary

#: hinge loss over the labels only, plus opposite words, or also aimed at like-minded words
VocabularyMode = Literal["none", "contrast", "soft"]


def adjective_scores(path: str | Path, exclude: Sequence[str] = ()) -> pd.Series:
    """Mean MVSO sentiment per adjective (the ANP's part before ``_``), most negative first.

    Only adjectives GloVe knows are kept, so both label sources place the same words; the
    ``exclude`` words (the labels, the unseen one above all) are left out.
    """
    anps = read_anp_scores(path)
    adjectives = anps["anp"].str.split("_").str[0].str.lower()
    means = anps.groupby(adjectives)["score"].mean()
    keep = [w for w in means.index if w not in set(exclude) and glove_vector(w).any()]
    return means.loc[keep].sort_values(kind="stable")


def sentiment_vocabulary(
    scores: pd.Series, polarity: dict[str, int], size: int, mode: Literal["contrast", "soft"]
) -> HingeVocabulary:
    """The hinge vocabulary of one mode: per signed label, the ``size`` most opposite
    adjectives as negatives and (``soft``) the ``size`` most like-minded ones as targets."""
    if len(scores) < 2 * size:
        raise UserInputError(f"{len(scores)} adjectives are too few for 2 x {size} words")
    most = {-1: scores.index[:size].tolist(), 1: scores.index[::-1][:size].tolist()}
    negatives = {label: most[-sign] for label, sign in polarity.items()}
    targets = {label: most[sign] for label, sign in polarity.items()} if mode == "soft" else {}
    return HingeVocabulary(negatives=negatives, targets=targets)
