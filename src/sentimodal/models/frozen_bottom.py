"""The frozen bottom of a fine-tuned transformer, and the memo of its output during training.

With ``frozen_layers`` > 0 the embeddings and the bottom layers keep their pretrained weights,
so their output is a fixed function of a post's ids. For MPNet, whose layers this module knows
how to run one by one, training computes that output once per post, keeps it (float16, trimmed
to the post's length) and reuses it every later epoch and validation pass, so an epoch costs
only the top layers; prediction runs the whole network as usual. The memo lives from
:meth:`FrozenBottom.start_memo` (training begins) to :meth:`FrozenBottom.end_memo`, so a
trained model never accumulates the posts it predicts. Other architectures freeze the same
parts and run the whole transformer each step.
"""

from __future__ import annotations

import torch
from torch import nn

from sentimodal.errors import UserInputError

#: the architectures whose layers run one by one here (their frozen output is memoised)
SPLIT_MODEL_TYPES = ("mpnet",)


class FrozenBottom:
    """Which parts of ``encoder`` are frozen, and (MPNet) its layer-by-layer forward.

    A plain object, not a module: the encoder's parameters stay registered once, under the
    network's ``encoder``."""

    def __init__(self, encoder: nn.Module, frozen: int) -> None:
        self.encoder = encoder
        self.frozen = frozen
        self.split = encoder.config.model_type in SPLIT_MODEL_TYPES
        self.width = int(encoder.config.hidden_size)
        self._memo: dict[bytes, torch.Tensor] | None = None
        if frozen and not hasattr(getattr(encoder, "encoder", None), "layer"):
            raise UserInputError(
                f"frozen_layers: a {encoder.config.model_type!r} transformer has no "
                "encoder.layer list to freeze"
            )

    def modules_frozen(self) -> list[nn.Module]:
        """Embeddings (and MPNet's relative position bias) and the bottom layers; none when
        nothing is frozen (then the whole transformer is fine-tuned)."""
        if self.frozen == 0:
            return []
        encoder = self.encoder.encoder
        bias = [encoder.relative_attention_bias] if self.split else []
        return [self.encoder.embeddings, *bias, *encoder.layer[: self.frozen]]

    def start_memo(self) -> None:
        if self.split and self.frozen > 0:
            self._memo = {}

    def end_memo(self) -> None:
        self._memo = None

    def states(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The last token states, layer by layer (the model's own ids, ``mask`` the real
        tokens)."""
        return self._layers(self._bottom(ids, mask), mask, slice(self.frozen, None))

    def _layers(self, states: torch.Tensor, mask: torch.Tensor, which: slice) -> torch.Tensor:
        additive = (1.0 - mask[:, None, None, :].to(states.dtype)) * torch.finfo(states.dtype).min
        encoder = self.encoder.encoder
        bias = encoder.compute_position_bias(states)
        for layer in encoder.layer[which]:
            states = layer(states, additive, bias)[0]
        return states

    def _run_bottom(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        states = self.encoder.embeddings(input_ids=ids)
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
        keys = [ids[n, :length].cpu().numpy().tobytes() for n, length in enumerate(lengths)]
        missing = [n for n, key in enumerate(keys) if key not in self._memo]
        if missing:
            rows = torch.tensor(missing, device=ids.device)
            width = max(lengths[n] for n in missing)
            with torch.no_grad():
                fresh = self._run_bottom(ids[rows, :width], mask[rows, :width])
            for n, states in zip(missing, fresh, strict=True):
                self._memo[keys[n]] = states[: lengths[n]].to(torch.float16)
        out = torch.zeros(ids.shape[0], ids.shape[1], self.width, device=ids.device)
        for n, key in enumerate(keys):
            out[n, : lengths[n]] = self._memo[key]
        return out
