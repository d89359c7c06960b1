"""Typed settings of a training run, its profiles, and fine-tuning on confident examples."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from sentimodal.config import Config, Seed

LossKind = Literal["cross_entropy", "cosine", "mse", "hinge"]


class HingeVocabulary(Config):
    """Words the hinge rank loss uses besides the labels, per training label.

    The seen labels alone constrain the space only along the line between them; words placed
    by the same vector source (e.g. sentiment adjectives) shape it more widely, so that an
    unseen label can find a place of its own. Labels without an entry use the plain loss.
    """

    #: label -> words its posts must be farther from (by the margin) than from their target
    negatives: dict[str, list[str]] = Field(default_factory=dict)
    #: label -> words whose vectors, averaged with the label's, make its posts' target
    targets: dict[str, list[str]] = Field(default_factory=dict)


class TrainConfig(Config):
    """How to train: optimiser, schedule, early stopping, batching, loss, seed."""

    optimizer: Literal["sgd", "rmsprop", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    #: learning rate of pretrained parameters that are fine-tuned (a transformer text branch);
    #: the rate that suits a new head would wipe out what pretraining learned
    backbone_lr: float = Field(5e-5, gt=0)
    #: "linear": rise over the first ``warmup`` fraction of steps, then fall linearly to 0 at
    #: the last step (the usual schedule for fine-tuning transformers); "constant": no schedule
    schedule: Literal["constant", "linear"] = "constant"
    warmup: float = Field(0.0, ge=0.0, lt=1.0)
    #: clip the gradients' global norm to this value; None: no clipping
    grad_clip: float | None = Field(None, gt=0)
    #: forward passes in bfloat16 on a CUDA GPU (ignored elsewhere: the CPU stays float32)
    mixed_precision: bool = False
    #: SGD momentum
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(64, ge=1)
    #: frozen-feature heads are cheap and small data is noisy: a long budget with patient early
    #: stopping, so that a slow start does not end on the majority class
    epochs: int = Field(40, ge=1)
    #: epochs without improvement of ``monitor`` before stopping; None trains all epochs
    patience: int | None = Field(6, ge=1)
    monitor: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    #: end with the weights of the best validation epoch, not the last one
    restore_best: bool = True
    seed: Seed = 0
    #: "balanced" weighs each class by n / (classes * count), for skewed label distributions
    class_weight: Literal["none", "balanced"] = "none"
    #: None: cross-entropy for softmax heads, cosine proximity for embedding heads
    loss: LossKind | None = None
    #: softmax heads: cross-entropy to each training post's label distribution (the dataset's
    #: ``label_distribution``, e.g. Emotion6's votes) instead of to its one hard label
    soft_targets: bool = False
    #: margin of the hinge rank loss
    margin: float = Field(0.1, gt=0)
    #: extra contrast (and target) words of the hinge rank loss; None: the labels only
    vocabulary: HingeVocabulary | None = None
    #: token sequences: "bucket" sorts them by length within chunks of ``bucket_chunk`` batches
    #: and trims each batch to its longest; "trim" only trims random batches; "none" keeps the
    #: full padded width (as Keras does; for comparisons)
    length_batching: Literal["bucket", "trim", "none"] = "bucket"
    bucket_chunk: int = Field(50, ge=1)
    eval_batch_size: int = Field(512, ge=1)


class ConfidentConfig(Config):
    """Fine-tuning on confident examples: keep training examples whose score for their own
    label is above ``threshold`` (probability for softmax heads, cosine for embedding heads),
    then continue training on them."""

    threshold: float = Field(0.6, ge=0, le=1)
    epochs: int = Field(5, ge=1)
    #: learning rate of the continued training; None keeps the training run's
    lr: float | None = Field(None, gt=0)


#: How a fine-tuned transformer trains (the default model): AdamW with a linear warmup and
#: decay over 4 epochs, the transformer at ``backbone_lr`` and the rest at ``lr``; no early
#: stopping (a schedule that ends at 0 needs its full length), but the best val epoch is kept.
FINE_TUNE_PROFILE: dict[str, Any] = {
    "optimizer": "adamw",
    "lr": 1e-3,
    "backbone_lr": 5e-5,
    "weight_decay": 0.01,
    "batch_size": 32,
    "epochs": 4,
    "patience": None,
    "schedule": "linear",
    "warmup": 0.1,
    "grad_clip": 1.0,
}
#: Frozen-feature models train with TrainConfig's own defaults.
FROZEN_PROFILE: dict[str, Any] = {}


def given_settings(train: TrainConfig | Mapping[str, Any] | None) -> dict[str, Any]:
    """The training settings the user actually gave, whatever form they came in: a mapping's
    keys, or the fields set on a TrainConfig (not its defaults)."""
    if train is None:
        return {}
    if isinstance(train, TrainConfig):
        return train.model_dump(include=train.model_fields_set)
    return dict(train)


def apply_profile(
    train: TrainConfig | Mapping[str, Any] | None, profile: Mapping[str, Any]
) -> dict[str, Any]:
    """A profile fills only the settings the user did not give."""
    return {**profile, **given_settings(train)}
