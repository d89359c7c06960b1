"""What defines a trained sentiment model: its inputs, architecture, head and training.

One :class:`RunConfig` is enough to retrain a model from a prepared dataset; it is written into
every model directory and next to every run's results.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sentimodal.config import Config
from sentimodal.models.config import HeadKind
from sentimodal.models.label_space import GLOVE_SOURCE
from sentimodal.training.config import ConfidentConfig, TrainConfig

ModelKind = Literal["text", "image", "concat", "gated", "late"]
MODEL_KINDS: tuple[str, ...] = ("text", "image", "concat", "gated", "late")


class RunConfig(Config):
    """Inputs, architecture and training of one model; every default can be overridden.

    ``model`` says which modalities are used and how they are combined: ``text`` and ``image``
    are unimodal, ``concat`` and ``gated`` fuse feature vectors, ``late`` averages the class
    scores of a text and an image model trained together. ``model_options`` go to the model's
    own config (e.g. ``hidden``, ``dropout``, ``gate``, ``compress_image``).

    The default (late fusion of MiniLM and EfficientNet-Lite0 MLPs) had the best validation
    accuracy on MVSA-Single among the grids in docs/results (modalities, study-fusion).
    """

    model: ModelKind = "late"
    head: HeadKind = "softmax"
    image_encoder: str = "efficientnet_lite0"
    image_encoder_config: dict[str, Any] = Field(default_factory=dict)
    text_encoder: str = "minilm"
    text_encoder_config: dict[str, Any] = Field(default_factory=dict)
    #: where label vectors come from, for embedding heads
    label_source: Literal["glove_6b_50d", "minilm"] = GLOVE_SOURCE
    model_options: dict[str, Any] = Field(default_factory=dict)
    train: TrainConfig = Field(default_factory=TrainConfig)
    #: continue training on confident training examples afterwards (None: don't)
    confident: ConfidentConfig | None = None
    feature_batch_size: int = Field(64, ge=1)
    feature_workers: int = Field(2, ge=0)

    @property
    def uses_text(self) -> bool:
        return self.model != "image"

    @property
    def uses_image(self) -> bool:
        return self.model != "text"
