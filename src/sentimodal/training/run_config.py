"""What defines a trained sentiment model: its inputs, architecture, head and training.

One :class:`RunConfig` is enough to retrain a model from a prepared dataset; it is written into
every model directory and next to every run's results.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from sentimodal.config import Config
from sentimodal.models.config import HeadKind
from sentimodal.models.label_sources import GLOVE_SOURCE
from sentimodal.training.config import ConfidentConfig, TrainConfig

ModelKind = Literal["text", "image", "concat", "gated", "late"]
MODEL_KINDS: tuple[str, ...] = ("text", "image", "concat", "gated", "late")

#: How a fine-tuned transformer trains (the default model): AdamW with a linear warmup and
#: decay over 4 epochs, the transformer at ``backbone_lr`` and the rest at ``lr``; no early
#: stopping (a schedule that ends at 0 needs its full length), but the best val epoch is kept.
FINE_TUNE_TRAIN: dict[str, Any] = {
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
#: text encoders whose model is a pretrained transformer fine-tuned on the labels
FINE_TUNED_TEXT_ENCODERS = ("minilm_tokens",)
#: feature-vector fusions cannot read token ids, so they default to frozen MiniLM vectors
_VECTOR_FUSIONS = ("concat", "gated")


class RunConfig(Config):
    """Inputs, architecture and training of one model; every default can be overridden.

    ``model`` says which modalities are used and how they are combined: ``text`` and ``image``
    are unimodal, ``concat`` and ``gated`` fuse feature vectors, ``late`` averages the class
    scores of a text and an image model trained together. ``model_options`` go to the model's
    own config (e.g. ``hidden``, ``dropout``, ``gate``, ``compress_image``).

    The default had the best validation accuracy on MVSA-Single among the grids in
    docs/results: late fusion of MiniLM fine-tuned on the labels (WordPiece ids,
    ``minilm_tokens``) and an MLP on frozen EfficientNet-Lite0 features.

    Defaults follow what is trained. Without a ``text_encoder``, ``concat`` and ``gated`` read
    frozen ``minilm`` vectors and the others fine-tune MiniLM (``minilm_tokens``). A model that
    fine-tunes a transformer trains with :data:`FINE_TUNE_TRAIN`, the others with
    :class:`TrainConfig`'s defaults (Adam, up to 20 epochs, early stopping). A ``train`` given as
    a mapping is laid over those, so ``--epochs 6`` changes the epochs and nothing else.
    """

    model: ModelKind = "late"
    head: HeadKind = "softmax"
    image_encoder: str = "efficientnet_lite0"
    image_encoder_config: dict[str, Any] = Field(default_factory=dict)
    text_encoder: str = "minilm_tokens"
    text_encoder_config: dict[str, Any] = Field(default_factory=dict)
    #: where label vectors come from, for embedding heads
    label_source: Literal["glove_6b_50d", "minilm"] = GLOVE_SOURCE
    model_options: dict[str, Any] = Field(default_factory=dict)
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(**FINE_TUNE_TRAIN))
    #: continue training on confident training examples afterwards (None: don't)
    confident: ConfidentConfig | None = None
    feature_batch_size: int = Field(64, ge=1)
    feature_workers: int = Field(2, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _defaults_for_the_model(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        model = data.get("model", "late")
        if data.get("text_encoder") is None:
            data["text_encoder"] = "minilm" if model in _VECTOR_FUSIONS else "minilm_tokens"
        fine_tunes = model != "image" and data["text_encoder"] in FINE_TUNED_TEXT_ENCODERS
        profile = FINE_TUNE_TRAIN if fine_tunes else {}
        train = data.get("train")
        if train is None:
            data["train"] = dict(profile)
        elif isinstance(train, dict):
            data["train"] = {**profile, **train}
        return data

    @property
    def uses_text(self) -> bool:
        return self.model != "image"

    @property
    def uses_image(self) -> bool:
        return self.model != "text"
