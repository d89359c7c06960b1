"""The unseen-class protocol: can an embedding head recognise a sentiment it never saw?

A model is trained on the seen labels only (the unseen label's posts are taken out of train and
val), then asked to rank all labels, the unseen one included, on every test post. Because the
head predicts a point in a label-vector space, the unseen label only needs a vector. Whether that
is enough is measured against chance, a prior-only rule and the same model trained with every
label, and with calibrations of the unseen label's score: a bias added to its cosine, chosen
without any unseen label (a target share of seen validation posts sent to it) or, reported as
such, on a small labelled calibration set.

Hinge variants can also be trained against a vocabulary of sentiment words (MVSO adjectives,
scored by the mean sentiment of their adjective-noun pairs): each post is contrasted with the
most opposite words too (``contrast``) and, in ``soft``, aimed at the mean of its label and the
most like-minded words, so the space is shaped by more than the two seen labels.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from sentimodal.analysis.label_space_check import read_anp_scores
from sentimodal.config import Config
from sentimodal.errors import UserInputError
from sentimodal.evaluation.metrics import classification_report
from sentimodal.features.text_encoders.glove_mean import glove_vector
from sentimodal.models.config import GLOVE_SOURCE, MINILM_SOURCE, LabelSource
from sentimodal.preparation.dataset import PreparedDataset, count_by_split
from sentimodal.progress import progress_bar
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig
from sentimodal.training.train_config import HingeVocabulary

#: split name the unseen label's train/val posts are moved to (kept in the examples, so the
#: feature cache, keyed by the examples, is reused)
HELD_OUT_SPLIT = "unseen_held_out"
EmbeddingLoss = Literal["cosine", "mse", "hinge"]
#: hinge loss over the labels only, plus opposite words, or also aimed at like-minded words
VocabularyMode = Literal["none", "contrast", "soft"]


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

    @model_validator(mode="after")
    def _vocabulary_source(self) -> UnseenClassConfig:
        if set(self.vocabularies) != {"none"} and self.anp_scores is None:
            raise ValueError("vocabulary modes other than 'none' need anp_scores (MVSO CSV)")
        if self.unseen in self.polarity:
            raise ValueError(f"the unseen label {self.unseen!r} cannot have a polarity")
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


def seen_only(dataset: PreparedDataset, unseen: str | Sequence[str]) -> PreparedDataset:
    """The dataset with the unseen labels' train/val posts moved out of train and val.

    The examples (ids, texts, images) stay the same and the root is shared, so the cached
    features are found again; only the split column and the label list change.
    """
    held_out = [unseen] if isinstance(unseen, str) else list(unseen)
    for label in held_out:
        if label not in dataset.labels:
            raise UserInputError(f"unseen label {label!r} is not among {dataset.labels}")
    seen = [label for label in dataset.labels if label not in held_out]
    if len(seen) < 2:
        raise UserInputError("the unseen-class protocol needs at least two seen labels")
    examples = dataset.examples.copy()
    move = examples["label"].isin(held_out) & examples["split"].isin(["train", "val"])
    examples.loc[move, "split"] = HELD_OUT_SPLIT
    counts = count_by_split(
        examples["split"].astype(str).tolist(), examples["label"].tolist(), dataset.labels
    )
    info = {**dataset.info, "labels": seen, "counts": counts}
    return PreparedDataset(examples, info, dataset.root)


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


def _truth(dataset: PreparedDataset, ids: Sequence[str]) -> np.ndarray:
    labels = dataset.examples.set_index(dataset.examples["id"].astype(str))["label"]
    return labels.loc[list(ids)].astype(str).to_numpy(dtype=object)


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


def _scores(
    model: SentimentModel, dataset: PreparedDataset, split: str, labels: list[str]
) -> tuple[list[str], np.ndarray]:
    model.set_labels(labels)
    frame = model.predict_frame(dataset, split)
    return frame["id"].tolist(), frame[labels].to_numpy()


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
    steps = len(variants) * (2 if config.supervised else 1)
    with progress_bar(progress, unit="variants", transient=True) as bar:
        task = bar.add_task("unseen-class variants", total=steps)
        for source, loss, mode in variants:
            variant = {"label_source": source, "loss": loss, "vocabulary": mode}
            run = _variant_run(config.run, source, loss, vocabularies[mode])
            model = SentimentModel(run).fit(seen_dataset, progress=False)
            bar.advance(task)
            test_ids, test_scores = _scores(model, dataset, "test", labels)
            val_ids, val_scores = _scores(model, dataset, "val", labels)
            test_truth, val_truth = _truth(dataset, test_ids), _truth(dataset, val_ids)
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
                ids, scores = _scores(full, dataset, "test", labels)
                predicted = np.asarray(labels, dtype=object)[scores.argmax(axis=1)]
                rows.append(
                    {
                        **_row("supervised on all labels (reference)", variant, True, 0.0),
                        **_metrics(_truth(dataset, ids), predicted, labels, unseen),
                    }
                )
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


# ---------------------------------------------------------------------------------------------
# Generalised zero-shot: several unseen labels, every choice of them, the standard figures


def unseen_sets(labels: Sequence[str], size: int) -> list[list[str]]:
    """Every choice of ``size`` unseen labels (at least two labels stay seen)."""
    if not 1 <= size <= len(labels) - 2:
        raise UserInputError(
            f"{size} unseen labels out of {len(labels)} leaves fewer than two seen ones"
        )
    return [list(c) for c in itertools.combinations(labels, size)]


def gzsl_metrics(
    truth: np.ndarray, scores: np.ndarray, labels: Sequence[str], unseen: Sequence[str]
) -> dict[str, float]:
    """The generalised zero-shot figures of scores over all labels (Xian et al., 2018):
    mean per-class accuracy over the seen classes (``seen_accuracy``) and over the unseen ones
    (``unseen_accuracy``), both predicted among all labels, and their harmonic mean; plus
    ``zsl_accuracy``, the unseen classes' mean per-class accuracy when only unseen labels are
    candidates (the classic zero-shot task)."""
    labels = list(labels)
    predicted = np.asarray(labels, dtype=object)[scores.argmax(axis=1)]

    def per_class(classes: Sequence[str], guess: np.ndarray) -> float:
        return float(np.mean([(guess[truth == c] == c).mean() for c in classes]))

    seen = [label for label in labels if label not in unseen]
    u, s = per_class(unseen, predicted), per_class(seen, predicted)
    columns = [labels.index(label) for label in unseen]
    among_unseen = np.asarray(unseen, dtype=object)[scores[:, columns].argmax(axis=1)]
    return {
        "unseen_accuracy": u,
        "seen_accuracy": s,
        "harmonic_mean": 0.0 if u + s == 0 else 2 * u * s / (u + s),
        "zsl_accuracy": per_class(unseen, among_unseen),
    }


def gzsl_chance(labels: Sequence[str], unseen: Sequence[str]) -> dict[str, float]:
    """Expected figures of a uniform random guess (exact)."""
    k = len(labels)
    return {
        "unseen_accuracy": 1 / k,
        "seen_accuracy": 1 / k,
        "harmonic_mean": 1 / k,
        "zsl_accuracy": 1 / len(unseen),
    }


def stacking_bias(
    val_scores: np.ndarray, val_truth: np.ndarray, labels: Sequence[str], unseen: Sequence[str]
) -> float:
    """Calibrated stacking (Chao et al., 2016) without any unseen label: the bias added to the
    unseen labels' scores that sends a share ``len(unseen) / len(labels)`` of the *seen*
    validation posts to an unseen label (the share a uniform prior over labels expects)."""
    labels = list(labels)
    u = [labels.index(label) for label in unseen]
    seen_rows = ~np.isin(val_truth, list(unseen))
    seen_cols = [i for i in range(len(labels)) if i not in u]
    margins = val_scores[seen_rows][:, seen_cols].max(axis=1) - val_scores[seen_rows][:, u].max(
        axis=1
    )
    return float(np.quantile(margins, len(unseen) / len(labels)))


def with_bias(
    scores: np.ndarray, labels: Sequence[str], unseen: Sequence[str], bias: float
) -> np.ndarray:
    """Scores with ``bias`` added to the unseen labels' columns."""
    shifted = scores.copy()
    shifted[:, [list(labels).index(label) for label in unseen]] += bias
    return shifted


