"""What defines a trained sentiment model: its inputs, architecture, head and training.

One :class:`RunConfig` is enough to retrain a model from a prepared dataset; it is written into
every model directory and next to every run's results.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, field_serializer, field_validator, model_validator

from sentimodal.config import Config
from sentimodal.devices import Device
from sentimodal.features.defaults import (
    DEFAULT_IMAGE_ENCODER,
    FEATURE_BATCH_SIZE,
    FEATURE_WORKERS,
    FROZEN_TEXT_ENCODER,
)
from sentimodal.models.config import GLOVE_SOURCE, HeadKind, LabelSource, ModelConfig
from sentimodal.models.recipes import (
    DEFAULT_RECIPE,
    Modality,
    ModalityInput,
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

    What the user set stays apart from what the recipe derives. Fields left out stay unset
    here (``text_encoder`` None, ``image_encoder_config`` None, ``train`` holding only the
    settings given), so a config can be combined with another model, whichever way it was
    built; :meth:`resolved` fills them in for the model the run trains: each recipe's own text
    encoder (frozen ``minilm`` vectors for ``concat`` and ``gated``, fine-tuned MiniLM
    otherwise), its image encoder settings, and the training profile (the fine-tune profile
    for a model that fine-tunes a transformer, :class:`TrainConfig`'s defaults otherwise), a
    profile filling only the training settings the user did not give.
    """

    model: str = DEFAULT_RECIPE
    head: HeadKind = "softmax"
    image_encoder: str = DEFAULT_IMAGE_ENCODER
    #: None: the recipe's settings for the default encoder (see ``resolved``)
    image_encoder_config: dict[str, Any] | None = None
    #: None: the recipe's own text encoder (see ``resolved``)
    text_encoder: str | None = None
    text_encoder_config: dict[str, Any] = Field(default_factory=dict)
    #: where label vectors come from, for embedding heads
    label_source: LabelSource = GLOVE_SOURCE
    model_options: dict[str, Any] = Field(default_factory=dict)
    #: the training settings given; the rest come from the model's profile (see ``resolved``)
    train: TrainConfig = Field(default_factory=TrainConfig)
    #: continue training on confident training examples afterwards (None: don't)
    confident: ConfidentConfig | None = None
    #: where features are computed and the network trains and predicts (see
    #: sentimodal.devices); a loaded model runs where ``load`` says, whatever trained it
    device: Device = "auto"
    feature_batch_size: int = Field(FEATURE_BATCH_SIZE, ge=1)
    feature_workers: int = Field(FEATURE_WORKERS, ge=0)
    #: fit a temperature on val at the end of training and apply it when it lowers val
    #: log-loss (softmax heads; see :mod:`sentimodal.training.calibration`)
    calibrate: bool = True
    #: the share of a DataFrame's (or list's) posts ``fit`` holds out for validation, stratified
    #: by label (early stopping, the best epoch, calibration); 0: train on every post, with no
    #: validation. A prepared dataset keeps its own splits.
    validation_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    #: "ray": train data-parallel on Ray Train (and extract features on Ray Data); see
    #: docs/guide/distributed-training.md
    engine: Literal["local", "ray"] = "local"
    #: Ray Train workers (processes, each on its own part of the rows); engine "ray" only
    workers: int = Field(1, ge=1)
    #: a running Ray cluster (HOST:PORT); None starts a local Ray instance
    ray_address: str | None = None
    #: one GPU per Ray Train worker (NCCL); off: CPU workers (gloo)
    worker_gpus: bool = False
    #: times Ray restarts the workers from the last checkpoint after one fails
    max_failures: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _engine_settings(self) -> RunConfig:
        if self.engine != "ray" and (self.workers > 1 or self.ray_address or self.worker_gpus):
            raise ValueError("workers, ray_address and worker_gpus need engine 'ray'")
        return self

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        if model not in list_recipes():
            raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(list_recipes())}")
        return model

    @field_serializer("train")
    def _given_train(self, train: TrainConfig) -> dict[str, Any]:
        """Only the settings given are written (all of them, once resolved), so that a config
        read back fills the others from the model's profile as before."""
        return train.model_dump(mode="json", exclude_unset=True)

    def resolved(self) -> RunConfig:
        """This config with what the recipe derives filled in: the text encoder, the image
        encoder's settings and every training setting. Resolving twice changes nothing."""
        recipe = get_recipe(self.model)
        text = self.text_encoder or recipe.default_text_encoder or FROZEN_TEXT_ENCODER
        image_config = self.image_encoder_config
        if image_config is None:
            default = self.image_encoder == DEFAULT_IMAGE_ENCODER
            image_config = {
                **(recipe.default_image_config if default else {}),
                **recipe.form_image_config,
            }
        text_config = dict(self.text_encoder_config)
        for key, value in recipe.form_text_config.items():
            if takes_setting(text, key):
                text_config.setdefault(key, value)
        tuned = "text" in recipe.modalities and fine_tunes(text, text_config)
        profile = FINE_TUNE_PROFILE if tuned else FROZEN_PROFILE
        settings = {**TrainConfig().model_dump(), **apply_profile(self.train, profile)}
        return self.model_copy(
            update={
                "text_encoder": text,
                "text_encoder_config": text_config,
                "image_encoder_config": dict(image_config),
                "train": TrainConfig(**settings),
            }
        )

    @property
    def uses_text(self) -> bool:
        return "text" in get_recipe(self.model).modalities

    @property
    def uses_image(self) -> bool:
        return "image" in get_recipe(self.model).modalities

    @property
    def fine_tunes(self) -> bool:
        """Whether training fine-tunes a pretrained text transformer (slow: minutes, not s)."""
        run = self.resolved()
        return self.uses_text and fine_tunes(str(run.text_encoder), run.text_encoder_config)

    def applicable(self, *, solved: bool = False) -> dict[str, Any]:
        """The settings that act on this run, as plain data: what a report shows. Settings of
        a modality the model does not read, of another optimiser, schedule, loss or head are
        left out (they are kept in run.yaml, where they are inert); for a network ``solved``
        directly (no gradient steps) so are the optimiser's, the epochs' and the batches'."""
        run = self.resolved()
        data = run.to_dict()
        train = data["train"]
        if solved:
            data["train"] = {key: train[key] for key in _SOLVED_TRAIN_SETTINGS}
            train = data["train"]
        if not run.uses_text:
            for key in ("text_encoder", "text_encoder_config"):
                data.pop(key)
        if not run.uses_image:
            for key in ("image_encoder", "image_encoder_config"):
                data.pop(key)
        if run.head != "embedding":
            data.pop("label_source")
        for key, inert in (
            ("momentum", run.train.optimizer != "sgd"),
            ("backbone_lr", not run.fine_tunes),
            ("warmup", run.train.schedule != "linear"),
            ("margin", run.train.loss != "hinge"),
            ("vocabulary", run.train.loss != "hinge"),
            ("monitor", run.train.patience is None or run.train.epochs == 1),
        ):
            if inert:
                train.pop(key, None)
        if run.confident is None:
            data.pop("confident")
        data.pop("validation_fraction")  # acts on a DataFrame's split, not on the training
        if run.engine == "local":
            for key in ("engine", "workers", "ray_address", "worker_gpus", "max_failures"):
                data.pop(key)
        return data


