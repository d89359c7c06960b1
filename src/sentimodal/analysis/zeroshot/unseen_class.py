"""The unseen-class protocol: can an embedding head recognise a sentiment it never saw?

A model is trained on the seen labels only (the unseen label's posts are taken out of train and
val), then asked to rank all labels, the unseen one included, on every test post. Because the
head predicts a point in a label-vector space, the unseen label only needs a vector. Whether that
is enough is measured against chance, a prior-only rule and the same model trained with every
label, and with calibrations of the unseen label's score: a bias added to its cosine, chosen
without any unseen label (a target share of seen validation posts sent to it) or, reported as
such, on a small labelled calibration set.

With ``prompts`` (a template such as "a photo of something {label}") and a run over ``clip:``
encoders, the labels are also scored by prompt in the joint image-text space: each post's
joint vector against each label's prompt, the trained head bypassed, so the unseen label needs
no vector of its own, only its name. The same decision rules then apply to those scores.

Hinge variants can also be trained against a vocabulary of sentiment words
(:mod:`~sentimodal.analysis.zeroshot.vocabulary`): each post is contrasted with the most opposite
words too (``contrast``) and, in ``soft``, aimed at the mean of its label and the most
like-minded words, so the space is shaped by more than the two seen labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from sentimodal.analysis.zeroshot.held_out import (
    label_scores,
    prompt_problem,
    seen_only,
    true_labels,
)
from sentimodal.analysis.zeroshot.vocabulary import (
    VocabularyMode,
    adjective_scores,
    sentiment_vocabulary,
)
from sentimodal.config import Config
from sentimodal.errors import UserInputError
from sentimodal.evaluation.metrics import classification_report
from sentimodal.models.config import GLOVE_SOURCE, MINILM_SOURCE, LabelSource
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.progress import progress_bar
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig
from sentimodal.training.train_config import HingeVocabulary

EmbeddingLoss = Literal["cosine", "mse", "hinge"]


class UnseenClassConfig(Config):
    """Settings of the unseen-class protocol; every (label source, loss) pair is one variant,
    and hinge variants once per vocabulary mode."""

    unseen: str = "neutral"
    #: base model settings (the head is always an embedding head)
    run: RunConfig = Field(
        default_factory=lambda: RunConfig(model="text", head="embedding", text_encoder="minilm")
    )
    label_sources: list[LabelSource] = Field(
        default_factory=lambda: [MINILM_SOURCE, GLOVE_SOURCE], min_length=1
    )
    losses: list[EmbeddingLoss] = Field(default_factory=lambda: ["cosine", "hinge"], min_length=1)
    #: label-free calibration: the share of seen validation posts the unseen label may take
    reject_rate: float = Field(0.1, gt=0, lt=1)
    #: train the same variants on every label, as the supervised reference
    supervised: bool = True
    #: vocabulary modes of the hinge variants ("none": the labels only)
    vocabularies: list[VocabularyMode] = Field(default_factory=lambda: ["none"], min_length=1)
    #: MVSO ANP sentiment CSV (anp,score; no header) the vocabulary's adjectives come from
    anp_scores: Path | None = None
    #: how many of the most positive (and of the most negative) adjectives are used
    vocabulary_size: int = Field(50, ge=1)
    #: the sentiment sign of each seen label; labels not named here get no vocabulary
    polarity: dict[str, Literal[-1, 1]] = Field(
        default_factory=lambda: {"positive": 1, "negative": -1}
    )
    #: also score labels by this prompt template in the joint space (``run`` over clip:)
    prompts: str | None = None

    @model_validator(mode="after")
    def _vocabulary_source(self) -> UnseenClassConfig:
        if set(self.vocabularies) != {"none"} and self.anp_scores is None:
            raise ValueError("vocabulary modes other than 'none' need anp_scores (MVSO CSV)")
        if self.unseen in self.polarity:
            raise ValueError(f"the unseen label {self.unseen!r} cannot have a polarity")
        problem = None if self.prompts is None else prompt_problem(self.run, self.prompts)
        if problem is not None:
            raise ValueError(problem)
        return self


@dataclass
class UnseenClassResult:
    """One row per (variant, rule) with test metrics, plus the settings that made them."""

    table: pd.DataFrame
    config: UnseenClassConfig
    labels: list[str]
    test_counts: dict[str, int]
    calibration_counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "labels": self.labels,
            "test_counts": self.test_counts,
            "calibration_counts": self.calibration_counts,
            "rows": self.table.to_dict(orient="records"),
        }


def unseen_bias(margins: np.ndarray, rate: float) -> float:
    """The bias on the unseen label's cosine that sends ``rate`` of these posts to it.

    ``margins`` are best seen cosine minus unseen cosine, so a post goes to the unseen label
    when bias > margin.
    """
    return float(np.quantile(margins, rate))


def best_bias(scores: np.ndarray, truth: np.ndarray, labels: Sequence[str], unseen: str) -> float:
    """The bias that maximises macro-F1 on a labelled set (needs unseen-label examples)."""
    u = labels.index(unseen)
    margins = np.delete(scores, u, axis=1).max(axis=1) - scores[:, u]
    candidates = np.concatenate([[-1.0 - margins.max()], np.sort(margins) + 1e-6])
    best, best_f1 = 0.0, -1.0
    for bias in candidates:
        f1 = classification_report(truth, _decide(scores, u, bias, labels), labels)["macro_f1"]
        if f1 > best_f1:
            best, best_f1 = float(bias), f1
    return best


def _decide(
    scores: np.ndarray, unseen_index: int, bias: float, labels: Sequence[str]
) -> np.ndarray:
    shifted = scores.copy()
    shifted[:, unseen_index] += bias
    return np.asarray(labels, dtype=object)[shifted.argmax(axis=1)]


def _ambiguity(
    scores: np.ndarray, unseen_index: int, threshold: float, labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The unseen label wherever the two best seen labels are within ``threshold``: a rule that
    ignores the unseen label's vector, to see whether that vector adds anything."""
    seen = np.delete(np.arange(len(labels)), unseen_index)
    ordered = np.sort(scores[:, seen], axis=1)
    gap = ordered[:, -1] - ordered[:, -2]
    predicted = np.asarray(labels, dtype=object)[seen[scores[:, seen].argmax(axis=1)]]
    predicted[gap < threshold] = labels[unseen_index]
    return predicted, gap


