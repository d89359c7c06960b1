"""Temperature scaling: one number fitted on val so that class scores mean what they say.

A trained network's probabilities ``p`` become ``softmax(log p / T)``. For a softmax head
that is ``softmax(logits / T)`` (Guo et al., 2017); for a late fusion, whose scores are
averaged probabilities, the same formula on their logarithm. ``T`` changes no ranking, so no
prediction, only how sure it claims to be. It is fitted at the end of training by minimising
val log-loss and kept only when that lowers val log-loss (``RunConfig.calibrate``). The
result is ``calibration.json`` in the model directory; the estimator applies it in torch,
the ONNX export puts it in the graph, so the server serves calibrated scores either way.
Embedding heads are left alone: their scores are similarities, not probabilities.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sentimodal.errors import UserInputError
from sentimodal.evaluation.calibration import (
    expected_calibration_error,
    log_loss,
    reliability_bins,
)
from sentimodal.files import write_json_atomic

CALIBRATION_FILE = "calibration.json"
#: the temperatures searched (log-spaced, golden section): far beyond what networks need
_LOG_T_RANGE = (math.log(0.05), math.log(20.0))
_EPS = 1e-12


@dataclass
class Calibration:
    """A fitted temperature, whether it is applied, and val's calibration before and after."""

    temperature: float
    applied: bool
    fitted_on: str
    n: int
    #: ``log_loss``, ``ece`` and reliability ``bins`` of val's scores, "before" and "after"
    val: dict[str, dict[str, Any]] = field(default_factory=dict)
    method: str = "temperature scaling"

    @property
    def effective(self) -> float:
        """The temperature scores are divided by (1 when not applied)."""
        return self.temperature if self.applied else 1.0

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (N, labels) from the network's."""
        return temper(scores, self.effective)

    def apply_torch(self, scores: torch.Tensor) -> torch.Tensor:
        """The same in torch ops, traced into the ONNX graph."""
        if self.effective == 1.0:
            return scores
        logits = torch.log(scores.clamp_min(_EPS)) / self.effective
        return torch.softmax(logits, dim=-1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, directory: Path) -> None:
        write_json_atomic(directory / CALIBRATION_FILE, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, where: str = CALIBRATION_FILE) -> Calibration:
        try:
            calibration = cls(
                temperature=float(data["temperature"]),
                applied=bool(data["applied"]),
                fitted_on=str(data.get("fitted_on", "val")),
                n=int(data.get("n", 0)),
                val=dict(data.get("val") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UserInputError(f"{where}: not a calibration record ({exc})") from None
        if not (math.isfinite(calibration.temperature) and calibration.temperature > 0):
            raise UserInputError(f"{where}: the temperature must be a positive number")
        return calibration


def temper(scores: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log scores / temperature)`` row by row."""
    scores = np.asarray(scores, dtype=np.float64)
    if temperature == 1.0:
        return scores.astype(np.float32)
    logits = np.log(np.clip(scores, _EPS, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_temperature(scores: np.ndarray, truth: np.ndarray, tolerance: float = 1e-4) -> float:
    """The temperature of least log-loss (golden-section search over log T: the loss of
    temperature scaling is convex in 1 / T, one minimum, no gradient needed)."""
    low, high = _LOG_T_RANGE
    ratio = (math.sqrt(5) - 1) / 2

    def loss(log_t: float) -> float:
        return log_loss(temper(scores, math.exp(log_t)), truth)

    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = loss(a), loss(b)
    while high - low > tolerance:
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = loss(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = loss(b)
    return math.exp((low + high) / 2)


def calibrate(
    scores: np.ndarray, truth: np.ndarray, *, use: bool, split: str = "val"
) -> Calibration:
    """Fit a temperature on ``split``'s scores and labels; it is applied when ``use`` and it
    lowers that split's log-loss. The record keeps both sides either way, for the report."""
    temperature = fit_temperature(scores, truth)
    after = temper(scores, temperature)
    val = {"before": _summary(scores, truth), "after": _summary(after, truth)}
    lowers = val["after"]["log_loss"] < val["before"]["log_loss"]
    return Calibration(
        temperature=temperature,
        applied=bool(use and lowers),
        fitted_on=split,
        n=len(truth),
        val=val,
    )


def _summary(probabilities: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    return {
        "log_loss": log_loss(probabilities, truth),
        "ece": expected_calibration_error(probabilities, truth),
        "bins": reliability_bins(probabilities, truth),
    }
