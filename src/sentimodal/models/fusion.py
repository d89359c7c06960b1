"""Fusions of text and image: concatenation, gated features, and late (probability) averaging.

Early fusions (concat, gated) read precomputed feature vectors of both modalities, e.g. MiniLM
or the text model's exported features for ``"text"`` and CNN features for ``"image"``. Late
fusion averages two complete unimodal models, so its branches may read tokens or pixels.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BeforeValidator, SerializeAsAny, model_validator
from torch import nn

from sentimodal.errors import UserInputError
from sentimodal.models.base import Batch, SentimentNet, present
from sentimodal.models.batches import Data, as_tensors
from sentimodal.models.config import ConcatFusionConfig, GatedFusionConfig, MLPConfig, ModelConfig
from sentimodal.models.forward import run_batched
from sentimodal.models.heads import make_head
from sentimodal.models.label_space import LabelSpace
from sentimodal.models.logistic import fit_softmax_regression
from sentimodal.models.mlp import MLPBody
from sentimodal.models.modality_weights import MODALITIES, ModalityWeights, linear_shares
from sentimodal.models.registry import branch_config, build_model, register_network

_LINEAR_METHOD = (
    "each modality's {what} make one term of the linear head's output; its weight is the "
    "size of its term (centred over the classes for softmax heads) over both terms"
)


def _branch(modality: str) -> BeforeValidator:
    """A branch is any registered network that may stand for ``modality``, read by its kind."""

    def read(value: Any) -> ModelConfig:
        return branch_config(modality, value)

    return BeforeValidator(read)


TextBranchConfig = Annotated[SerializeAsAny[ModelConfig], _branch("text")]
ImageBranchConfig = Annotated[SerializeAsAny[ModelConfig], _branch("image")]


class LateFusionConfig(ModelConfig):
    """Late fusion: the average of a text model's and an image model's class probabilities.

    The branches take this config's head settings, so both predict in the same output space.
    """

    kind: Literal["late"] = "late"
    text: TextBranchConfig
    image: ImageBranchConfig
    #: "mean" averages the branches' class probabilities; "stacked" (softmax heads) scores a
    #: post by a logistic regression on both branches' log-probabilities, fit on the val split
    #: after training (before that, and with no val split, their normalised geometric mean)
    combine: Literal["mean", "stacked"] = "mean"
    #: train on the fused output's loss too, beside each branch's own
    joint_loss: bool = False

    @model_validator(mode="after")
    def _branches(self) -> Self:
        if self.combine == "stacked" and self.head != "softmax":
            raise ValueError("combine='stacked' needs the softmax head")
        head = {"head": self.head, "n_classes": self.n_classes, "label_dim": self.label_dim}
        for name, branch in (("text", self.text), ("image", self.image)):
            if isinstance(branch, MLPConfig) and branch.input != name:
                raise ValueError(f"the {name} branch's MLP must read input={name!r}")
            if any(getattr(branch, key) != value for key, value in head.items()):
                object.__setattr__(self, name, branch.model_copy(update=head))
        return self


def _features(batch: Batch, key: str, dim: int) -> torch.Tensor:
    """A modality's feature matrix, checked against the width the model was built for."""
    x = batch[key]
    if x.ndim != 2 or x.shape[1] != dim:
        raise UserInputError(
            f"fusion expects {key} features of shape (N, {dim}), got {tuple(x.shape)}"
        )
    return x.float()


def _read_both(batch: Batch, config: Any, missing: MissingModalities) -> list[torch.Tensor]:
    """An early fusion's text and image inputs, checked, with what it reads for a modality a
    post lacks in its place."""
    given = {
        "text": _features(batch, "text", config.text_dim),
        "image": _features(batch, "image", config.image_dim),
    }
    read = missing(batch, given)
    return [read["text"], read["image"]]


