"""One feature folder on disk: its meta, its shards, its index, and reading them back.

Layout of ``DATASET/features/<kind>/<name>-<key>/``: ``meta.json``, ``shard-00000.safetensors``
... (``features``, ``positions`` = rows of ``examples.parquet``, ``lengths`` for token ids; the
shard's rejects in its metadata), ``rejects.csv``, learned encoder state (``vocab.json``) and,
once every shard exists, ``ids.json``, whose presence marks the folder complete.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save as safetensors_bytes

from sentimodal.errors import UserInputError
from sentimodal.features.engine import Row
from sentimodal.files import remove_staging, write_atomic

KINDS = ("image", "text")
FEATURES_DIR = "features"
META_FILE = "meta.json"
IDS_FILE = "ids.json"
REJECTS_FILE = "rejects.csv"
SHARD_PATTERN = "shard-{:05d}.safetensors"


@dataclass
class FeatureSet:
    """Features of some examples: ``values[i]`` (and ``lengths[i]`` for token ids) is ``ids[i]``.

    ``directory`` is the feature folder they came from (it holds e.g. the ``tokens`` vocab).
    """

    ids: list[str]
    values: np.ndarray
    lengths: np.ndarray | None = None
    directory: Path | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, ids: Sequence[str]) -> FeatureSet:
        """The rows of ``ids``, in that order (every id must be present)."""
        index = {id_: i for i, id_ in enumerate(self.ids)}
        missing = [i for i in ids if i not in index]
        if missing:
            raise KeyError(f"{len(missing)} ids have no features, e.g. {missing[0]!r}")
        rows = np.fromiter((index[i] for i in ids), dtype=np.int64, count=len(ids))
        return FeatureSet(
            ids=list(ids),
            values=self.values[rows],
            lengths=None if self.lengths is None else self.lengths[rows],
            directory=self.directory,
        )


class FeatureFolder:
    """One feature folder: its meta, its shards, and reading them back."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def complete(self) -> bool:
        return (self.path / IDS_FILE).is_file()

    @property
    def meta(self) -> dict[str, Any]:
        path = self.path / META_FILE
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserInputError(f"unreadable feature metadata {path}: {exc}") from None

    def shard_path(self, index: int) -> Path:
        return self.path / SHARD_PATTERN.format(index)

    def begin(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Create the folder, or keep what an interrupted run left (its shard grid included)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if (self.path / META_FILE).is_file():
            existing = self.meta
            if existing.get("key") == meta["key"]:
                return existing
        write_atomic(self.path / META_FILE, _json_bytes(meta))
        return meta

    def write_shard(
        self,
        index: int,
        positions: np.ndarray,
        values: np.ndarray,
        lengths: np.ndarray | None,
        rejects: list[Row],
    ) -> None:
        tensors = {"features": np.ascontiguousarray(values), "positions": positions}
        if lengths is not None:
            tensors["lengths"] = lengths
        metadata = {"shard": str(index), "rejects": json.dumps(rejects, ensure_ascii=False)}
        write_atomic(self.shard_path(index), safetensors_bytes(tensors, metadata=metadata))

    def finish(
        self, meta: dict[str, Any], ids: Sequence[str], splits: Sequence[str]
    ) -> dict[str, Any]:
        """Index the shards: ids.json (rows in stored order), rejects.csv, counts in meta.json.

        ids.json is written last: its presence is what marks the folder complete.
        """
        positions, rejects = [], []
        for index in range(meta["n_shards"]):
            with self._open(index) as shard:
                positions.append(shard.get_tensor("positions"))
                rejects.extend(json.loads(shard.metadata().get("rejects", "[]")))
        stored = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)
        rows: dict[str, int] = defaultdict(int)
        for p in stored:
            rows[splits[int(p)]] += 1
        write_atomic(self.path / REJECTS_FILE, _rejects_csv(rejects))
        meta = {**meta, "counts": {"rows": len(stored), "rejects": len(rejects), "splits": rows}}
        write_atomic(self.path / META_FILE, _json_bytes(meta))
        write_atomic(self.path / IDS_FILE, _json_bytes([ids[int(p)] for p in stored]))
        remove_staging(self.path)
        return meta

    def read(self, dtype: str | None = None) -> FeatureSet:
        """All stored rows: float features as float32 unless ``dtype`` says otherwise."""
        if not self.complete:
            raise UserInputError(
                f"features in {self.path} are incomplete: run the extraction again"
            )
        meta = self.meta
        values, lengths, positions = [], [], []
        for index in range(meta["n_shards"]):
            with self._open(index) as shard:
                if (shard.metadata() or {}).get("shard") != str(index):
                    raise UserInputError(
                        f"corrupted feature folder {self.path}: {self.shard_path(index).name} "
                        "holds another shard; delete the folder and extract again"
                    )
                values.append(shard.get_tensor("features"))
                positions.append(shard.get_tensor("positions"))
                if "lengths" in set(shard.keys()):
                    lengths.append(shard.get_tensor("lengths"))
        stored_positions = np.concatenate(positions) if positions else np.zeros(0, np.int64)
        if len(np.unique(stored_positions)) != len(stored_positions):
            raise UserInputError(
                f"corrupted feature folder {self.path}: shards repeat rows; delete the folder "
                "and extract again"
            )
        shape = tuple(meta["shape"])
        stored = np.concatenate(values) if values else np.zeros((0, *shape), meta["dtype"])
        if dtype is not None:
            stored = stored.astype(dtype, copy=False)
        elif stored.dtype.kind == "f":
            stored = stored.astype(np.float32, copy=False)
        ids = json.loads((self.path / IDS_FILE).read_text(encoding="utf-8"))
        if len(ids) != len(stored):
            raise UserInputError(f"corrupted feature folder {self.path}: ids and shards disagree")
        return FeatureSet(
            ids=ids,
            values=stored,
            lengths=np.concatenate(lengths) if meta.get("lengths") and lengths else None,
            directory=self.path,
        )

    def read_ids(self) -> list[str]:
        """The ids of the stored rows (in stored order), without reading any features."""
        if not self.complete:
            raise UserInputError(
                f"features in {self.path} are incomplete: run the extraction again"
            )
        return [str(i) for i in json.loads((self.path / IDS_FILE).read_text(encoding="utf-8"))]

    def read_positions(self, positions: np.ndarray) -> FeatureSet:
        """The stored rows at ``positions`` (rows of ``examples.parquet``), in that order,
        ids being the positions as text: one process's part of a large table, read a shard
        at a time so that it never holds more than its part and one shard."""
        if not self.complete:
            raise UserInputError(
                f"features in {self.path} are incomplete: run the extraction again"
            )
        wanted = np.asarray(positions, dtype=np.int64)
        values, lengths, found = [], [], []
        for index in range(self.meta["n_shards"]):
            with self._open(index) as shard:
                stored = shard.get_tensor("positions")
                hit = np.isin(stored, wanted)
                if not hit.any():
                    continue
                found.append(stored[hit])
                values.append(shard.get_tensor("features")[hit])
                if "lengths" in set(shard.keys()):
                    lengths.append(shard.get_tensor("lengths")[hit])
        have = np.concatenate(found) if found else np.zeros(0, np.int64)
        order = np.argsort(have)
        rows = order[np.searchsorted(have[order], wanted)] if len(have) else order
        if len(have) != len(wanted) or not np.array_equal(have[rows], wanted):
            raise UserInputError(f"{self.path} lacks features for some of the rows asked for")
        stored_values = np.concatenate(values)[rows]
        if stored_values.dtype.kind == "f":
            stored_values = stored_values.astype(np.float32, copy=False)
        return FeatureSet(
            ids=[str(p) for p in wanted],
            values=stored_values,
            lengths=np.concatenate(lengths)[rows] if lengths else None,
            directory=self.path,
        )

    def _open(self, index: int) -> Any:
        path = self.shard_path(index)
        try:
            return safe_open(str(path), framework="numpy")
        except Exception as exc:  # safetensors raises its own error types for bad files
            raise UserInputError(
                f"missing or corrupted feature shard {path} ({exc}); delete {self.path} and "
                "extract again"
            ) from None


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _rejects_csv(rejects: list[Row]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "image", "reason"])
    for reject in sorted(rejects, key=lambda r: r["position"]):
        writer.writerow([reject["id"], reject["image"], reject["reason"]])
    return buffer.getvalue().encode("utf-8")
