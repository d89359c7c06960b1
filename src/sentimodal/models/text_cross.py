"""Token-level fusion: the fine-tuned text transformer's tokens attend over image regions.

Late fusion averages what text and image say about a post as a whole; here each word can look
at the part of the picture it refers to ("this view" at the landscape, "my little girl" at the
face), as CLMLF / ITIN do with larger models. The image is a grid of frozen CNN vectors (e.g.
EfficientNet-Lite0's 7 x 7 map, ``grid=true``), projected to the transformer's width with a
learned position per region; one cross-attention layer over them follows the transformer, and
its output joins each token's state through a tanh gate that starts at zero, so the model
starts as the fine-tuned text model and learns how much of the image to let in.
"""

from __future__ import annotations

import torch
from torch import nn

from sentimodal.errors import UserInputError
from sentimodal.models.base import Batch, present
from sentimodal.models.config import TextCrossConfig
from sentimodal.models.modality_weights import MODALITIES, ModalityWeights, term_shares
from sentimodal.models.registry import register_network
from sentimodal.models.text_transformer import TextTransformer, pool_states


@register_network(TextCrossConfig, branch_of=("text",))
class TextImageCrossAttention(TextTransformer):
    """WordPiece ids and an image grid -> BERT -> tokens attend over regions -> pooled -> head.

    The grid is optional: a batch without ``image`` (the text branch asked alone, for the
    report's "text only") or a row without its image is read as text alone, gate shut.
    """

    inputs = ("text",)

    def __init__(self, config: TextCrossConfig) -> None:
        super().__init__(config)
        width = self.out_dim
        if width % config.attention_heads:
            raise UserInputError(
                f"attention_heads={config.attention_heads} does not divide the transformer's "
                f"width {width}"
            )
        self.image_projection = nn.Sequential(
            nn.Linear(config.image_dim, width), nn.LayerNorm(width)
        )
        self.region_positions = nn.Parameter(torch.zeros(config.image_positions, width))
        nn.init.normal_(self.region_positions, std=0.02)
        self.region_dropout = nn.Dropout(config.region_dropout)
        self.query_norm = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(
            width, config.attention_heads, dropout=config.attention_dropout, batch_first=True
        )
        self.gate = nn.Parameter(torch.zeros(width))

    def _regions(self, batch: Batch) -> torch.Tensor:
        grid = batch["image"]
        expected = (self.config.image_positions, self.config.image_dim)
        if grid.ndim != 3 or tuple(grid.shape[1:]) != expected:
            raise UserInputError(
                f"{type(self).__name__} reads an image grid of shape (N, {expected[0]}, "
                f"{expected[1]}), got {tuple(grid.shape)}: use the image encoder it was trained "
                "with, grid=true"
            )
        return self.region_dropout(self.image_projection(grid.float()) + self.region_positions)

    def embed(self, batch: Batch) -> torch.Tensor:
        text, image = self._pooled_parts(batch)
        return self.dropout(text if image is None else text + image)

    def _pooled_parts(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The pooled text states and the pooled image part the gate adds to them (pooling
        is linear, so the representation is their sum); None without an image input."""
        states, mask = self.token_states(batch)
        text = pool_states(states, mask, self.config.pooling)
        if "image" not in batch:
            return text, None
        regions = self._regions(batch)
        seen, _ = self.attention(self.query_norm(states), regions, regions, need_weights=False)
        has_image = present(batch, "image")
        if has_image is not None:
            seen = seen * has_image[:, None, None].to(seen.dtype)
        return text, pool_states(torch.tanh(self.gate) * seen, mask, self.config.pooling)

    def modality_weights(self, batch: Batch) -> ModalityWeights | None:
        """How much of the head's output the image brings in through the gate: the size of
        the gated image part's term of the linear head over both terms."""
        text, image = self._pooled_parts(batch)
        if image is None:
            return None
        weight = self.head.linear.weight
        terms = [part.to(weight.dtype) @ weight.T for part in (text, image)]
        shares = term_shares(terms, centred=self.head.kind == "softmax")
        return ModalityWeights(
            weights=dict(zip(MODALITIES, shares, strict=True)),
            method=(
                "the image gate: the gated attention over the image's regions adds one term "
                "to the linear head's output, the text's states the other; 'image gate' is the "
                "image's term's size over both"
            ),
            gates={"image gate": shares[1]},
        )

    @torch.no_grad()
    def gate_stats(self) -> dict[str, float]:
        """How far the image gate opened: the mean and largest |tanh(gate)| over channels."""
        gate = torch.tanh(self.gate).abs().float().cpu()
        return {"mean": float(gate.mean()), "max": float(gate.max())}
