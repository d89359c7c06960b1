"""A pretrained Hugging Face transformer fine-tuned end to end on sentiment labels.

Frozen sentence vectors were trained for similarity, not polarity; letting the transformer
itself learn from the labels is what lifts text accuracy on tweets. One network serves every
``hf:`` text encoder and the shipped MiniLM and MPNet: the transformer is built from data (its
architecture dict, ``model_type`` included, through transformers' ``AutoConfig``), so a saved
model needs only its config and weights; the pretrained weights are loaded by
:meth:`TextTransformer.load_pretrained` before training, not when a trained model is rebuilt.

``frozen_layers`` keeps the embeddings and the bottom layers at their pretrained weights. For
MPNet (``text_mpnet``: 12 layers, 768 wide, about eight times MiniLM-L6's compute per token)
their output is then a fixed function of the post's ids: during training it is computed once
per post, kept (float16, trimmed to the post's length) and reused by every later epoch, so an
epoch costs only the top layers (:mod:`sentimodal.models.frozen_bottom`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sentimodal.errors import UserInputError
from sentimodal.features import resources
from sentimodal.models.base import PAD_ID, Batch, PretrainedStart, SentimentNet
from sentimodal.models.config import TextMPNetConfig, TextTransformerConfig
from sentimodal.models.frozen_bottom import FrozenBottom
from sentimodal.models.heads import make_head
from sentimodal.models.registry import register_network

#: keys of a transformer's config.json that describe where it came from, not its shape
_PROVENANCE_KEYS = ("architectures", "transformers_version", "gradient_checkpointing", "use_cache")
#: the shipped backbones' offline folders, by the name a network config carries
_BUNDLED = {"all-MiniLM-L6-v2": resources.minilm_path, "all-mpnet-base-v2": resources.mpnet_path}


def shape_settings(architecture: Mapping[str, Any]) -> dict[str, Any]:
    """A transformer's config.json as plain data, without what says where it came from."""
    return {
        key: value
        for key, value in architecture.items()
        if not key.startswith("_") and key not in _PROVENANCE_KEYS
    }


def ids_encoder(backbone: str) -> str:
    """The text encoder whose ids a backbone reads (named in errors)."""
    named = {"all-MiniLM-L6-v2": "minilm_tokens", "all-mpnet-base-v2": "mpnet_tokens"}
    return named.get(backbone, f"{backbone} (output=ids)")


def backbone_folder(backbone: str) -> Path:
    """Where a backbone's pretrained files are: a bundled folder, or an ``hf:`` source."""
    if backbone in _BUNDLED:
        return _BUNDLED[backbone]()
    from sentimodal.features.hub import resolve_source

    family, _, source = backbone.partition(":")
    if family != "hf" or not source:
        raise UserInputError(f"unknown transformer backbone {backbone!r}")
    return resolve_source(source, prefix="hf").folder


def backbone_architecture(config: TextTransformerConfig) -> dict[str, Any]:
    """The transformer's architecture as plain data: the config's own, or the backbone's,
    cut to ``num_layers``."""
    architecture = shape_settings(
        dict(config.architecture) or resources.transformer_config(backbone_folder(config.backbone))
    )
    # the shipped kinds' architectures were saved without it where they were written by hand
    architecture.setdefault("model_type", "mpnet" if config.kind == "text_mpnet" else "bert")
    if config.num_layers is not None:
        available = int(architecture.get("num_hidden_layers", config.num_layers))
        if config.num_layers > available:
            raise UserInputError(
                f"num_layers={config.num_layers}, but {config.backbone} has {available} layers"
            )
        architecture["num_hidden_layers"] = config.num_layers
    return architecture


def build_transformer(architecture: Mapping[str, Any]) -> nn.Module:
    """A randomly initialised transformer of ``architecture`` (no pooling layer: the network
    pools its token states itself)."""
    transformers: Any = resources.require("transformers")
    settings = dict(architecture)
    model_type = settings.pop("model_type", "bert")
    try:
        config = transformers.AutoConfig.for_model(model_type, **settings)
        network = transformers.AutoModel._model_mapping[type(config)]
    except (KeyError, ValueError) as exc:
        raise UserInputError(f"transformers cannot build a {model_type!r} model: {exc}") from None
    if model_type == "bert":  # as the shipped MiniLM models were built
        config._attn_implementation = "sdpa"
    if "add_pooling_layer" in inspect.signature(network.__init__).parameters:
        return network(config, add_pooling_layer=False)
    return network(config)


