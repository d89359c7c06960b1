"""Recipes: the one table of what each run model is built from.

A run's ``model`` (``text``, ``image``, ``concat``, ``gated``, ``late``) names a recipe. The
recipe says which modalities the model reads, which text encoder it uses unless told
otherwise, which network each modality's features call for (an MLP over vectors, the study's
BiLSTM over its own tokens, the fine-tuned transformer over its WordPiece ids, the pixel CNN
over pixels), which settings are derived from the features (and so cannot be set), and the
model config every other setting goes to. The estimator, experiment grids and the CLI all read
this table (help texts and lists are derived from it); a shipped run model is one row here, and
a user's own is added with :func:`register_recipe` from the user's module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sentimodal.errors import UserInputError
from sentimodal.features.defaults import FINE_TUNED_TEXT_ENCODER, FROZEN_TEXT_ENCODER
from sentimodal.models.config import ModelConfig, TextMPNetConfig, TextTransformerConfig

if TYPE_CHECKING:  # the table itself stays cheap to import: the CLI's help reads it
    from sentimodal.features.image_encoders.base import ImageEncoder
    from sentimodal.features.text_encoders.base import TextEncoder

Modality = Literal["text", "image"]
Form = Literal["vectors", "token_ids", "pixels", "grid"]


@dataclass(frozen=True)
class ModalityInput:
    """What one modality's features look like to a network.

    ``dim`` is the vector width (vectors, and each position's of a grid), the sequence length
    (token ids) or the image side (pixels); ``positions`` is a grid's number of positions;
    ``vocab_size`` is the size of a learned token vocabulary; ``backbone`` names the
    pretrained transformer whose own ids these are (it is then fine-tuned with the model), and
    ``id_shift`` what was added to them so that 0 means padding.
    """

    form: Form
    dim: int
    vocab_size: int | None = None
    backbone: str | None = None
    positions: int | None = None
    id_shift: int = 0

    @classmethod
    def of_text(cls, encoder: TextEncoder) -> ModalityInput:
        if np.dtype(encoder.dtype).kind not in "iu":
            return cls("vectors", int(np.prod(encoder.shape)))
        if encoder.backbone is not None:
            shift = int(getattr(encoder, "id_shift", 0))
            return cls(
                "token_ids", int(encoder.shape[0]), backbone=encoder.backbone, id_shift=shift
            )
        vocabulary = None if encoder.needs_fit else encoder.vocabulary()
        size = len(vocabulary) if vocabulary else None
        return cls("token_ids", int(encoder.shape[0]), size)

    @classmethod
    def of_image(cls, encoder: ImageEncoder) -> ModalityInput:
        if len(encoder.shape) == 3:
            return cls("pixels", int(encoder.shape[-1]))
        if len(encoder.shape) == 2:
            return cls("grid", int(encoder.shape[1]), positions=int(encoder.shape[0]))
        return cls("vectors", int(np.prod(encoder.shape)))


def branch_settings(modality: Modality, given: ModalityInput) -> dict[str, Any]:
    """The network one modality's features call for, with the settings derived from them."""
    if given.form == "vectors":
        return {"kind": "mlp", "input": modality, "input_dim": given.dim}
    if given.form == "pixels":
        return {"kind": "pixel_cnn", "image_size": given.dim}
    if given.backbone is not None:
        from sentimodal.models.text_transformer import backbone_architecture

        # the bundled MPNet keeps its kind (bottom layers frozen by default)
        mpnet = given.backbone == TextMPNetConfig.model_fields["backbone"].default
        config = (TextMPNetConfig if mpnet else TextTransformerConfig)(backbone=given.backbone)
        settings = {
            "kind": config.kind,
            "backbone": given.backbone,
            "architecture": backbone_architecture(config),
        }
        if given.id_shift != config.id_shift:
            settings["id_shift"] = given.id_shift
        return settings
    # a vocabulary not learned yet (a grid checked before any data is read) still validates
    return {"kind": "text_lstm", "vocab_size": given.vocab_size or 2}


#: settings the head fills in on every config (from the labels and the label space)
HEAD_SETTINGS = ("head", "n_classes", "label_dim")


@dataclass(frozen=True)
class Recipe:
    """One run model: what it reads and how its network's config is derived."""

    name: str
    summary: str
    modalities: tuple[Modality, ...]
    #: the text encoder used when the run names none
    default_text_encoder: str | None
    #: feature forms each modality may take (the error says which encoder to use instead)
    accepts: Mapping[Modality, tuple[Form, ...]]
    #: the model config's derived settings (``kind`` included) from the features
    derive: Callable[[Mapping[Modality, ModalityInput]], dict[str, Any]]
    #: nested configs whose options are given as a mapping under their name (late fusion)
    branches: tuple[Modality, ...] = ()
    #: settings of the default image encoder when the run gives the encoder none
    default_image_config: Mapping[str, Any] = field(default_factory=dict)
    #: settings that make any image encoder give the form this recipe reads (grid=true),
    #: filled in for whichever encoder the run names when it gives the encoder none
    form_image_config: Mapping[str, Any] = field(default_factory=dict)
    #: the same for text encoders that give either form (``hf:``: ids to fine-tune)
    form_text_config: Mapping[str, Any] = field(default_factory=dict)
    #: when to choose this model (``sentimodal models`` shows it beside the summary)
    use_when: str = ""

    def reads(self) -> str:
        """What the model reads, for ``sentimodal models``: each modality's accepted forms,
        and the text encoder used when the run names none."""
        parts = []
        for modality in self.modalities:
            forms = " or ".join(form.replace("_", " ") for form in self.accepts[modality])
            default = f" (default {self.default_text_encoder})" if modality == "text" else ""
            parts.append(f"{modality} {forms}{default}")
        return "; ".join(parts)

    def check_inputs(self, inputs: Mapping[Modality, ModalityInput], encoders: Mapping[str, str]):
        for modality in self.modalities:
            form, accepted = inputs[modality].form, self.accepts[modality]
            if form not in accepted:
                raise UserInputError(
                    f"the {self.name} model reads {modality} {' or '.join(accepted)}; the "
                    f"{encoders[modality]!r} encoder gives {form.replace('_', ' ')}: "
                    + _hint(modality, form, accepted)
                )

    def network_config(
        self,
        inputs: Mapping[Modality, ModalityInput],
        head: Mapping[str, Any],
        options: Mapping[str, Any],
        encoders: Mapping[str, str] | None = None,
    ) -> ModelConfig:
        """The model config for these features, head settings and user options.

        Options may not set what the features or the head determine; everything else is
        validated by the model config itself, the same way wherever it comes from.
        """
        self.check_inputs(inputs, encoders or {m: m for m in self.modalities})
        derived = self.derive(inputs)
        options = dict(options)
        for branch in self.branches:
            nested = options.pop(branch, {})
            if not isinstance(nested, Mapping):
                raise UserInputError(
                    f"model_options.{branch} of the {self.name} model is a mapping of the "
                    f"{branch} branch's settings, not {nested!r}"
                )
            _refuse_derived({**derived[branch], **dict.fromkeys(HEAD_SETTINGS)}, nested, branch)
            derived[branch] = {**derived[branch], **head, **nested}
        _refuse_derived({**derived, **dict.fromkeys(HEAD_SETTINGS)}, options, None)
        settings = {**derived, **head, **options}
        from sentimodal.models.registry import config_for

        return config_for(settings.pop("kind"), **settings)

    def allowed_options(self) -> str:
        """How the recipe's options are given, for help texts."""
        if self.branches:
            return f"settings under {' / '.join(self.branches)}: each branch's network settings"
        return "the network's own settings (e.g. hidden, dropout)"


def _hint(modality: Modality, given: Form, accepted: tuple[Form, ...]) -> str:
    """What to change when an encoder gives a modality in a form the model cannot read."""
    if modality == "text":
        if "vectors" not in accepted:
            return "use minilm_tokens, or an hf:<model> encoder with output=ids"
        return "use minilm, glove_mean or an hf:<model> encoder (or model=late)"
    if given == "grid":
        return "grid=true is for model=cross; leave it out"
    if accepted == ("grid",):
        return (
            "its image_encoder_config needs grid: true (efficientnet_lite0-2, mobilenet_v2, "
            "resnet50 give it)"
        )
    return "use a CNN encoder such as efficientnet_lite0"


def _refuse_derived(derived: Mapping[str, Any], options: Mapping[str, Any], branch: str | None):
    taken = sorted(set(options) & (set(derived) | {"kind"}))
    if taken:
        where = f"model_options.{branch}." if branch else "model_options."
        raise UserInputError(
            f"{where}{taken[0]} is derived from the features and labels; it cannot be set"
        )


def _unimodal(modality: Modality) -> Callable[[Mapping[Modality, ModalityInput]], dict[str, Any]]:
    return lambda inputs: branch_settings(modality, inputs[modality])


def _image_only(inputs: Mapping[Modality, ModalityInput]) -> dict[str, Any]:
    """Frozen CNN vectors -> the cross-validated linear classifier: on the image sets
    measured (docs/results/image-only.md) it matches or beats the MLP and never falls below a
    logistic regression; pixels -> the pixel CNN."""
    given = inputs["image"]
    if given.form == "vectors":
        return {"kind": "linear", "input": "image", "input_dim": given.dim}
    return branch_settings("image", given)


def _vector_fusion(kind: str) -> Callable[[Mapping[Modality, ModalityInput]], dict[str, Any]]:
    return lambda inputs: {
        "kind": kind,
        "text_dim": inputs["text"].dim,
        "image_dim": inputs["image"].dim,
    }


def _late(inputs: Mapping[Modality, ModalityInput]) -> dict[str, Any]:
    return {
        "kind": "late",
        "text": branch_settings("text", inputs["text"]),
        "image": branch_settings("image", inputs["image"]),
    }


def _cross(inputs: Mapping[Modality, ModalityInput]) -> dict[str, Any]:
    """Late fusion whose text branch also attends over the image's regions; the image branch
    is the default's MLP over the regions' mean (the pooled vector)."""
    text, image = inputs["text"], inputs["image"]
    if text.backbone == TextMPNetConfig.model_fields["backbone"].default:
        raise UserInputError(
            "model=cross fine-tunes the whole transformer with cross-attention; MPNet's ids "
            "(mpnet_tokens) feed its partly frozen network: use minilm_tokens or hf:<model>"
        )
    return {
        "kind": "late",
        "text": {
            **branch_settings("text", text),
            "kind": "text_cross",
            "image_dim": image.dim,
            "image_positions": image.positions,
        },
        "image": {"kind": "mlp", "input": "image", "input_dim": image.dim},
    }


_ANY_TEXT: tuple[Form, ...] = ("vectors", "token_ids")
#: an encoder that gives vectors or ids (``hf:``) gives ids to the models that fine-tune
_FINE_TUNE = {"output": "ids"}
_ANY_IMAGE: tuple[Form, ...] = ("vectors", "pixels")

RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            "text",
            "MiniLM fine-tuned (by default); an MLP over frozen vectors; the BiLSTM over tokens",
            ("text",),
            FINE_TUNED_TEXT_ENCODER,
            {"text": _ANY_TEXT},
            _unimodal("text"),
            use_when="the posts are text only, or their images carry no sentiment",
            form_text_config=_FINE_TUNE,
        ),
        Recipe(
            "image",
            "a linear classifier over frozen CNN features, its L2 chosen by cross-validation "
            "(EfficientNet-Lite0's stages too: levels=true); the pixel CNN over pixels",
            ("image",),
            None,
            {"image": _ANY_IMAGE},
            _image_only,
            # each stage's mean and std beside the last layer's pool, from the same single pass:
            # +2.6 points of accuracy on Emotion6, +1.7 of macro-F1 on MVSA's binary image
            # labels (5-fold CV, docs/results/image-only.md)
            default_image_config={"levels": True},
            use_when="the posts are images only (it matches or beats the MLP on the image sets "
            "measured: docs/results/image-only.md)",
        ),
        Recipe(
            "image_mlp",
            "an MLP over frozen CNN features; the pixel CNN over pixels",
            ("image",),
            None,
            {"image": _ANY_IMAGE},
            _unimodal("image"),
            use_when="comparing with the earlier image-only default",
        ),
        Recipe(
            "concat",
            "the frozen text and image vectors concatenated, then the head",
            ("text", "image"),
            FROZEN_TEXT_ENCODER,
            {"text": ("vectors",), "image": ("vectors",)},
            _vector_fusion("concat"),
            use_when="a fusion that trains in seconds (no fine-tuning), e.g. a first look",
        ),
        Recipe(
            "gated",
            "elementwise gates on the frozen text and compressed image vectors (GL1/GL2)",
            ("text", "image"),
            FROZEN_TEXT_ENCODER,
            {"text": ("vectors",), "image": ("vectors",)},
            _vector_fusion("gated"),
            use_when="a fast fusion that says how much of each modality its gates let through",
        ),
        Recipe(
            "late",
            "a text and an image model trained together, their class probabilities averaged "
            "(combine=stacked: weighed by a logistic regression fit on val)",
            ("text", "image"),
            FINE_TUNED_TEXT_ENCODER,
            {"text": _ANY_TEXT, "image": _ANY_IMAGE},
            _late,
            branches=("text", "image"),
            use_when="text and images: the best accuracy measured on MVSA-Single "
            "(docs/results/fusion-cv.md)",
            form_text_config=_FINE_TUNE,
        ),
        Recipe(
            "cross",
            "late fusion whose fine-tuned MiniLM's tokens also attend over the image's regions "
            "(the CNN's last map: grid=true) through gated cross-attention",
            ("text", "image"),
            FINE_TUNED_TEXT_ENCODER,
            {"text": ("token_ids",), "image": ("grid",)},
            _cross,
            branches=("text", "image"),
            form_image_config={"grid": True},
            use_when="words and image regions relate: the default's accuracy on MVSA-Single "
            "with +1.4 macro-F1, within one std (docs/results/fusion-cv.md)",
            form_text_config=_FINE_TUNE,
        ),
    )
}
DEFAULT_RECIPE = "late"


