"""A pretrained transformer (all-MiniLM-L6-v2) fine-tuned end to end on sentiment labels.

Frozen MiniLM sentence vectors were trained for similarity, not polarity; letting the
transformer itself learn from the labels is what lifts text accuracy on tweets. The network is
a plain ``transformers`` BERT built from data (its architecture dict), so a saved model needs
only its config and weights; the bundled pretrained weights are loaded by
:meth:`TextTransformer.load_pretrained` before training, not when a trained model is rebuilt.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sentimodal.errors import UserInputError
from sentimodal.features import resources
from sentimodal.models.base import PAD_ID, Batch, PretrainedStart, SentimentNet
from sentimodal.models.config import TextTransformerConfig
from sentimodal.models.heads import make_head
from sentimodal.models.registry import register_network

#: keys of a transformer's config.json that describe where it came from, not its shape
_PROVENANCE_KEYS = ("architectures", "transformers_version", "gradient_checkpointing", "use_cache")


def shape_settings(architecture: Mapping[str, Any]) -> dict[str, Any]:
    """A transformer's config.json as plain data, without what says where it came from."""
    return {
        key: value
        for key, value in architecture.items()
        if not key.startswith("_") and key not in _PROVENANCE_KEYS
    }


def backbone_architecture(config: TextTransformerConfig) -> dict[str, Any]:
    """The transformer's architecture as plain data: the config's own, or the bundled one's,
    cut to ``num_layers``."""
    architecture = shape_settings(
        dict(config.architecture) or resources.transformer_config(resources.minilm_path())
    )
    if config.num_layers is not None:
        available = int(architecture.get("num_hidden_layers", config.num_layers))
        if config.num_layers > available:
            raise UserInputError(
                f"num_layers={config.num_layers}, but {config.backbone} has {available} layers"
            )
        architecture["num_hidden_layers"] = config.num_layers
    return architecture


@register_network(TextTransformerConfig, branch_of=("text",))
class TextTransformer(SentimentNet):
    """WordPiece ids (pad 0, post-padded) -> BERT -> pooled state -> dropout -> head."""

    inputs = ("text",)

    def __init__(self, config: TextTransformerConfig) -> None:
        super().__init__(config)
        transformers: Any = resources.require("transformers")
        self.architecture = backbone_architecture(config)
        bert_config = transformers.BertConfig(**self.architecture)
        bert_config._attn_implementation = "sdpa"
        self.encoder = transformers.BertModel(bert_config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.dropout)
        self.out_dim = int(bert_config.hidden_size)
        self.head = make_head(config, self.out_dim)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def token_states(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The transformer's last states of the batch's tokens, and which tokens are real."""
        ids = self.token_ids(batch, "minilm_tokens")
        mask = ids != PAD_ID
        # An empty row (all padding) still attends to its first position.
        mask[:, 0] = True
        states = self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return states, mask

    def embed(self, batch: Batch) -> torch.Tensor:
        states, mask = self.token_states(batch)
        return self.dropout(pool_states(states, mask, self.config.pooling))

    def start_pretrained(self, start: PretrainedStart) -> None:
        if self.config.init == "pretrained":
            self.load_pretrained()

    def load_pretrained(self) -> None:
        """Start from the bundled pretrained weights (the first ``num_layers`` layers)."""
        load_matching_weights(self.encoder, resources.minilm_path(), self.config.backbone)


def pool_states(states: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per text from a transformer's token states: the first token's (``cls``) or
    the mean over the real tokens (``mean``)."""
    if pooling == "cls":
        return states[:, 0]
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(dim=1) / weights.sum(dim=1)


def load_matching_weights(encoder: nn.Module, folder: Path, backbone: str) -> None:
    """Load the weights of the bundled transformer in ``folder`` into ``encoder``: each of its
    tensors must be there with its shape (extra pretrained layers are left out); one-line
    errors otherwise."""
    own = encoder.state_dict()
    pretrained = resources.transformer_state_dict(folder)
    weights = {k: v for k, v in pretrained.items() if k in own}
    missing = sorted(set(own) - set(weights) - _OPTIONAL_BUFFERS)
    if missing:
        raise UserInputError(
            f"the bundled {backbone} weights lack {missing[:3]} "
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