@register_network(TextTransformerConfig, branch_of=("text",))
@register_network(TextMPNetConfig, branch_of=("text",))
class TextTransformer(SentimentNet):
    """Token ids (pad 0, post-padded, plus ``id_shift``) -> transformer -> pooled state ->
    dropout -> head."""

    inputs = ("text",)

    def __init__(self, config: TextTransformerConfig) -> None:
        super().__init__(config)
        self.architecture = backbone_architecture(config)
        self.encoder = build_transformer(self.architecture)
        layers = int(self.encoder.config.num_hidden_layers)
        if config.frozen_layers > layers:
            raise UserInputError(
                f"frozen_layers={config.frozen_layers}, but {config.backbone} has {layers} layers"
            )
        self.frozen = config.frozen_layers
        self.pad_token_id = int(self.encoder.config.pad_token_id or 0)
        self.bottom = FrozenBottom(self.encoder, self.frozen)
        for module in self.bottom.modules_frozen():
            module.requires_grad_(False)
        self.dropout = nn.Dropout(config.dropout)
        self.out_dim = int(self.encoder.config.hidden_size)
        self.head = make_head(config, self.out_dim)

    def train(self, mode: bool = True) -> TextTransformer:
        # Frozen parts always run as at inference (no dropout): their output is a fixed
        # function of the ids, which is what makes it reusable across epochs.
        super().train(mode)
        for module in self.bottom.modules_frozen():
            module.eval()
        return self

    def backbone_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def token_states(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The transformer's last states of the batch's tokens, and which tokens are real."""
        ids = self.token_ids(batch, ids_encoder(self.config.backbone))
        mask = ids != PAD_ID
        # An empty row (all padding) still attends to its first position.
        mask[:, 0] = True
        if self.config.id_shift:
            ids = torch.where(mask, ids - self.config.id_shift, self.pad_token_id)
        if self.bottom.split:
            return self.bottom.states(ids, mask), mask
        states = self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return states, mask

    def embed(self, batch: Batch) -> torch.Tensor:
        states, mask = self.token_states(batch)
        return self.dropout(pool_states(states, mask, self.config.pooling))

    def start_pretrained(self, start: PretrainedStart) -> None:
        if self.config.init == "pretrained":
            self.load_pretrained()
        self.bottom.start_memo()

    def end_training(self) -> None:
        self.bottom.end_memo()

    def load_pretrained(self) -> None:
        """Start from the backbone's pretrained weights (the first ``num_layers`` layers)."""
        load_matching_weights(self.encoder, backbone_folder(self.config.backbone), self.config)


def pool_states(states: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per text from a transformer's token states: the first token's (``cls``) or
    the mean over the real tokens (``mean``)."""
    if pooling == "cls":
        return states[:, 0]
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(dim=1) / weights.sum(dim=1)


def pretrained_state(folder: Path, config: TextTransformerConfig) -> dict[str, torch.Tensor]:
    """The pretrained transformer's weights by parameter name: the bundled safetensors file as
    it is, or a hub model read by transformers (which strips a checkpoint's ``bert.``-style
    prefixes)."""
    if config.backbone in _BUNDLED:
        return resources.transformer_state_dict(folder)
    transformers: Any = resources.require("transformers")
    with resources.quiet_loading():
        model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
    return model.state_dict()


def load_matching_weights(encoder: nn.Module, folder: Path, config: TextTransformerConfig) -> None:
    """Load the pretrained weights in ``folder`` into ``encoder``: each of its tensors must be
    there with its shape (extra pretrained layers are left out); one-line errors otherwise."""
    own = encoder.state_dict()
    weights = {k: v for k, v in pretrained_state(folder, config).items() if k in own}
    missing = sorted(set(own) - set(weights) - _OPTIONAL_BUFFERS)
    if missing:
        raise UserInputError(
            f"the pretrained {config.backbone} weights lack {missing[:3]} "
            f"({len(missing)} tensors): they do not fit this architecture"
        )
    for key, value in weights.items():
        if value.shape != own[key].shape:
            raise UserInputError(
                f"pretrained {key} has shape {tuple(value.shape)}, "
                f"the network expects {tuple(own[key].shape)}"
            )
    encoder.load_state_dict(weights, strict=False)


#: buffers some transformers versions keep and others rebuild (never learned)
_OPTIONAL_BUFFERS = {"embeddings.position_ids", "embeddings.token_type_ids"}
