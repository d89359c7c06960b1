"""all-mpnet-base-v2 with its bottom layers frozen and only its top layers fine-tuned.

MPNet (12 layers, 768 wide) is the stronger sentence model here, but fine-tuning it in full
costs about eight times MiniLM-L6's compute per token, beyond the default's budget on two
cores. Freezing the embeddings and the bottom ``frozen_layers`` layers makes their output a
fixed function of the post's ids: during training it is computed once per post, kept (float16,
trimmed to the post's length) and reused by every later epoch and validation pass, so an
epoch costs only the top layers. Prediction runs the whole network as usual. The memo lives
from :meth:`start_pretrained` (training begins) to :meth:`end_training`, so a trained model
never accumulates the posts it predicts.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sentimodal.errors import UserInputError
from sentimodal.features import resources
from sentimodal.features.text_encoders.mpnet_tokens import ID_SHIFT
from sentimodal.models.base import PAD_ID, Batch, PretrainedStart, SentimentNet
from sentimodal.models.config import TextMPNetConfig
from sentimodal.models.heads import make_head
from sentimodal.models.registry import register_network
from sentimodal.models.text_transformer import load_matching_weights, pool_states, shape_settings


def mpnet_architecture(config: TextMPNetConfig) -> dict[str, Any]:
    """The transformer's architecture as plain data: the config's own, or the bundled one's."""
    return shape_settings(
        dict(config.architecture) or resources.transformer_config(resources.mpnet_path())
    )


@register_network(TextMPNetConfig, branch_of=("text",))
class TextMPNet(SentimentNet):
    """MPNet ids + 1 (pad 0, post-padded) -> MPNet (bottom frozen) -> pooled state -> head."""

    inputs = ("text",)

    def __init__(self, config: TextMPNetConfig) -> None:
        super().__init__(config)
        transformers: Any = resources.require("transformers")
        self.architecture = mpnet_architecture(config)
        layers = int(self.architecture.get("num_hidden_layers", 12))
        if config.frozen_layers > layers:
            raise UserInputError(
                f"frozen_layers={config.frozen_layers}, but {config.backbone} has {layers} layers"
            )
        self.frozen = config.frozen_layers
        self.encoder = transformers.MPNetModel(
            transformers.MPNetConfig(**self.architecture), add_pooling_layer=False
        )
        self.pad_token_id = int(self.encoder.config.pad_token_id)
        for module in self._frozen_modules():
            module.requires_grad_(False)
        self.dropout = nn.Dropout(config.dropout)
        self.out_dim = int(self.encoder.config.hidden_size)
        self.head = make_head(config, self.out_dim)
        self._memo: dict[bytes, torch.Tensor] | None = None

    def _frozen_modules(self) -> list[nn.Module]:
        """Embeddings, relative position bias and the bottom layers (none when nothing is
        frozen: then the whole transformer is fine-tuned)."""
        if self.frozen == 0:
            return []
        encoder = self.encoder.encoder
        return [
            self.encoder.embeddings,
            encoder.relative_attention_bias,
            *encoder.layer[: self.frozen],
        ]

    def train(self, mode: bool = True) -> TextMPNet:
        # Frozen parts always run as at inference (no dropout): their output is a fixed
        # function of the ids, which is what makes it reusable across epochs.
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    def backbone_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def embed(self, batch: Batch) -> torch.Tensor:
        ids = self.token_ids(batch, "mpnet_tokens")
        mask = ids != PAD_ID
        mask[:, 0] = True
        states = self._layers(self._bottom(ids, mask), mask, slice(self.frozen, None))
        return self.dropout(pool_states(states, mask, self.config.pooling))

    def _layers(self, states: torch.Tensor, mask: torch.Tensor, which: slice) -> torch.Tensor:
        """Run ``states`` through the transformer layers ``which`` (the frozen bottom ones or
        the trained top ones)."""
        additive = (1.0 - mask[:, None, None, :].to(states.dtype)) * torch.finfo(states.dtype).min
        encoder = self.encoder.encoder
        bias = encoder.compute_position_bias(states)
        for layer in encoder.layer[which]:
            states = layer(states, additive, bias)[0]
        return states

    def _embeddings(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        model_ids = torch.where(mask, ids - ID_SHIFT, torch.full_like(ids, self.pad_token_id))
        return self.encoder.embeddings(input_ids=model_ids)

    def _run_bottom(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        states = self._embeddings(ids, mask)
        if self.frozen == 0:
            return states
        return self._layers(states, mask, slice(0, self.frozen))

    def _bottom(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The frozen part's output: computed, or (while training) read from the memo."""
        if self.frozen == 0:
            return self._run_bottom(ids, mask)
        if self._memo is None:
            with torch.no_grad():
                return self._run_bottom(ids, mask)
        lengths = mask.sum(dim=1).tolist()
        keys = [ids[n, :length].numpy().tobytes() for n, length in enumerate(lengths)]
        missing = [n for n, key in enumerate(keys) if key not in self._memo]
        if missing:
            rows = torch.tensor(missing)
            width = max(lengths[n] for n in missing)
            with torch.no_grad():
                fresh = self._run_bottom(ids[rows, :width], mask[rows, :width])
            for n, states in zip(missing, fresh, strict=True):
                self._memo[keys[n]] = states[: lengths[n]].to(torch.float16)
        out = torch.zeros(ids.shape[0], ids.shape[1], self.out_dim)
        for n, key in enumerate(keys):
            out[n, : lengths[n]] = self._memo[key]
        return out

    def start_pretrained(self, start: PretrainedStart) -> None:
        if self.config.init == "pretrained":
            self.load_pretrained()
        if self.frozen > 0:
            self._memo = {}

    def end_training(self) -> None:
        self._memo = None

    def load_pretrained(self) -> None:
        """Start from the bundled all-mpnet-base-v2 weights."""
        load_matching_weights(self.encoder, resources.mpnet_path(), self.config.backbone)
