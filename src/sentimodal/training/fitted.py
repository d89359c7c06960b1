"""What a fitted ``SentimentModel`` holds, as the modules that set and read it see it: the
training steps (``fitting``) and the model directory (``saved_model``) work on these fields
without importing the estimator they belong to."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from sentimodal.features.image_encoders.base import ImageEncoder
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.models.base import SentimentNet
from sentimodal.models.config import ModelConfig
from sentimodal.models.label_space import LabelSpace
from sentimodal.training.calibration import Calibration
from sentimodal.training.run_config import RunConfig
from sentimodal.training.scaler import FeatureScaler


class FittedState(Protocol):
    """The fitted attributes (scikit-learn's trailing underscore) of a sentiment model."""

    run_: RunConfig
    given_: RunConfig
    labels_: list[str]
    train_splits_: list[str]
    #: fingerprints of the training posts (None: a model saved without them)
    train_fingerprints_: np.ndarray | None
    image_encoder_: ImageEncoder | None
    text_encoder_: TextEncoder | None
    scaler_: FeatureScaler
    label_space_: LabelSpace | None
    network_config_: ModelConfig
    network_: SentimentNet
    history_: list[dict[str, Any]]
    best_epoch_: int | None
    metrics_: dict[str, Any]
    warnings_: list[str]
    confident_kept_: int
    #: the temperature fitted on val (None: no val split, or an embedding head)
    calibration_: Calibration | None

    @property
    def classes_(self) -> list[str]: ...
