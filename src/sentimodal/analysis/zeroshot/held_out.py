"""What every zero-shot protocol shares: a dataset whose unseen labels' training posts are
held out, and a trained model's scores on all labels next to the true labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sentimodal.errors import UserInputError
from sentimodal.preparation.dataset import PreparedDataset, count_by_split
from sentimodal.training.estimator import SentimentModel
from sentimodal.training.run_config import RunConfig

#: split name the unseen label's train/val posts are moved to (kept in the examples, so the
#: feature cache, keyed by the examples, is reused)
HELD_OUT_SPLIT = "unseen_held_out"


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


def label_scores(
    model: SentimentModel,
    dataset: PreparedDataset,
    split: str,
    labels: list[str],
    template: str | None = None,
) -> tuple[list[str], np.ndarray]:
    """The ids of a split's posts and the model's score on each of ``labels`` (N, labels);
    with ``template``, by label prompts in the joint space of a model over clip: encoders."""
    model.set_labels(labels, template=template)
    frame = model.predict_frame(dataset, split)
    return frame["id"].tolist(), frame[labels].to_numpy()


def prompt_problem(run: RunConfig, template: str) -> str | None:
    """Why labels cannot be scored by ``template`` with ``run`` (None: they can)."""
    if "{label}" not in template:
        return f"the prompt template {template!r} has no {{label}}"
    encoders = [e for e in (run.text_encoder, run.image_encoder) if e]
    if not any(str(e).startswith("clip:") for e in encoders):
        return "prompts need a run over clip: encoders (--text-encoder clip:...)"
    return None


def true_labels(dataset: PreparedDataset, ids: Sequence[str]) -> np.ndarray:
    """The labels of ``ids``, in that order, as an object array."""
    labels = dataset.examples.set_index(dataset.examples["id"].astype(str))["label"]
    return labels.loc[list(ids)].astype(str).to_numpy(dtype=object)
