"""Softmax regression fitted to convergence, its L2 strength chosen by cross-validation.

Frozen CNN features are many (1280) and the image sets small (1-3k images): a linear softmax
layer is enough, and what decides its quality is how strongly it is regularised. Gradient
training with early stopping regularises by accident (the epoch at which a noisy validation
accuracy peaked); here the penalised likelihood is solved exactly (full-batch L-BFGS, a convex
problem: one answer whatever the seed) for each strength on a grid, and the strength is
chosen by k stratified folds of the training data (mean held-out accuracy or log-loss, the
best or the strongest within one standard error of it).

The objective is scikit-learn's ``LogisticRegression`` (L2 on the weights, not the bias):
``C * sum(cross-entropy) + ||W||^2 / 2``, so ``C`` means what it means there. For more than two
classes that is the multinomial model, one weight vector per class; for two it is the binary
model, one weight vector ``w`` for the log-odds. (A two-row softmax penalised on both rows
would be half as regularised: its optimal rows are ``-w/2`` and ``w/2``, whose squared norms
sum to ``||w||^2 / 2``, so it equals binary logistic regression at ``2C``.) The binary solution
is returned as those two softmax rows, so every caller still sees one row per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch.nn import functional

from sentimodal.features.engine import torch_threads


@dataclass
class LinearFit:
    """The fitted weights (classes, dim) and bias, the chosen C, and each C's CV score."""

    weight: torch.Tensor
    bias: torch.Tensor
    c: float
    #: C -> mean held-out log-loss over the inner folds (empty when one C was given)
    cv_loss: dict[float, float] = field(default_factory=dict)
    #: C -> mean held-out accuracy over the inner folds
    cv_accuracy: dict[float, float] = field(default_factory=dict)


def _objective(
    x: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    c: float,
    sample_weight: torch.Tensor | None,
) -> torch.Tensor:
    """The penalised loss divided by ``C * n`` (same minimiser, well-scaled for L-BFGS). One
    weight row is the binary model: its logit is the log-odds of class 1."""
    logits = x @ weight.T + bias
    if len(weight) == 1:
        losses = functional.binary_cross_entropy_with_logits(
            logits[:, 0], y.to(logits.dtype), reduction="none"
        )
    else:
        losses = functional.cross_entropy(logits, y, reduction="none")
    if sample_weight is not None:
        losses = losses * sample_weight
    return losses.mean() + (weight * weight).sum() / (2.0 * c * len(y))


