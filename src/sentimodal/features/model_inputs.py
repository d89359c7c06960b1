"""A model's input arrays from each modality's features, for posts that may lack one.

Shared by prediction from a prepared dataset (the estimator) and from raw posts (the per-batch
post work, the server, the ONNX runtime), so both read a post without its image the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

#: ``<modality>_present`` (bool, one per row) marks the rows that have that modality; absent
#: means every row has it. Fusions fall back to what a post has.
PRESENT = "_present"


class Scaler(Protocol):
    def transform(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def model_inputs(
    parts: Mapping[str, tuple[Sequence[str], np.ndarray, np.ndarray | None]],
    ids: Sequence[str],
    scaler: Scaler | None,
) -> dict[str, np.ndarray]:
    """The model's input arrays for ``ids`` from each modality's (ids, values, lengths).

    A row missing a modality gets zeros there (after scaling: the train mean; for token ids:
    padding) and ``<modality>_present`` says which rows have it, so a fusion falls back to
    the modality the post has.
    """
    data: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    for kind, (have_ids, values, lengths) in parts.items():
        index = {id_: row for row, id_ in enumerate(have_ids)}
        rows = np.fromiter((index.get(i, -1) for i in ids), dtype=np.int64, count=len(ids))
        have = rows >= 0
        if have.all():
            data[kind] = values[rows]
            if lengths is not None:
                data[f"{kind}_lengths"] = lengths[rows]
            continue
        filled = np.zeros((len(ids), *values.shape[1:]), dtype=values.dtype)
        filled[have] = values[rows[have]]
        data[kind] = filled
        if lengths is not None:  # no row may have it (a batch of image-only posts)
            counts = np.zeros(len(ids), dtype=lengths.dtype)
            counts[have] = lengths[rows[have]]
            data[f"{kind}_lengths"] = counts
        masks[kind] = have
    if scaler is not None and len(ids):
        data = scaler.transform(data)
    for kind, have in masks.items():
        if data[kind].dtype.kind == "f":
            data[kind][~have] = 0.0
        data[kind + PRESENT] = have
    return data
