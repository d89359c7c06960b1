"""Per-feature standardisation of vector inputs, learned on the train split.

Frozen encoders give features on very different scales (unit-norm sentence vectors, ReLU
activations in the tens, pixels in [0, 1]); without scaling, a fusion layer is dominated by
whichever modality has the largest numbers. The statistics travel with the model directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Self

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from sentimodal.errors import UserInputError

SCALER_FILE = "scaler.safetensors"


class FeatureScaler:
    """Standardise each float feature-vector input (``text``, ``image``) to mean 0, std 1.

    A grid of vectors (N, positions, channels) is standardised per channel, over rows and
    positions alike. Token ids and pixel tensors (for end-to-end models) pass through unchanged.
    """

    def __init__(self, epsilon: float = 1e-6) -> None:
        self.epsilon = epsilon

    @staticmethod
    def _scaled(key: str, values: np.ndarray) -> bool:
        return not key.endswith("_lengths") and values.ndim in (2, 3) and values.dtype.kind == "f"

    def fit(self, data: Mapping[str, np.ndarray]) -> Self:
        self.stats_: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for key, values in data.items():
            if self._scaled(key, values):
                mean, std = _channel_stats(values.reshape(-1, values.shape[-1]))
                self.stats_[key] = (
                    mean.astype(np.float32),
                    np.where(std > self.epsilon, std, 1.0).astype(np.float32),
                )
        return self

    def transform(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(data)
        for key, (mean, std) in self.stats_.items():
            if key in out:
                values = out[key]
                if not self._scaled(key, values) or values.shape[-1] != mean.shape[0]:
                    raise UserInputError(
                        f"the {key} scaler has {mean.shape[0]} dimensions, the {key} features "
                        f"{values.shape[1:]}: the model directory does not fit its encoder"
                    )
                out[key] = ((values.astype(np.float32) - mean) / std).astype(np.float32)
        return out

    def inverse(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The features as they were before :meth:`transform` (float rounding aside)."""
        out = dict(data)
        for key, (mean, std) in self.stats_.items():
            if key in out:
                out[key] = np.asarray(out[key], dtype=np.float32) * std + mean
        return out

    def save(self, directory: Path) -> None:
        tensors = {}
        for key, (mean, std) in self.stats_.items():
            tensors[f"{key}.mean"], tensors[f"{key}.std"] = mean, std
        save_file(tensors, str(directory / SCALER_FILE))

    @classmethod
    def load(cls, directory: Path) -> FeatureScaler:
        path = directory / SCALER_FILE
        try:
            tensors = load_file(str(path))
        except FileNotFoundError:
            raise UserInputError(f"{directory} is incomplete: {SCALER_FILE} is missing") from None
        except (SafetensorError, OSError, ValueError) as exc:
            raise UserInputError(f"{path} is corrupted: {exc}") from None
        scaler = cls()
        keys = sorted({name.rsplit(".", 1)[0] for name in tensors})
        scaler.stats_ = {}
        for key in keys:
            mean, std = tensors.get(f"{key}.mean"), tensors.get(f"{key}.std")
            if mean is None or std is None or mean.ndim != 1 or mean.shape != std.shape:
                raise UserInputError(f"{path} is corrupted: {key} needs a mean and a std vector")
            if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
                raise UserInputError(
                    f"{path} holds NaN, infinite or non-positive scales for {key}: refused"
                )
            scaler.stats_[key] = (mean.astype(np.float32), std.astype(np.float32))
        return scaler


def _channel_stats(rows: np.ndarray, chunk: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and standard deviation in float64, a block of rows at a time: a
    grid's rows are positions x posts, too many to copy in float64 at once."""
    step = max(1, chunk // max(1, rows.shape[1]))
    blocks = range(0, len(rows), step)
    mean = sum(rows[i : i + step].sum(axis=0, dtype=np.float64) for i in blocks) / len(rows)
    squares = sum(np.square(rows[i : i + step] - mean).sum(axis=0) for i in blocks)
    return mean, np.sqrt(squares / len(rows))