def solve(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    c: float,
    *,
    start: tuple[torch.Tensor, torch.Tensor] | None = None,
    sample_weight: torch.Tensor | None = None,
    max_iter: int = 500,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise the objective for one C (float64, full batch); ``start`` warm-starts it.
    Returns one weight row and bias per class; two classes are solved as the binary model
    (one row ``w``) and returned as the softmax rows ``-w/2``, ``w/2`` (same probabilities)."""
    rows = 1 if n_classes == 2 else n_classes
    if start is None:
        weight = torch.zeros(rows, x.shape[1], dtype=x.dtype)
        bias = torch.zeros(rows, dtype=x.dtype)
    else:
        weight, bias = (t.detach().clone().to(x.dtype) for t in start)
        if rows == 1:  # the two softmax rows back to the log-odds row
            weight, bias = weight[1:] - weight[:1], bias[1:] - bias[:1]
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = _objective(x, y, weight, bias, c, sample_weight)
        loss.backward()
        return loss

    optimizer.step(closure)
    weight, bias = weight.detach(), bias.detach()
    if rows == 1:
        weight, bias = torch.cat([-weight, weight]) / 2, torch.cat([-bias, bias]) / 2
    return weight, bias


def fit_softmax_regression(
    x: np.ndarray, labels: np.ndarray, n_classes: int, c: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Weights (n_classes, dim) and bias of the L2 softmax regression of ``labels`` on ``x``
    at one ``C`` (scikit-learn's default 1.0), over the classes present (two present: the
    binary model, as scikit-learn fits it); a class absent from ``labels`` gets a bias that
    never lets it win. None when fewer than two classes occur."""
    present = np.unique(labels)
    if len(present) < 2:
        return None
    with torch_threads(1):
        weight, bias = solve(
            torch.as_tensor(x, dtype=torch.float64),
            torch.as_tensor(np.searchsorted(present, labels)),
            len(present),
            c,
        )
    full_weight = torch.zeros(n_classes, x.shape[1], dtype=torch.float64)
    full_bias = torch.full((n_classes,), -1e4, dtype=torch.float64)
    full_weight[torch.as_tensor(present)] = weight
    full_bias[torch.as_tensor(present)] = bias
    return full_weight, full_bias


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each example's inner fold, stratified by class (seeded)."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(y), dtype=np.int64)
    start = 0
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        out[members] = (np.arange(len(members)) + start) % folds
        start += len(members)
    return out


def _path(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    c_values: Sequence[float],
    sample_weight: torch.Tensor | None,
    max_iter: int,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Solutions for every C, strongest penalty first, each warm-starting the next."""
    order = sorted(range(len(c_values)), key=lambda i: c_values[i])
    out: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(c_values)
    start = None
    for i in order:
        start = solve(
            x,
            y,
            n_classes,
            c_values[i],
            start=start,
            sample_weight=sample_weight,
            max_iter=max_iter,
        )
        out[i] = start
    return [s for s in out if s is not None]


def fit_linear(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    n_classes: int,
    c_values: Sequence[float],
    *,
    folds: int = 5,
    seed: int = 0,
    sample_weight: np.ndarray | torch.Tensor | None = None,
    max_iter: int = 500,
    select: Literal["log_loss", "accuracy"] = "log_loss",
    one_se: bool = False,
) -> LinearFit:
    """Choose C by ``folds``-fold CV on (x, y), by mean held-out log-loss or accuracy (ties:
    the smaller C), then refit on all of it. ``one_se``: the smallest C whose mean score is
    within one standard error (over the folds) of the best one's, the one-standard-error rule
    (Hastie, Tibshirani and Friedman): the strongest penalty the CV cannot tell from the best.
    The folds are fewer when a class has fewer examples; a single C, or a class with one
    example, skips the search (the middle C of the grid is then used)."""
    # Each L-BFGS step is a handful of small matrix products: with several intra-op threads
    # their synchronisation costs more than the arithmetic (measured on the shared 2-core
    # machine: 57 ms against 0.4 ms per step for 45 x 3072 features), so the solver runs on one.
    with torch_threads(1):
        return _fit_linear(
            x, y, n_classes, c_values, folds, seed, sample_weight, max_iter, select, one_se
        )


def _choose(c_values: Sequence[float], cost: np.ndarray, one_se: bool) -> float:
    """The C with the lowest mean cost over the folds (rows), ties to the smaller C; with
    ``one_se`` the smallest C within one standard error of that best mean."""
    mean = cost.mean(axis=0).round(10)
    best = min(range(len(c_values)), key=lambda i: (mean[i], c_values[i]))
    if not one_se:
        return float(c_values[best])
    error = cost[:, best].std(ddof=1) / np.sqrt(len(cost))
    return float(min(c for c, m in zip(c_values, mean, strict=True) if m <= mean[best] + error))


def _fit_linear(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    n_classes: int,
    c_values: Sequence[float],
    folds: int,
    seed: int,
    sample_weight: np.ndarray | torch.Tensor | None,
    max_iter: int,
    select: str,
    one_se: bool,
) -> LinearFit:
    xt = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).double()
    yt = torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y).long()
    weights = None if sample_weight is None else torch.as_tensor(sample_weight).double()
    c_values = [float(c) for c in c_values]
    counts = np.bincount(yt.numpy(), minlength=n_classes)
    # as many folds as the rarest class fills (a tiny set still gets a search)
    folds = min(folds, int(counts[counts > 0].min()))
    result = LinearFit(torch.empty(0), torch.empty(0), sorted(c_values)[len(c_values) // 2])
    if len(c_values) > 1 and folds >= 2:
        fold = torch.as_tensor(stratified_folds(yt.numpy(), folds, seed))
        loss = np.zeros((folds, len(c_values)))
        accuracy = np.zeros((folds, len(c_values)))
        for k in range(folds):
            held, kept = fold == k, fold != k
            solutions = _path(
                xt[kept],
                yt[kept],
                n_classes,
                c_values,
                None if weights is None else weights[kept],
                max_iter,
            )
            for i, (weight, bias) in enumerate(solutions):
                logits = xt[held] @ weight.T + bias
                loss[k, i] = float(functional.cross_entropy(logits, yt[held]))
                accuracy[k, i] = float((logits.argmax(1) == yt[held]).double().mean())
        result.c = _choose(c_values, loss if select == "log_loss" else -accuracy, one_se)
        result.cv_loss = dict(zip(c_values, loss.mean(axis=0).tolist(), strict=True))
        result.cv_accuracy = dict(zip(c_values, accuracy.mean(axis=0).tolist(), strict=True))
    weight, bias = solve(xt, yt, n_classes, result.c, sample_weight=weights, max_iter=max_iter)
    result.weight, result.bias = weight.float(), bias.float()
    return result