def _metrics(
    truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str], unseen: str
) -> dict[str, float]:
    report = classification_report(truth, predicted, labels)
    seen_rows = truth != unseen
    return {
        "unseen_accuracy": report["per_class"][unseen],
        "seen_accuracy": float((predicted[seen_rows] == truth[seen_rows]).mean()),
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "predicted_unseen": float((predicted == unseen).mean()),
    }


def chance_metrics(truth: np.ndarray, labels: Sequence[str], unseen: str) -> dict[str, float]:
    """Expected metrics of picking a label uniformly at random (exact, not sampled)."""
    k = len(labels)
    prior = np.array([(truth == label).mean() for label in labels])
    recall = 1.0 / k
    f1 = np.where(prior > 0, 2 * prior * recall / (prior + recall), 0.0)
    return {
        "unseen_accuracy": recall,
        "seen_accuracy": recall,
        "accuracy": recall,
        "macro_f1": float(f1[prior > 0].mean()),
        "predicted_unseen": recall,
    }


def _variant_run(
    base: RunConfig, source: str, loss: str, vocabulary: HingeVocabulary | None
) -> RunConfig:
    train = base.train.model_copy(update={"loss": loss, "vocabulary": vocabulary})
    return base.model_copy(update={"head": "embedding", "label_source": source, "train": train})


def _vocabularies(
    config: UnseenClassConfig, modes: set[VocabularyMode], labels: Sequence[str]
) -> dict[VocabularyMode, HingeVocabulary | None]:
    """The hinge vocabulary of each mode the variants use (read the ANP file only if needed)."""
    out: dict[VocabularyMode, HingeVocabulary | None] = {"none": None}
    if modes - {"none"}:
        assert config.anp_scores is not None  # checked by the config
        scores = adjective_scores(config.anp_scores, exclude=labels)
        for mode in ("contrast", "soft"):
            if mode in modes:
                size = config.vocabulary_size
                out[mode] = sentiment_vocabulary(scores, config.polarity, size, mode)
    return out


def calibrated_rules(
    val_scores: np.ndarray,
    val_truth: np.ndarray,
    test_scores: np.ndarray,
    labels: list[str],
    unseen: str,
    reject_rate: float,
) -> list[tuple[str, bool, float, np.ndarray]]:
    """Test predictions of each decision rule: (name, uses unseen labels, parameter, labels)."""
    u = labels.index(unseen)
    seen_val = val_truth != unseen
    margins = np.delete(val_scores, u, axis=1).max(axis=1)[seen_val] - val_scores[seen_val, u]
    bias = unseen_bias(margins, reject_rate)
    _, val_gap = _ambiguity(val_scores, u, 0.0, labels)
    threshold = float(np.quantile(val_gap[seen_val], reject_rate))
    labelled = best_bias(val_scores, val_truth, labels, unseen)
    return [
        ("zero-shot, no calibration", False, 0.0, _decide(test_scores, u, 0.0, labels)),
        (
            f"zero-shot + bias: {reject_rate:.0%} of seen val posts go to {unseen!r}",
            False,
            bias,
            _decide(test_scores, u, bias, labels),
        ),
        (
            f"no label vector: {unseen!r} where the seen labels tie "
            f"({reject_rate:.0%} of seen val)",
            False,
            threshold,
            _ambiguity(test_scores, u, threshold, labels)[0],
        ),
        (
            "bias tuned on labelled val (uses unseen labels)",
            True,
            labelled,
            _decide(test_scores, u, labelled, labels),
        ),
    ]


