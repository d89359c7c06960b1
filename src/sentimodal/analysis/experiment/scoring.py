"""What a trained run is scored on besides its own predictions: its branches, and its test
posts with one modality hidden; and the per-post scores kept for combining runs afterwards.

Every score is a named variant of the run: ``model`` (what the run predicts), ``text branch`` /
``image branch`` (a late fusion's halves alone, through :meth:`SentimentModel.branch`), and
``no text`` / ``no image`` (the same test posts with that modality removed: how a model does on
real posts that lack one side). The variants derive from the modalities, so a new modality
gets its branch and its ablation without a second list. A model that cannot read a post
without the hidden modality predicts none of them: its variant counts 0 posts predicted and
has no metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd
from pydantic import Field

from sentimodal.config import Config
from sentimodal.evaluation.metrics import kl_divergence
from sentimodal.models.recipes import Modality
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.metrics import frame_metrics

#: the variant every run has: the model's own predictions
MODEL_SCORE = "model"
#: the columns of a post's text; hiding the text empties them all
TEXT_COLUMNS: tuple[str, ...] = ("title", "description", "text", "tags")
#: the per-post scores a run writes with ``out_of_fold``
SCORES_FILE = "scores.csv"


class ScoresConfig(Config):
    """Which variants of each run are scored on its test posts, beside the model itself."""

    #: late fusions: each branch alone on the same posts (other models have no branches)
    branches: bool = False
    #: the test posts again with this modality removed from every post
    hide: list[Modality] = Field(default_factory=list)
    #: write each test post's scores per variant (scores.csv): out-of-fold under k folds
    out_of_fold: bool = False


@dataclass(frozen=True)
class Variant:
    """One way of scoring a trained run: a branch of it, or its posts with a modality hidden."""

    name: str
    branch: Modality | None = None
    hidden: Modality | None = None


def variants(config: ScoresConfig) -> list[Variant]:
    """The variants the config asks for, after the model's own, in modality order."""
    out = [Variant(MODEL_SCORE)]
    if config.branches:
        out += [Variant(f"{m} branch", branch=m) for m in get_args(Modality)]
    out += [Variant(f"no {m}", hidden=m) for m in get_args(Modality) if m in config.hide]
    return out


def hide(examples: pd.DataFrame, modality: Modality) -> pd.DataFrame:
    """The posts with one modality removed (no image path, or every text column empty)."""
    posts = examples.copy()
    if modality == "image":
        posts["image"] = None
    else:
        posts[[c for c in TEXT_COLUMNS if c in posts.columns]] = ""
    return posts


def _truth(dataset: PreparedDataset, ids: list[str]) -> np.ndarray:
    by_id = dataset.examples.set_index(dataset.examples["id"].astype(str))["label"]
    return by_id.loc[ids].astype(str).to_numpy()


def mean_kl(model: SentimentModel, dataset: PreparedDataset, frame: pd.DataFrame) -> float | None:
    """Mean KL(target || predicted) over predicted posts, when every one has a target
    distribution over the model's classes and the scores are probabilities (else None)."""
    if "label_distribution" not in dataset.examples or model.classes_ != dataset.labels:
        return None
    frame = frame[frame["error"].isna()]
    by_id = dataset.examples.set_index(dataset.examples["id"].astype(str))["label_distribution"]
    targets = by_id.loc[frame["id"].astype(str)].tolist()
    if not targets or any(t is None or len(t) != len(model.classes_) for t in targets):
        return None
    scores = frame[model.classes_].to_numpy(dtype=np.float64)
    if (scores < 0).any():  # cosines of an embedding head are not probabilities
        return None
    return kl_divergence(np.asarray(targets, dtype=np.float64), scores)


def _scored(
    model: SentimentModel, dataset: PreparedDataset, split: str
) -> tuple[dict[str, Any] | None, pd.DataFrame]:
    """Metrics on the split's posts the model can read (None when it reads none), as
    :meth:`SentimentModel.evaluate` computes them, from one prediction pass; and the frame."""
    frame = model.predict_frame(dataset, split)
    metrics = frame_metrics(
        frame,
        dataset,
        model.classes_,
        model.train_splits_,
        split,
        probabilities=model.label_space_ is None,
    )
    if metrics is None:
        return None, frame
    kl = mean_kl(model, dataset, frame)
    if kl is not None:
        metrics["kl"] = kl
    return metrics, frame


def score_run(
    model: SentimentModel,
    view: PreparedDataset,
    hidden: Mapping[Modality, PreparedDataset],
    config: ScoresConfig,
    splits: tuple[str, ...],
    directory: Path,
) -> dict[str, dict[str, Any]]:
    """Every variant's metrics: {variant: {split: metrics}} (the model's own on every split
    in ``splits`` it did not train on, the other variants on test only). ``n_predicted``
    counts the posts each variant could read; with ``out_of_fold`` the test posts' scores go
    to ``directory/scores.csv``."""
    out: dict[str, dict[str, Any]] = {}
    frames = []
    for variant in variants(config):
        if variant.branch is not None and variant.branch not in model.network_.branches():
            continue
        scorer = model.branch(variant.branch) if variant.branch else model
        data = hidden[variant.hidden] if variant.hidden else view
        wanted = splits if variant.name == MODEL_SCORE else ("test",)
        out[variant.name] = {}
        for split in wanted:
            if split not in data.splits or split in model.train_splits_:
                continue
            metrics, frame = _scored(scorer, data, split)
            n_test = len(frame)
            out[variant.name][split] = {
                **(metrics or {}),
                "n_predicted": int(frame["error"].isna().sum()),
                "n_posts": n_test,
            }
            if split == "test":
                frame = frame.assign(score=variant.name, truth=_truth(data, frame["id"].tolist()))
                frames.append(frame)
    if config.out_of_fold and frames:
        columns = ["score", "id", "truth", "label", *model.classes_]
        pd.concat(frames)[columns].to_csv(directory / SCORES_FILE, index=False)
    return out
