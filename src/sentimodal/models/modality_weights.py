"""How much a fusion network itself weighs each modality in one post's decision.

Occlusion (:mod:`sentimodal.inference.explanations`) measures a modality's share from outside,
by taking it away. A fusion also has its own answer, in its weights: a late fusion averages
its branches with a weight per post, a gated fusion's gates scale each modality's features
before a linear head, a token-level fusion gates the image into the text's states. Each of
those networks gives it here, per post, as :class:`ModalityWeights`;
:func:`modality_weights` runs it batch by batch.

Where the last step is linear (a gated or a hidden-layer-free concat fusion's head, the
cross-attention model's head over its pooled states) the split is exact: the head's output is
the sum of one term per modality plus the bias, and a modality's weight is the size of its
term over the sum of both sizes (softmax heads: the terms centred over the classes first,
since adding the same number to every logit changes no probability).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from sentimodal.models.batches import Data, as_tensors, n_examples
from sentimodal.models.forward import run_batched

if TYPE_CHECKING:
    from sentimodal.models.base import Batch, SentimentNet

MODALITIES = ("text", "image")


@dataclass
class ModalityWeights:
    """Per post: ``weights`` (modality -> (N,), summing to 1), named ``gates`` ((N,) each: how
    far a gate let a modality in) and, for a late fusion, each branch's own per-label scores
    (modality -> (N, labels)). ``method`` says how the weights were read."""

    weights: dict[str, torch.Tensor]
    method: str
    gates: dict[str, torch.Tensor] = field(default_factory=dict)
    branch_scores: dict[str, torch.Tensor] = field(default_factory=dict)

    def columns(self) -> list[tuple[str, str, int]]:
        """(group, name, width) of each part, in the order of :meth:`table`'s columns."""
        parts = [("weights", m, 1) for m in self.weights]
        parts += [("gates", name, 1) for name in self.gates]
        parts += [("branch_scores", m, s.shape[1]) for m, s in self.branch_scores.items()]
        return parts

    def table(self) -> torch.Tensor:
        """Every part side by side, (N, columns): one tensor, so it batches like outputs."""
        groups = {"weights": self.weights, "gates": self.gates, "branch_scores": self.branch_scores}
        pieces = [groups[g][name] for g, name, _ in self.columns()]
        return torch.cat([p.reshape(len(p), -1).float() for p in pieces], dim=1)


def linear_shares(
    weight: torch.Tensor, parts: Sequence[torch.Tensor], *, centred: bool
) -> list[torch.Tensor]:
    """Each part's share of a linear layer's output over ``[part_1; part_2; ...]``: see
    :func:`term_shares`, the terms being ``part_k @ W_k^T`` for ``W``'s columns of part k."""
    terms = []
    start = 0
    for part in parts:
        width = part.shape[1]
        terms.append(part.to(weight.dtype) @ weight[:, start : start + width].T)
        start += width
    return term_shares(terms, centred=centred)


def term_shares(terms: Sequence[torch.Tensor], *, centred: bool) -> list[torch.Tensor]:
    """Each term's share of an output that is their sum (plus a bias): the norm of each term
    over the sum of all terms' norms ((N,) each; equal shares where every term is zero).
    ``centred``: the terms are logits, compared up to a constant."""
    sizes = []
    for term in terms:
        if centred:
            term = term - term.mean(dim=1, keepdim=True)
        sizes.append(term.norm(dim=1))
    total = torch.stack(sizes).sum(dim=0)
    even = torch.full_like(total, 1.0 / len(sizes))
    return [torch.where(total > 0, size / total.clamp(min=1e-12), even) for size in sizes]


def modality_weights(
    network: SentimentNet, data: Data, batch_size: int = 512
) -> dict[str, Any] | None:
    """The network's :class:`ModalityWeights` for every example of ``data``, as plain arrays:
    ``{"method", "weights": {m: (N,)}, "gates": {name: (N,)}, "branch_scores": {m: (N, L)}}``;
    None for a network that has no weights of its own per modality (unimodal models, a concat
    fusion with hidden layers)."""
    layout: list[ModalityWeights] = []

    def table(batch: Batch) -> torch.Tensor:
        found = network.modality_weights(batch)
        if found is None:  # no weights: an empty table, and no layout to read it by
            return torch.zeros(n_examples(batch), 0)
        if not layout:
            layout.append(found)  # every batch has the same columns: read them by the first
        return found.table()

    tensors = as_tensors(data)
    if n_examples(tensors) == 0:
        return None
    columns = run_batched(network, tensors, table, batch_size).numpy()
    if not layout:
        return None
    first = layout[0]
    out: dict[str, Any] = {"method": first.method, "weights": {}, "gates": {}, "branch_scores": {}}
    start = 0
    for group, name, width in first.columns():
        block = columns[:, start : start + width]
        out[group][name] = block if group == "branch_scores" else block[:, 0]
        start += width
    return out
