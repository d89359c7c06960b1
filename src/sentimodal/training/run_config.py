"""What defines a trained sentiment model: its inputs, architecture, head and training.

One :class:`RunConfig` is enough to retrain a model from a prepared dataset; it is written into
every model directory and next to every run's results.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from sentimodal.config import Config
from sentimodal.features.defaults import DEFAULT_IMAGE_ENCODER, FEATURE_BATCH_SIZE, FEATURE_WORKERS
from sentimodal.models.config import GLOVE_SOURCE, HeadKind, LabelSource
from sentimodal.models.recipes import (
    DEFAULT_RECIPE,
    encoder_inputs,
    fine_tunes,
    get_recipe,
    list_recipes,
)
from sentimodal.training.train_config import (
    FINE_TUNE_PROFILE,
    FROZEN_PROFILE,
    ConfidentConfig,
    TrainConfig,
    apply_profile,
)


class RunConfig(Config):
    """Inputs, architecture and training of one model; every default can be overridden.

    ``model`` names a recipe (:mod:`sentimodal.models.recipes`): ``text`` and ``image`` are
    unimodal, ``concat`` and ``gated`` fuse feature vectors, ``late`` averages the class scores
    of a text and an image model trained together. ``model_options`` go to the model's own
    config (e.g. ``hidden``, ``dropout``, ``gate``, ``compress_image``; for ``late``, per
    branch under ``text`` / ``image``).

    The default had the best validation accuracy on MVSA-Single among the grids in
    docs/results: late fusion of MiniLM fine-tuned on the labels (WordPiece ids,
    ``minilm_tokens``) and an MLP on frozen EfficientNet-Lite0 features.

    Defaults follow what is trained. Without a ``text_encoder``, each recipe takes its own
    (frozen ``minilm`` vectors for ``concat`` and ``gated``, fine-tuned MiniLM otherwise). A
    model that fine-tunes a transformer trains with the fine-tune profile, the others with
    :class:`TrainConfig`'s defaults; either way a profile fills only the training settings the
    user did not give, whether they came as a mapping or as a ``TrainConfig``.
    """

    model: str = DEFAULT_RECIPE
    head: HeadKind = "softmax"
    image_encoder: str = DEFAULT_IMAGE_ENCODER
    #: not given: the recipe's settings for the default encoder (filled in on validation)
    image_encoder_config: dict[str, Any] = Field(default_factory=dict)
    #: None: the recipe's own text encoder (filled in on validation)
    text_encoder: str | None = None
    text_encoder_config: dict[str, Any] = Field(default_factory=dict)
    #: where label vectors come from, for embedding heads
    label_source: LabelSource = GLOVE_SOURCE
    model_options: dict[str, Any] = Field(default_factory=dict)
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(**FINE_TUNE_PROFILE))
    #: continue training on confident training examples afterwards (None: don't)
    confident: ConfidentConfig | None = None
    feature_batch_size: int = Field(FEATURE_BATCH_SIZE, ge=1)
    feature_workers: int = Field(FEATURE_WORKERS, ge=0)

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        if model not in list_recipes():
            raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(list_recipes())}")
        return model

    @model_validator(mode="before")
    @classmethod
    def _defaults_for_the_model(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        model = data.get("model", DEFAULT_RECIPE)
        if model not in list_recipes():
            return data  # the field validator says what is wrong
        recipe = get_recipe(model)
        if data.get("text_encoder") is None:
            data["text_encoder"] = recipe.default_text_encoder or "minilm"
        if data.get("image_encoder_config") is None:
            default = data.get("image_encoder", DEFAULT_IMAGE_ENCODER) == DEFAULT_IMAGE_ENCODER
            data["image_encoder_config"] = {
                **(recipe.default_image_config if default else {}),
                **recipe.form_image_config,
            }
        tuned = "text" in recipe.modalities and fine_tunes(str(data["text_encoder"]))
        data["train"] = apply_profile(
            data.get("train"), FINE_TUNE_PROFILE if tuned else FROZEN_PROFILE
        )
        return data

    @property
    def uses_text(self) -> bool:
        return "text" in get_recipe(self.model).modalities

    @property
    def uses_image(self) -> bool:
        return "image" in get_recipe(self.model).modalities

    @property
    def fine_tunes(self) -> bool:
        """Whether training fine-tunes a pretrained text transformer (slow: minutes, not s)."""
        return self.uses_text and fine_tunes(str(self.text_encoder))

    def applicable(self) -> dict[str, Any]:
        """The settings that act on this run, as plain data: what a report shows. Settings of
        a modality the model does not read, of another optimiser, schedule, loss or head are
        left out (they are kept in run.yaml, where they are inert)."""
        data = self.to_dict()
        train = data["train"]
        if not self.uses_text:
            for key in ("text_encoder", "text_encoder_config"):
                data.pop(key)
        if not self.uses_image:
            for key in ("image_encoder", "image_encoder_config"):
                data.pop(key)
        if self.head != "embedding":
            data.pop("label_source")
        if self.train.optimizer != "sgd":
            train.pop("momentum")
        if not self.fine_tunes:
            train.pop("backbone_lr")
        if self.train.schedule != "linear":
            train.pop("warmup")
        if self.train.loss != "hinge":
            train.pop("margin")
            train.pop("vocabulary")
        if self.train.patience is None or self.train.epochs == 1:
            train.pop("monitor")
        if self.confident is None:
            data.pop("confident")
        return data


#: placeholders for what the data decides, so that options validate before any data is read
_PLACEHOLDER_CLASSES = 2
_PLACEHOLDER_LABEL_DIM = 1


def check_run(run: RunConfig) -> None:
    """Validate a run's encoders and model options through its recipe before any feature is
    extracted (an experiment grid before its first cell, ``fit`` before its encoders run), as
    the model config built after extraction will."""
    recipe = get_recipe(run.model)
    inputs = encoder_inputs(
        recipe.modalities,
        run.image_encoder,
        run.image_encoder_config,
        str(run.text_encoder),
        run.text_encoder_config,
    )
    head = {
        "head": run.head,
        "n_classes": _PLACEHOLDER_CLASSES,
        "label_dim": _PLACEHOLDER_LABEL_DIM if run.head == "embedding" else None,
    }
    encoders = {"text": str(run.text_encoder), "image": run.image_encoder}
    recipe.model_config(inputs, head, run.model_options, encoders)