class MissingModalities(nn.Module):
    """What an early fusion reads for a modality a post lacks.

    Inputs are standardised on the train split, so zeros are the mean features: the default.
    With ``rate`` > 0 the "missing" input of each modality is learned, by hiding each modality
    of a training post with that probability (never both), so the model also learns to judge a
    post from the other modality alone.
    """

    def __init__(self, dims: dict[str, int], rate: float) -> None:
        super().__init__()
        self.rate = rate
        self.learned = nn.ParameterDict(
            {name: nn.Parameter(torch.zeros(dim)) for name, dim in dims.items()} if rate else {}
        )

    def forward(self, batch: Batch, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        masks = {name: present(batch, name) for name in features}
        if self.training and self.rate:
            draw = torch.rand(len(next(iter(features.values()))))
            hidden = {
                "text": draw < self.rate,
                "image": (draw >= self.rate) & (draw < 2 * self.rate),
            }
            masks = {
                name: ~hidden[name] if mask is None else mask & ~hidden[name]
                for name, mask in masks.items()
            }
        out = {}
        for name, x in features.items():
            mask = masks[name]
            if mask is None:
                out[name] = x
                continue
            fill = self.learned[name] if name in self.learned else torch.zeros_like(x[0])
            out[name] = torch.where(mask[:, None], x, fill.to(x.dtype).expand_as(x))
        return out


@register_network(ConcatFusionConfig)
class ConcatFusion(SentimentNet):
    """[text ; image] -> dropout -> optional hidden layers -> head (a linear layer by default)."""

    inputs = ("text", "image")

    def __init__(self, config: ConcatFusionConfig) -> None:
        super().__init__(config)
        self.dropout = nn.Dropout(config.dropout)
        self.missing = MissingModalities(
            {"text": config.text_dim, "image": config.image_dim}, config.modality_dropout
        )
        self.body = MLPBody(config.text_dim + config.image_dim, config.hidden, config.dropout)
        self.head = make_head(config, self.body.out_dim)

    def embed(self, batch: Batch) -> torch.Tensor:
        self.check_inputs(batch)
        return self.body(self.dropout(torch.cat(_read_both(batch, self.config, self.missing), 1)))

    def modality_weights(self, batch: Batch) -> ModalityWeights | None:
        """With no hidden layer the head is linear over [text; image]: each modality's weight
        is the size of its term of the head's output (hidden layers mix them: None)."""
        if self.config.hidden:
            return None
        self.check_inputs(batch)
        parts = _read_both(batch, self.config, self.missing)
        shares = linear_shares(self.head.linear.weight, parts, centred=self.head.kind == "softmax")
        return ModalityWeights(
            weights=dict(zip(MODALITIES, shares, strict=True)),
            method=_LINEAR_METHOD.format(what="features"),
        )


@register_network(GatedFusionConfig)
class GatedFusion(SentimentNet):
    """Elementwise trainable gates decide how much of each feature of each modality passes.

    image -> [dense(compress_image) + ReLU] -> * image gate; text -> * text gate; the gated
    vectors are concatenated, dropped out, and fed to the head. ``gate_stats`` reports the
    learned gates, i.e. how much of each modality the model uses.
    """

    inputs = ("text", "image")

    def __init__(self, config: GatedFusionConfig) -> None:
        super().__init__(config)
        image_dim = config.image_dim
        if config.compress_image is not None:
            self.compress: nn.Module = nn.Sequential(
                nn.Linear(config.image_dim, config.compress_image), nn.ReLU()
            )
            image_dim = config.compress_image
        else:
            self.compress = nn.Identity()
        # GL1 starts by letting everything through; GL2 starts half open (sigmoid(0)).
        start = 1.0 if config.gate == "gl1" else 0.0
        self.text_gate = nn.Parameter(torch.full((config.text_dim,), start))
        self.image_gate = nn.Parameter(torch.full((image_dim,), start))
        self.missing = MissingModalities(
            {"text": config.text_dim, "image": config.image_dim}, config.modality_dropout
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = make_head(config, config.text_dim + image_dim)

    def gates(self) -> dict[str, torch.Tensor]:
        """The effective gate vectors per modality (GL2: in [0, 1])."""
        raw = {"text": self.text_gate, "image": self.image_gate}
        if self.config.gate == "gl2":
            return {name: torch.sigmoid(gate) for name, gate in raw.items()}
        return raw

    def embed(self, batch: Batch) -> torch.Tensor:
        self.check_inputs(batch)
        return self.dropout(torch.cat(self._gated(batch), dim=1))

    def _gated(self, batch: Batch) -> list[torch.Tensor]:
        """The text's and the (compressed) image's features times their gates."""
        text, image = _read_both(batch, self.config, self.missing)
        image = self.compress(image)
        gates = self.gates()
        return [text * gates["text"], image * gates["image"]]

    def modality_weights(self, batch: Batch) -> ModalityWeights:
        """Each modality's gated features' term of the linear head, and the gates' mean."""
        self.check_inputs(batch)
        parts = self._gated(batch)
        shares = linear_shares(self.head.linear.weight, parts, centred=self.head.kind == "softmax")
        n = len(parts[0])
        return ModalityWeights(
            weights=dict(zip(MODALITIES, shares, strict=True)),
            method=_LINEAR_METHOD.format(what="gated features")
            + "; gates: the mean of each modality's learned gates",
            gates={m: gate.mean().expand(n) for m, gate in self.gates().items()},
        )

    @torch.no_grad()
    def gate_stats(self, near_zero: float = 0.05) -> dict[str, dict[str, float | int]]:
        """Per modality: mean, std, min, max of the gates, and the share with |gate| < near_zero."""
        stats = {}
        for name, gate in self.gates().items():
            gate = gate.detach().float().cpu()
            stats[name] = {
                "dim": gate.numel(),
                "mean": float(gate.mean()),
                "std": float(gate.std(unbiased=False)),
                "min": float(gate.min()),
                "max": float(gate.max()),
                "near_zero": float((gate.abs() < near_zero).float().mean()),
            }
        return stats


@register_network(LateFusionConfig)
class LateFusion(SentimentNet):
    """The average of a text model's and an image model's predictions.

    Softmax head: outputs are the log of the averaged class probabilities, so softmax of the
    outputs (``scores``) is that average and cross-entropy on them is its negative log.
    Embedding head: outputs are the mean of the branches' unit-length label-space vectors.
    Training sums the branches' own losses (``training_outputs``), i.e. each branch learns as a
    unimodal model, as in the study; only their predictions are combined. With ``joint_loss``
    the fused output's loss is added, so each branch also learns where the other one errs.
    """

    inputs = ("text", "image")

    def __init__(self, config: LateFusionConfig, text: SentimentNet, image: SentimentNet) -> None:
        super().__init__(config)
        if text.head_kind != config.head or image.head_kind != config.head:
            raise UserInputError("both late-fusion branches must use the fusion's head kind")
        self.text = text
        self.image = image
        if config.combine == "stacked":
            n = config.n_classes
            self.stack = nn.Linear(2 * n, n)
            with torch.no_grad():  # the normalised geometric mean until set_stack
                self.stack.weight.copy_(torch.cat([torch.eye(n), torch.eye(n)], dim=1) / 2)
                self.stack.bias.zero_()

    @classmethod
    def from_config(cls, config: LateFusionConfig) -> LateFusion:
        return cls(config, build_model(config.text), build_model(config.image))

    def branches(self) -> dict[str, SentimentNet]:
        return {"text": self.text, "image": self.image}

    def fit_after_training(self, data: Data, labels: np.ndarray, batch_size: int) -> None:
        """A stacked combination learns how to weigh the branches on val, posts they did not
        train on (their probabilities on train are overconfident), from the posts that have
        both modalities; with one class only it keeps the geometric mean."""
        if self.config.combine != "stacked":
            return
        tensors = as_tensors(data)
        logp = run_batched(self, tensors, self.branch_log_probs, batch_size).numpy()
        both = np.ones(len(logp), dtype=bool)
        for modality in ("text", "image"):
            if (mask := present(tensors, modality)) is not None:
                both &= mask.numpy().astype(bool)
        y = np.asarray(labels)
        fitted = fit_softmax_regression(logp[both], y[both], self.config.n_classes)
        if fitted is not None:
            self.set_stack(*fitted)

    def set_stack(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Use a fitted stacked combination: ``weight`` (classes, 2 * classes) and ``bias``
        map both branches' log-probabilities (text's then image's) to class logits."""
        with torch.no_grad():
            self.stack.weight.copy_(weight.to(self.stack.weight.dtype))
            self.stack.bias.copy_(bias.to(self.stack.bias.dtype))

    def branch_log_probs(self, batch: Batch) -> torch.Tensor:
        """Both branches' class log-probabilities side by side (the stacker's input)."""
        return torch.cat(
            [self.text(batch).log_softmax(dim=1), self.image(batch).log_softmax(dim=1)], 1
        )

    @classmethod
    def from_models(cls, text: SentimentNet, image: SentimentNet) -> LateFusion:
        """Combine two (already trained) unimodal models."""
        if text.head_kind != image.head_kind:
            raise UserInputError(
                f"cannot average a {text.head_kind} text model with a {image.head_kind} image model"
            )
        config = LateFusionConfig(
            text=text.config.to_dict(),
            image=image.config.to_dict(),
            head=text.config.head,
            n_classes=text.config.n_classes,
            label_dim=text.config.label_dim,
        )
        return cls(config, text, image)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return [*self.text.backbone_parameters(), *self.image.backbone_parameters()]

    def embed(self, batch: Batch) -> torch.Tensor:
        """Both branches' penultimate representations, side by side."""
        return torch.cat([self.text.embed(batch), self.image.embed(batch)], dim=1)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self._combine(batch, self.text(batch), self.image(batch))

    def modality_weights(self, batch: Batch) -> ModalityWeights:
        """The weight each branch's scores get for the post (the mean: a half each, all of it
        for the only modality a post has; stacked: the size of each branch's term of the
        stacker's logits), each branch's own scores, and a branch's own gates (the image
        gate of a token-level fusion's text branch)."""
        outputs = {"text": self.text(batch), "image": self.image(batch)}
        rows, weights = self._mean_weights(batch, outputs["text"])
        method = "late fusion: the weight of each branch's scores in the average"
        if self.config.combine == "stacked":
            parts = [outputs[m].log_softmax(dim=1) for m in MODALITIES]
            stacked = torch.stack(linear_shares(self.stack.weight, parts, centred=True))
            weights = torch.where(rows.all(dim=0)[None], stacked, weights)
            method = (
                "stacked late fusion: the size of each branch's term of the stacker's logits "
                "(centred over the classes), over both terms"
            )
        gates, scores = {}, {}
        for modality, branch in self.branches().items():
            scores[modality] = branch.scores_of(outputs[modality])
            inner = branch.modality_weights(batch)
            if inner is not None:
                gates.update({f"{modality} branch: {k}": v for k, v in inner.gates.items()})
                method += f"; {modality} branch: {inner.method}"
        return ModalityWeights(
            weights={m: weights[i] for i, m in enumerate(MODALITIES)},
            method=method,
            gates=gates,
            branch_scores=scores,
        )

    @staticmethod
    def _mean_weights(batch: Batch, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(2, N) each: which rows have text and which an image, and the weight the mean gives
        each branch (a half each, all of it to the only branch a post has)."""
        everyone = torch.ones_like(like[:, 0], dtype=torch.bool)
        has = [present(batch, m) for m in MODALITIES]
        rows = torch.stack([everyone if h is None else h for h in has])
        return rows, rows.to(like.dtype) / rows.sum(dim=0).clamp(min=1)

    def _combine(self, batch: Batch, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """The fused output from both branches' outputs."""
        if self.config.head == "embedding":
            parts = torch.stack([F.normalize(text, dim=1), F.normalize(image, dim=1)])
        else:
            parts = torch.stack([text.log_softmax(dim=1), image.log_softmax(dim=1)])
        stacked = None
        if self.config.combine == "stacked":
            stacked = self.stack(torch.cat([parts[0], parts[1]], dim=1)).log_softmax(dim=1)
        has = [present(batch, "text"), present(batch, "image")]
        if has[0] is None and has[1] is None:
            if stacked is not None:
                return stacked
            if self.config.head == "embedding":
                return parts.mean(dim=0)
            return torch.logsumexp(parts, dim=0) - math.log(2)
        # a post without one modality is judged by the branch it has
        rows, weights = self._mean_weights(batch, parts[0])
        weights = weights[:, :, None]
        if self.config.head == "embedding":
            return (parts * weights).sum(dim=0)
        fused = torch.logsumexp(parts + weights.log(), dim=0)
        if stacked is None:
            return fused
        return torch.where(rows.all(dim=0)[:, None], stacked, fused)

    def training_outputs(self, batch: Batch) -> list[torch.Tensor]:
        text, image = self.text(batch), self.image(batch)
        if not self.config.joint_loss:
            return [text, image]
        return [text, image, self._combine(batch, text, image)]

    def scores_of(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.text.head.scores(outputs)

    def set_label_space(self, space: LabelSpace) -> None:
        self.text.set_label_space(space)
        self.image.set_label_space(space)

    def label_vectors(self) -> torch.Tensor:
        return self.text.label_vectors()