#: what still acts on a network fitted in closed form: its seed (the CV folds) and class weights
_SOLVED_TRAIN_SETTINGS = ("seed", "class_weight")

#: placeholders for what the data decides, so that options validate before any data is read
_PLACEHOLDER_CLASSES = 2
_PLACEHOLDER_LABEL_DIM = 1


def takes_setting(text_encoder: str, key: str) -> bool:
    """Whether the text encoder ``text_encoder`` has the setting ``key``."""
    import inspect

    from sentimodal.features.text_encoders import text_encoder_class

    return key in inspect.signature(text_encoder_class(text_encoder)).parameters


def check_run(run: RunConfig) -> None:
    """Validate a run's encoders and model options through its recipe before any feature is
    extracted (an experiment grid before its first cell, ``fit`` before its encoders run), as
    the model config built after extraction will."""
    run = run.resolved()
    inputs = encoder_inputs(
        get_recipe(run.model).modalities,
        run.image_encoder,
        run.image_encoder_config,
        str(run.text_encoder),
        run.text_encoder_config,
    )
    label_dim = _PLACEHOLDER_LABEL_DIM if run.head == "embedding" else None
    network_config(run, inputs, _PLACEHOLDER_CLASSES, label_dim)


def network_config(
    run: RunConfig,
    inputs: Mapping[Modality, ModalityInput],
    n_classes: int,
    label_dim: int | None,
) -> ModelConfig:
    """The network's config: the run's recipe applied to what the encoders give, the head
    and the user's model options."""
    head = {"head": run.head, "n_classes": n_classes, "label_dim": label_dim}
    encoders = {"text": str(run.text_encoder), "image": run.image_encoder}
    return get_recipe(run.model).network_config(inputs, head, run.model_options, encoders)


def check_param(key: str, estimator: str = "SentimentModel") -> None:
    """Refuse an estimator parameter that is not ``config``, a :class:`RunConfig` field or
    ``group__field`` of one of its groups (a settings model's field, or any key of a dict
    field), as scikit-learn's ``set_params`` does: a ValueError naming the valid ones."""
    group, _, name = key.partition("__")
    fields = RunConfig.model_fields
    if key == "config" or (group in fields and not name):
        return
    if group in fields:
        annotation = fields[group].annotation
        parts = (annotation, *typing.get_args(annotation))
        models = [t for t in parts if isinstance(t, type) and issubclass(t, BaseModel)]
        if models and name.partition("__")[0] in models[0].model_fields:
            return
        if any(t is dict or typing.get_origin(t) is dict for t in parts):
            return  # a free dict (encoder or model options): any key
        valid = sorted(models[0].model_fields) if models else []
        raise ValueError(
            f"Invalid parameter {name!r} of {group!r} for estimator {estimator}: "
            + (f"valid ones are {valid}" if valid else f"{group} takes no nested parameters")
        )
    raise ValueError(
        f"Invalid parameter {key!r} for estimator {estimator}. "
        f"Valid parameters are: {['config', *sorted(fields)]}"
    )