@dataclass
class GeneralisedResult:
    """One row per (method, label source, unseen set) and the mean ± std over the sets."""

    rows: pd.DataFrame
    summary: pd.DataFrame
    test_counts: dict[str, int]


GZSL_FIGURES = ("unseen_accuracy", "seen_accuracy", "harmonic_mean", "zsl_accuracy")


def run_generalised_zero_shot(
    dataset: PreparedDataset,
    held_out: Sequence[Sequence[str]],
    run: RunConfig,
    label_sources: Sequence[str] = (MINILM_SOURCE, GLOVE_SOURCE),
    *,
    supervised: bool = True,
    progress: bool = True,
) -> GeneralisedResult:
    """For each unseen set and label source: train the embedding head on the seen labels only
    (their train and val posts), then score every test post on all labels, the unseen ones
    placed by their label vectors alone; then again with calibrated stacking (a bias on the
    unseen labels' scores chosen on seen validation posts only, see :func:`stacking_bias`).
    The supervised reference is the same model trained on every label, scored on the same
    test posts."""
    for split in ("train", "val", "test"):
        if split not in dataset.splits:
            raise UserInputError(f"{dataset.root}: the protocol needs a {split} split")
    labels = dataset.labels
    test = dataset.split("test")
    missing = [label for label in labels if not (test["label"] == label).any()]
    if missing:
        raise UserInputError(f"{dataset.root}: no test post of {missing} to evaluate")
    rows: list[dict[str, Any]] = []
    steps = len(label_sources) * (len(held_out) + int(supervised))
    with progress_bar(progress, unit="runs", transient=True) as bar:
        task = bar.add_task("generalised zero-shot", total=steps)
        for source in label_sources:
            variant = run.model_copy(update={"head": "embedding", "label_source": source})
            reference = None
            if supervised:
                full = SentimentModel(variant).fit(dataset, progress=False)
                reference = _scores(full, dataset, "test", labels)
                bar.advance(task)
            for unseen in held_out:
                name = " + ".join(unseen)
                model = SentimentModel(variant).fit(seen_only(dataset, unseen), progress=False)
                ids, scores = _scores(model, dataset, "test", labels)
                truth = _truth(dataset, ids)
                base = {"label_source": source, "unseen": name}
                rows.append(
                    {"method": "zero-shot", **base, **gzsl_metrics(truth, scores, labels, unseen)}
                )
                val_ids, val_scores = _scores(model, dataset, "val", labels)
                bias = stacking_bias(val_scores, _truth(dataset, val_ids), labels, unseen)
                shifted = with_bias(scores, labels, unseen, bias)
                rows.append(
                    {
                        "method": "zero-shot, calibrated stacking",
                        **base,
                        **gzsl_metrics(truth, shifted, labels, unseen),
                        "bias": bias,
                    }
                )
                if reference is not None:
                    ref_truth = _truth(dataset, reference[0])
                    figures = gzsl_metrics(ref_truth, reference[1], labels, unseen)
                    rows.append({"method": "supervised (all labels)", **base, **figures})
                bar.advance(task)
    for unseen in held_out:
        base = {"label_source": "-", "unseen": " + ".join(unseen)}
        rows.append({"method": "chance", **base, **gzsl_chance(labels, unseen)})
    table = pd.DataFrame(rows)
    grouped = table.groupby(["method", "label_source"], sort=False)[list(GZSL_FIGURES)]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    summary = mean.reset_index()
    for figure in GZSL_FIGURES:
        summary[f"{figure}_std"] = std[figure].to_numpy()
    summary.insert(2, "unseen_sets", grouped.size().to_numpy())
    counts = test["label"].astype(str).value_counts()
    return GeneralisedResult(table, summary, {label: int(counts.get(label, 0)) for label in labels})
