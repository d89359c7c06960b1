"""The per-batch work of featurising posts: read and decode, then one batched forward pass.

Shared by the feature store (whole datasets, cached) and prediction (raw posts, on the fly), and
shaped for the engines: a plain callable of a batch of rows, in two stages an engine may place
apart (``load`` in worker processes, ``compute`` wherever the model is).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from sentimodal.errors import RecordError
from sentimodal.features.engine import BatchResult, Row
from sentimodal.features.image_encoders.base import ImageEncoder
from sentimodal.features.text_encoders import lengths_from_ids
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.net import FetchPolicy


@dataclass
class LoadedImages:
    """A decoded batch on its way from a loading worker to the forward pass."""

    positions: np.ndarray
    pixels: torch.Tensor | None
    rejects: list[Row] = field(default_factory=list)


class ImageBatchWork:
    """Images: read + decode + transform per row (``load``), one batched forward (``compute``).

    Decoding goes through ``encoder.read``, which decodes JPEGs straight down to the size the
    transform needs (draft mode), keeping decode well below the cost of the forward pass.
    """

    parallel = True

    def __init__(self, encoder: ImageEncoder, fetch: FetchPolicy | None = None) -> None:
        self.encoder = encoder
        #: how image URLs are fetched (plain data: it travels with the work to the workers)
        self.fetch = fetch or FetchPolicy()

    @property
    def compute_in_workers(self) -> bool:
        """True when the model runs on the CPU (builds it, so that forked workers share it)."""
        parameter = next(iter(self.encoder.module().parameters()), None)
        return parameter is None or parameter.device.type == "cpu"

    def load(self, rows: list[Row]) -> LoadedImages:
        tensors: list[torch.Tensor] = []
        positions: list[int] = []
        rejects: list[Row] = []
        for row in rows:
            try:
                tensors.append(self.encoder.read(row["image"], policy=self.fetch))
            except RecordError as exc:
                rejects.append(_reject(row, str(exc)))
                continue
            positions.append(int(row["position"]))
        pixels = torch.stack(tensors) if tensors else None
        return LoadedImages(np.asarray(positions, dtype=np.int64), pixels, rejects)

    def compute(self, loaded: LoadedImages) -> BatchResult:
        if loaded.pixels is None:
            values = np.zeros((0, *self.encoder.shape), dtype=np.float32)
        else:
            values = self.encoder.encode(loaded.pixels)
        return BatchResult(loaded.positions, values, rejects=loaded.rejects)

    def __call__(self, rows: list[Row]) -> BatchResult:
        return self.compute(self.load(rows))


class TextBatchWork:
    """Texts: nothing to load; ``compute`` encodes the batch (and counts tokens for ids).

    Runs in the main process: text encoders are cheap or already use every core, and each
    worker would load its own copy of a transformer.
    """

    parallel = False
    compute_in_workers = False

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder

    def load(self, rows: list[Row]) -> list[Row]:
        return rows

    def compute(self, loaded: list[Row]) -> BatchResult:
        texts = [str(row["text"]) for row in loaded]
        positions = np.array([int(row["position"]) for row in loaded], dtype=np.int64)
        if not texts:  # a batch of image-only posts: no text, but the shape a fusion reads
            values = np.zeros((0, *self.encoder.shape), dtype=self.encoder.dtype)
        else:
            values = np.asarray(self.encoder.encode(texts))
        lengths = lengths_from_ids(values) if is_token_encoder(self.encoder) else None
        return BatchResult(positions, values, lengths=lengths)

    def __call__(self, rows: list[Row]) -> BatchResult:
        return self.compute(self.load(rows))


def is_token_encoder(encoder: TextEncoder) -> bool:
    """Token-id encoders store integers (never float16) and a length per text."""
    return np.dtype(encoder.dtype).kind in "iu"


def _reject(row: Row, reason: str) -> Row:
    return {
        "position": int(row["position"]),
        "id": str(row["id"]),
        "image": str(row.get("image") or ""),
        "reason": reason,
    }