def register_recipe(recipe: Recipe) -> Recipe:
    """Make ``recipe`` a run model: ``SentimentModel(model=recipe.name)``, the CLI's
    ``--model`` and experiment grids then take it (a user's own fusion registers its network
    with ``register_network`` and its recipe here, both in the user's module)."""
    known = RECIPES.get(recipe.name)
    if known is not None and known != recipe:
        raise ValueError(f"a run model named {recipe.name!r} is already registered")
    RECIPES[recipe.name] = recipe
    return recipe


def list_recipes() -> list[str]:
    return list(RECIPES)


def recipe_choices() -> str:
    """The run models as a short list for help texts: 'text, image, ... or cross'."""
    names = list_recipes()
    return f"{', '.join(names[:-1])} or {names[-1]}." if len(names) > 1 else f"{names[0]}."


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise UserInputError(
            f"unknown model {name!r}; choose one of: {', '.join(RECIPES)}"
        ) from None


def recipes_help() -> str:
    """The run models and where they are described, for ``--help`` texts."""
    return f"{recipe_choices()[:-1]} (see `sentimodal models`)"


def encoder_inputs(
    modalities: tuple[Modality, ...],
    image_encoder: str,
    image_config: Mapping[str, Any],
    text_encoder: str,
    text_config: Mapping[str, Any],
) -> dict[Modality, ModalityInput]:
    """What the named encoders will give, known before any feature is extracted."""
    from sentimodal.features.image_encoders import get_image_encoder
    from sentimodal.features.text_encoders import get_text_encoder

    inputs: dict[Modality, ModalityInput] = {}
    if "image" in modalities:
        inputs["image"] = ModalityInput.of_image(get_image_encoder(image_encoder, **image_config))
    if "text" in modalities:
        inputs["text"] = ModalityInput.of_text(get_text_encoder(text_encoder, **text_config))
    return inputs


def fine_tunes(text_encoder: str, config: Mapping[str, Any] | None = None) -> bool:
    """Whether a text encoder (with its settings) gives ids of a pretrained transformer
    fine-tuned with the model."""
    from sentimodal.features.text_encoders import text_encoder_class

    return text_encoder_class(text_encoder).gives_ids(dict(config or {}))


__all__ = [
    "DEFAULT_RECIPE",
    "RECIPES",
    "ModalityInput",
    "Recipe",
    "encoder_inputs",
    "fine_tunes",
    "get_recipe",
    "list_recipes",
    "recipe_choices",
    "register_recipe",
    "recipes_help",
]
