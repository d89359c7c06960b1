"""The training steps of ``SentimentModel.fit`` once a dataset's features are read: scale,
build the network the recipe derives, start its pretrained parts, train, fine-tune on
confident examples, let it fit what only a trained network can on val, calibrate its
scores on val, and finish."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import pandas as pd

from sentimodal.devices import resolve_device
from sentimodal.features.image_encoders.base import ImageEncoder
from sentimodal.features.store import ExtractionResult
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.models.base import PretrainedStart
from sentimodal.models.forward import predict_scores
from sentimodal.models.label_space import LabelSpace
from sentimodal.models.recipes import Modality, ModalityInput
from sentimodal.models.registry import build_model
from sentimodal.preparation.dataset import PreparedDataset
from sentimodal.preparation.dataset_labels import soft_targets
from sentimodal.training.calibration import calibrate
from sentimodal.training.checkpoint import Checkpoints, fingerprint
from sentimodal.training.confident import fine_tune_confident
from sentimodal.training.fitted import FittedState
from sentimodal.training.inputs import label_indices, read_features, split_inputs
from sentimodal.training.run_config import RunConfig, network_config
from sentimodal.training.scaler import FeatureScaler
from sentimodal.training.trainer import fit as train_model


def train_network(
    model: FittedState,
    dataset: PreparedDataset,
    results: Mapping[str, ExtractionResult],
    progress: bool,
    checkpoints: Checkpoints | None = None,
) -> tuple[dict[str, np.ndarray], str]:
    """Train ``model``'s network (its run, labels, encoders and train splits already set);
    the fitted parts become its attributes. Returns the inputs a last check reads (val's,
    else train's) and that split's name. ``run.engine == "ray"`` trains on Ray Train
    workers, each reading its own part of the training rows."""
    run = model.run_
    if run.engine == "ray":
        from sentimodal.training.ray_train import train_on_ray

        start_network(model)
        val = train_on_ray(model, dataset, results, progress, checkpoints)
        model.confident_kept_ = 0
        return _finish(model, val, None)
    sets = read_features(results)
    train = split_inputs(dataset, sets, model.train_splits_, scaler=None)
    model.scaler_ = FeatureScaler().fit(train.data)
    train.data = model.scaler_.transform(train.data)
    validate = "val" in dataset.splits and "val" not in model.train_splits_
    val = split_inputs(dataset, sets, "val", model.scaler_) if validate else None
    y_train = label_indices(dataset, train.ids, model.labels_)
    start_network(model)
    val_pair = (val.data, label_indices(dataset, val.ids, model.labels_)) if val else None
    result = train_model(
        model.network_,
        train.data,
        y_train,
        val=val_pair,
        config=run.train,
        progress=progress,
        soft_targets=soft_targets(dataset, train.ids, run.head) if run.train.soft_targets else None,
        checkpoints=checkpoints,
        device=resolve_device(run.device),
    )
    model.history_ = result.history
    model.best_epoch_ = result.best_epoch
    if run.confident is not None:
        tuned = fine_tune_confident(
            model.network_,
            train.data,
            y_train,
            val=val_pair,
            train_config=run.train,
            config=run.confident,
            progress=progress,
        )
        offset = len(model.history_)
        model.history_ += [
            {**r, "epoch": r["epoch"] + offset, "phase": "confident"} for r in tuned.result.history
        ]
        model.confident_kept_ = int(tuned.kept.sum())
    return _finish(model, val_pair, train.data)


def run_fingerprint(
    run: RunConfig,
    dataset: PreparedDataset,
    splits: list[str],
    results: Mapping[str, ExtractionResult],
) -> str:
    """What a checkpoint must have been made with to be resumed: the resolved settings
    (but where Ray runs and how often it may retry), the data and the features."""
    settings = run.to_dict()
    for key in ("ray_address", "max_failures"):
        settings.pop(key, None)
    examples = dataset.examples
    rows = pd.util.hash_pandas_object(examples[["id", "label", "split"]], index=False)
    data = hashlib.sha256(rows.to_numpy().tobytes()).hexdigest()
    folders = sorted(str(result.directory.name) for result in results.values())
    return fingerprint(settings, splits, data, folders)


def start_network(model: FittedState) -> None:
    """Build the network the recipe derives from the fitted encoders and start its
    pretrained parts (the same weights from the same seed, in any process)."""
    run = model.run_
    model.label_space_ = (
        LabelSpace.from_source(run.label_source, model.labels_) if run.head == "embedding" else None
    )
    model.network_config_ = network_config(
        run,
        encoder_inputs_of(model.text_encoder_, model.image_encoder_),
        len(model.labels_),
        model.label_space_.dim if model.label_space_ is not None else None,
    )
    model.network_ = build_model(model.network_config_, seed=run.train.seed)
    vocabulary = model.text_encoder_.vocabulary() if model.text_encoder_ is not None else None
    model.network_.start_pretrained(PretrainedStart(run.train.seed, vocabulary))
    if model.label_space_ is not None:
        model.network_.set_label_space(model.label_space_)


def _finish(
    model: FittedState,
    val: tuple[dict[str, np.ndarray], np.ndarray] | None,
    train: dict[str, np.ndarray] | None,
) -> tuple[dict[str, np.ndarray], str]:
    """What only a trained network can fit, on val; the inputs the last check reads."""
    if val is not None:
        model.network_.fit_after_training(*val, model.run_.train.eval_batch_size)
    model.network_.end_training()
    model.calibration_ = None
    if val is not None and model.run_.head == "softmax":
        scores = predict_scores(model.network_, val[0], model.run_.train.eval_batch_size)
        model.calibration_ = calibrate(scores, val[1], use=model.run_.calibrate)
    model.metrics_ = {}
    if val is not None:
        return val[0], "val"
    # Ray without val: no process holds the training rows to check them on
    return (train, "train") if train is not None else ({}, "train")


def collapse_warnings(model: FittedState, data: Mapping[str, np.ndarray], split: str) -> list[str]:
    """A model that predicts one class for everything learned nothing but the majority:
    say so, rather than let its accuracy pass for skill."""
    if not data:
        return []
    predicted = predict_scores(model.network_, data, model.run_.train.eval_batch_size).argmax(1)
    if len(np.unique(predicted)) > 1 or len(model.labels_) < 2:
        return []
    label = model.classes_[int(predicted[0])]
    return [
        f"the model predicts {label!r} for every {split} post: it learned only the "
        f"majority class (train longer, e.g. more epochs or less patience for early "
        f"stopping, or use class_weight='balanced')"
    ]


def encoder_inputs_of(
    text: TextEncoder | None, image: ImageEncoder | None
) -> dict[Modality, ModalityInput]:
    """What fitted encoders give the network."""
    inputs: dict[Modality, ModalityInput] = {}
    if text is not None:
        inputs["text"] = ModalityInput.of_text(text)
    if image is not None:
        inputs["image"] = ModalityInput.of_image(image)
    return inputs