def _prompt_rows(
    seen_dataset: PreparedDataset,
    dataset: PreparedDataset,
    config: UnseenClassConfig,
    labels: list[str],
) -> list[dict[str, Any]]:
    """The decision rules on label-prompt scores of a model fitted on the seen labels (its
    encoders give the joint vectors; its head is not used)."""
    model = SentimentModel(config.run).fit(seen_dataset, progress=False)
    test_ids, test_scores = label_scores(model, dataset, "test", labels, config.prompts)
    val_ids, val_scores = label_scores(model, dataset, "val", labels, config.prompts)
    test_truth, val_truth = true_labels(dataset, test_ids), true_labels(dataset, val_ids)
    variant = {"label_source": f"prompts: {config.prompts}", "loss": "-", "vocabulary": "-"}
    rules = calibrated_rules(
        val_scores, val_truth, test_scores, labels, config.unseen, config.reject_rate
    )
    return [
        {
            **_row(method, variant, uses, value),
            **_metrics(test_truth, predicted, labels, config.unseen),
        }
        for method, uses, value, predicted in rules
    ]


def _row(method: str, variant: dict[str, str], uses: bool, value: float) -> dict[str, Any]:
    return {"method": method, **variant, "uses_unseen_labels": uses, "bias_or_threshold": value}


def run_unseen_class(
    dataset: PreparedDataset, config: UnseenClassConfig, *, progress: bool = True
) -> UnseenClassResult:
    """Train each variant on the seen labels, then score every test post on all labels."""
    unseen, labels = config.unseen, dataset.labels
    for split in ("train", "val", "test"):
        if split not in dataset.splits:
            raise UserInputError(f"{dataset.root}: the protocol needs a {split} split")
    seen_dataset = seen_only(dataset, unseen)
    if not (dataset.split("test")["label"] == unseen).any():
        raise UserInputError(f"{dataset.root}: no {unseen!r} post in the test split to evaluate")
    variants = [
        (s, loss, mode)
        for s in config.label_sources
        for loss in config.losses
        for mode in (config.vocabularies if loss == "hinge" else ["none"])
    ]
    vocabularies = _vocabularies(config, {mode for *_, mode in variants}, labels)
    rows: list[dict[str, Any]] = []
    steps = len(variants) * (2 if config.supervised else 1) + (config.prompts is not None)
    with progress_bar(progress, unit="variants", transient=True) as bar:
        task = bar.add_task("unseen-class variants", total=steps)
        for source, loss, mode in variants:
            variant = {"label_source": source, "loss": loss, "vocabulary": mode}
            run = _variant_run(config.run, source, loss, vocabularies[mode])
            model = SentimentModel(run).fit(seen_dataset, progress=False)
            bar.advance(task)
            test_ids, test_scores = label_scores(model, dataset, "test", labels)
            val_ids, val_scores = label_scores(model, dataset, "val", labels)
            test_truth, val_truth = true_labels(dataset, test_ids), true_labels(dataset, val_ids)
            rules = calibrated_rules(
                val_scores, val_truth, test_scores, labels, unseen, config.reject_rate
            )
            for method, uses, value, predicted in rules:
                rows.append(
                    {
                        **_row(method, variant, uses, value),
                        **_metrics(test_truth, predicted, labels, unseen),
                    }
                )
            if config.supervised:
                full = SentimentModel(run).fit(dataset, progress=False)
                bar.advance(task)
                ids, scores = label_scores(full, dataset, "test", labels)
                predicted = np.asarray(labels, dtype=object)[scores.argmax(axis=1)]
                rows.append(
                    {
                        **_row("supervised on all labels (reference)", variant, True, 0.0),
                        **_metrics(true_labels(dataset, ids), predicted, labels, unseen),
                    }
                )
        if config.prompts is not None:
            rows += _prompt_rows(seen_dataset, dataset, config, labels)
            bar.advance(task)
    majority = seen_dataset.split("train")["label"].astype(str).value_counts().idxmax()
    prior_only = np.full(len(test_truth), majority, dtype=object)
    none = {"label_source": "-", "loss": "-", "vocabulary": "-"}
    rows.append(
        {
            **_row(f"prior only: always {majority!r} (seen train majority)", none, False, 0.0),
            **_metrics(test_truth, prior_only, labels, unseen),
        }
    )
    rows.append(
        {
            **_row("chance: uniform over all labels (expected)", none, False, 0.0),
            **chance_metrics(test_truth, labels, unseen),
        }
    )
    return UnseenClassResult(
        pd.DataFrame(rows),
        config,
        labels,
        test_counts={label: int((test_truth == label).sum()) for label in labels},
        calibration_counts={label: int((val_truth == label).sum()) for label in labels},
    )
