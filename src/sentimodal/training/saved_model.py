"""The estimator's fitted state as a model directory (see :mod:`model_dir` for the format):
config and identity of every part in JSON, weights in safetensors, labels and the label space,
the text vocabulary, history and metrics; read back with every part checked against the
directory's own record of it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from sentimodal.config import validation_message
from sentimodal.devices import resolve_device
from sentimodal.errors import UserInputError
from sentimodal.features.image_encoders import get_image_encoder
from sentimodal.features.image_encoders.base import ImageEncoder
from sentimodal.features.text_encoders import saved_text_encoder
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.models.base import SentimentNet
from sentimodal.models.label_space import LabelSpace
from sentimodal.models.registry import build_model, config_from_dict
from sentimodal.training import model_dir
from sentimodal.training.calibration import CALIBRATION_FILE, Calibration
from sentimodal.training.fitted import FittedState
from sentimodal.training.run_config import RunConfig
from sentimodal.training.scaler import FeatureScaler
from sentimodal.training.seen_posts import load_seen, save_seen

Fitted = TypeVar("Fitted", bound=FittedState)


def save_model(model: FittedState, directory: str | Path) -> Path:
    """Write the model directory (config, safetensors weights, labels, vocab, history)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    encoders: dict[str, Any] = {}
    if model.image_encoder_ is not None:
        encoders["image"] = _encoder_entry(model.image_encoder_)
    if model.text_encoder_ is not None:
        encoders["text"] = _encoder_entry(model.text_encoder_)
        model.text_encoder_.save(directory)
    config = {
        **model_dir.config_header(),
        "run": model.run_.to_dict(),
        "given": model.given_.to_dict(),
        "model": model.network_config_.to_dict(),
        "labels": list(model.labels_),
        "encoders": encoders,
        "best_epoch": model.best_epoch_,
        "warnings": list(model.warnings_),
        "train_splits": list(model.train_splits_),
    }
    model_dir.save_weights(model.network_, directory)
    model.scaler_.save(directory)
    if model.train_fingerprints_ is not None:
        save_seen(model.train_fingerprints_, directory)
    space = model.label_space_.to_dict() if model.label_space_ is not None else None
    model_dir.write_json(
        directory / model_dir.LABELS_FILE, {"labels": list(model.labels_), "space": space}
    )
    model_dir.write_json(directory / model_dir.HISTORY_FILE, model.history_)
    if model.metrics_:
        model_dir.write_json(directory / model_dir.METRICS_FILE, model.metrics_)
    calibration = directory / CALIBRATION_FILE
    if model.calibration_ is not None:
        model.calibration_.save(directory)
    elif calibration.is_file():
        calibration.unlink()  # a model saved over another keeps none of its files
    model.run_.save(directory / model_dir.RUN_FILE)
    model_dir.write_json(directory / model_dir.CONFIG_FILE, config)
    return directory


def load_model(cls: type[Fitted], directory: str | Path, device: str = "auto") -> Fitted:
    """Read a model directory onto ``device`` (weights are stored on the CPU, so a model
    trained on a GPU loads anywhere); refuses foreign, corrupted or incompatible ones."""
    directory = Path(directory)
    config = model_dir.read_config(directory)
    try:
        run = RunConfig.model_validate(config["run"])
        # models saved before the two were kept apart recorded the resolved settings only
        given = RunConfig.model_validate(config.get("given", config["run"]))
    except ValidationError as exc:
        raise UserInputError(validation_message(exc, f"{directory}: bad run config ")) from None
    model = cls(given)
    model.run_, model.given_ = run, given
    model.labels_ = list(config["labels"])
    model.network_config_ = config_from_dict(config["model"])
    space = model_dir.read_labels(directory, model.labels_)
    model.label_space_ = LabelSpace.from_dict(space) if space else None

    def build() -> SentimentNet:
        net = build_model(model.network_config_)
        if model.label_space_ is not None:
            net.set_label_space(model.label_space_)
        return net

    # shapes checked against the weights file before anything is allocated
    model.network_: SentimentNet = model_dir.build_checked(build, directory)
    model_dir.load_weights(model.network_, directory)
    model.network_.eval().to(resolve_device(device))
    model.scaler_ = FeatureScaler.load(directory)
    model.image_encoder_, model.text_encoder_ = _load_encoders(config["encoders"], directory)
    for encoder in (model.image_encoder_, model.text_encoder_):
        if encoder is not None:
            encoder.to(resolve_device(device))
    history = directory / model_dir.HISTORY_FILE
    model.history_ = model_dir.read_json(history) if history.is_file() else []
    metrics = directory / model_dir.METRICS_FILE
    model.metrics_ = model_dir.read_json(metrics) if metrics.is_file() else {}
    model.best_epoch_ = config.get("best_epoch")
    calibration = directory / CALIBRATION_FILE
    model.calibration_ = (
        Calibration.from_dict(model_dir.read_json(calibration), str(calibration))
        if calibration.is_file() and model.label_space_ is None
        else None
    )
    model.warnings_ = list(config.get("warnings", []))
    model.train_splits_ = list(config.get("train_splits", ["train"]))
    model.train_fingerprints_ = load_seen(directory)
    return model


def _encoder_entry(encoder: ImageEncoder | TextEncoder) -> dict[str, Any]:
    return {"name": encoder.name, "config": encoder.config, "identity": encoder.identity}


def _load_encoders(
    entries: Mapping[str, Any], directory: Path
) -> tuple[ImageEncoder | None, TextEncoder | None]:
    """Rebuild the encoders and check they are the very ones the model was trained on."""
    image = text = None
    if "image" in entries:
        image = get_image_encoder(entries["image"]["name"], **entries["image"]["config"])
    if "text" in entries:
        text = saved_text_encoder(entries["text"]["name"], entries["text"]["config"])
        if text.learns:
            text.load(directory)
    for kind, encoder in (("image", image), ("text", text)):
        if encoder is not None and encoder.identity != entries[kind]["identity"]:
            raise UserInputError(
                f"{directory}: the {kind} encoder {encoder.name!r} here has weights "
                f"{encoder.identity}, but the model was trained on {entries[kind]['identity']}"
            )
    return image, text
