"""Does a label space know sentiment? A check against the MVSO adjective-noun pairs.

MVSO gives each English ANP ("nice smile") a crowd-derived sentiment score. A label space that
places sentiment well should score the phrase, zero-shot, in the same order: cosine to the
positive pole minus cosine to the negative pole. A trained text model can be checked the same
way by feeding the phrase as a post. Reported: Spearman correlation with the MVSO score, and
sign agreement (raw, and balanced over the two signs, since a score that leans one way
everywhere still gets the majority sign right).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field
from scipy.stats import spearmanr

from sentimodal.config import Config
from sentimodal.errors import UserInputError
from sentimodal.features.text_encoders.glove_mean import glove_vector
from sentimodal.features.text_encoders.minilm import minilm_vectors
from sentimodal.models.config import GLOVE_SOURCE, MINILM_SOURCE, LabelSource
from sentimodal.sources.mvso import read_anp_rows
from sentimodal.training.estimator import SentimentModel

PoleSource = LabelSource


class AnpCheckConfig(Config):
    """Which label spaces and poles to check, and the trained text model (optional)."""

    anp_scores: Path
    sources: list[PoleSource] = Field(
        default_factory=lambda: [GLOVE_SOURCE, MINILM_SOURCE], min_length=1
    )
    #: (positive pole, negative pole) pairs; each is one row per label space
    poles: list[tuple[str, str]] = Field(
        default_factory=lambda: [("positive", "negative"), ("good", "bad")], min_length=1
    )
    model_dir: Path | None = None


def read_anp_scores(path: str | Path) -> pd.DataFrame:
    """``anp,score`` rows (no header) as ``anp``, ``phrase`` ("nice smile"), ``score``."""
    rows = [
        {"anp": anp, "phrase": anp.replace("_", " "), "score": score}
        for anp, score in read_anp_rows(path)
    ]
    return pd.DataFrame(rows)


def pole_scores(vectors: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """cos(phrase, positive pole) - cos(phrase, negative pole); NaN for all-zero vectors."""
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / np.where(norms > 0, norms, 1.0)[:, None]
    pos = positive / np.linalg.norm(positive)
    neg = negative / np.linalg.norm(negative)
    out = unit @ pos - unit @ neg
    out[norms == 0] = np.nan
    return out


def phrase_vectors(source: str, phrases: Sequence[str]) -> np.ndarray:
    """Phrases placed as label spaces place labels: GloVe word means or MiniLM sentences."""
    if source == GLOVE_SOURCE:
        return np.stack([glove_vector(p) for p in phrases]).astype(np.float32)
    if source == MINILM_SOURCE:
        return minilm_vectors(list(phrases))
    raise UserInputError(f"unknown label space {source!r}")


def agreement(predicted: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Spearman rho and sign agreement over the phrases that got a score."""
    known = np.isfinite(predicted) & (truth != 0)
    p, t = predicted[known], truth[known]
    if len(p) < 3:
        raise UserInputError("fewer than 3 phrases got a score: nothing to correlate")
    rho = spearmanr(p, t).statistic
    same = np.sign(p) == np.sign(t)
    return {
        "n": int(known.sum()),
        "n_unscored": int((~np.isfinite(predicted)).sum()),
        "spearman": float(rho),
        "sign_agreement": float(same.mean()),
        "balanced_sign_agreement": float((same[t > 0].mean() + same[t < 0].mean()) / 2),
        "share_scored_positive": float((p > 0).mean()),
    }


def model_scores(model: SentimentModel, phrases: Sequence[str]) -> tuple[np.ndarray, str]:
    """A text model's positive-minus-negative score of each phrase fed as a post."""
    if model.run_.uses_image:
        raise UserInputError(
            f"the model reads images ({model.run_.model}); the ANP check feeds phrases as text "
            "only, so give a text model (train --model text)"
        )
    missing = {"positive", "negative"} - set(model.classes_)
    if missing:
        raise UserInputError(f"the model has no label(s) {sorted(missing)}: {model.classes_}")
    posts = pd.DataFrame({"id": [str(i) for i in range(len(phrases))], "text": list(phrases)})
    predictions = model.predict_posts(posts, batch_size=256)
    scores = np.array(
        [
            p.scores["positive"] - p.scores["negative"] if p.error is None else np.nan
            for p in predictions
        ]
    )
    kind = "cosine" if model.label_space_ is not None else "probability"
    return scores, kind


def run_anp_check(config: AnpCheckConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per (scorer, poles) with its agreement; and the per-phrase scores."""
    anps = read_anp_scores(config.anp_scores)
    truth = anps["score"].to_numpy()
    rows: list[dict[str, Any]] = []
    scores = anps.copy()
    for source in config.sources:
        vectors = phrase_vectors(source, anps["phrase"].tolist())
        for positive, negative in config.poles:
            poles = phrase_vectors(source, [positive, negative])
            if not np.linalg.norm(poles, axis=1).all():
                raise UserInputError(f"pole {positive!r} or {negative!r} is unknown to {source}")
            predicted = pole_scores(vectors, poles[0], poles[1])
            column = f"{source}:{positive}-{negative}"
            scores[column] = predicted
            rows.append(
                {
                    "scorer": f"{source} label space (zero-shot)",
                    "score": f"cos({positive}) - cos({negative})",
                    **agreement(predicted, truth),
                }
            )
    if config.model_dir is not None:
        model = SentimentModel.load(config.model_dir)
        predicted, kind = model_scores(model, anps["phrase"].tolist())
        scores["model"] = predicted
        what = "cos" if kind == "cosine" else "P"
        rows.append(
            {
                "scorer": f"trained {model.run_.model} model ({model.run_.head} head)",
                "score": f"{what}(positive) - {what}(negative)",
                **agreement(predicted, truth),
            }
        )
    return pd.DataFrame(rows), scores
