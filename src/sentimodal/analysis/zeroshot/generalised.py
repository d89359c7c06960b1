"""Generalised zero-shot: several unseen labels, every choice of them, the standard figures.

For each set of unseen labels the embedding head is trained on the seen labels only, then
every test post is ranked among all labels (Xian et al., 2018), plainly and with calibrated
stacking (Chao et al., 2016), against chance and the same model trained on every label.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sentimodal.analysis.zeroshot.held_out import (
    label_scores,
    prompt_problem,
    seen_only,
    true_labels,
)
from sentimodal.errors import UserInputError
from sentimodal.models.config import GLOVE_SOURCE, MINILM_SOURCE
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.progress import progress_bar
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig


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
    prompts: str | None = None,
) -> GeneralisedResult:
    """For each unseen set and label source: train the embedding head on the seen labels only
    (their train and val posts), then score every test post on all labels, the unseen ones
    placed by their label vectors alone; then again with calibrated stacking (a bias on the
    unseen labels' scores chosen on seen validation posts only, see :func:`stacking_bias`).
    The supervised reference is the same model trained on every label, scored on the same
    test posts. With ``prompts`` (a template, ``run`` over clip: encoders), the labels are
    also scored by prompt in the joint space, as one more "label source" (no reference:
    prompt scores do not depend on the labels trained on)."""
    for split in ("train", "val", "test"):
        if split not in dataset.splits:
            raise UserInputError(f"{dataset.root}: the protocol needs a {split} split")
    problem = None if prompts is None else prompt_problem(run, prompts)
    if problem is not None:
        raise UserInputError(problem)
    labels = dataset.labels
    test = dataset.split("test")
    missing = [label for label in labels if not (test["label"] == label).any()]
    if missing:
        raise UserInputError(f"{dataset.root}: no test post of {missing} to evaluate")
    rows: list[dict[str, Any]] = []
    sources: list[tuple[str, str | None]] = [(source, None) for source in label_sources]
    if prompts is not None:
        sources.append((f"prompts: {prompts}", prompts))
    steps = len(sources) * len(held_out) + len(label_sources) * int(supervised)
    with progress_bar(progress, unit="runs", transient=True) as bar:
        task = bar.add_task("generalised zero-shot", total=steps)
        for source, template in sources:
            variant = run.model_copy(update={"head": "embedding"})
            if template is None:
                variant = variant.model_copy(update={"label_source": source})
            reference = None
            if supervised and template is None:
                full = SentimentModel(variant).fit(dataset, progress=False)
                reference = label_scores(full, dataset, "test", labels)
                bar.advance(task)
            for unseen in held_out:
                name = " + ".join(unseen)
                model = SentimentModel(variant).fit(seen_only(dataset, unseen), progress=False)
                ids, scores = label_scores(model, dataset, "test", labels, template)
                truth = true_labels(dataset, ids)
                base = {"label_source": source, "unseen": name}
                rows.append(
                    {"method": "zero-shot", **base, **gzsl_metrics(truth, scores, labels, unseen)}
                )
                val_ids, val_scores = label_scores(model, dataset, "val", labels, template)
                bias = stacking_bias(val_scores, true_labels(dataset, val_ids), labels, unseen)
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
                    ref_truth = true_labels(dataset, reference[0])
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
