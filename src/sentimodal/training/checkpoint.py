"""Training checkpoints: the whole state of a training run at the end of an epoch, so that a
run killed at any moment continues from its last finished epoch and ends with the same
weights as a run that was never interrupted.

A checkpoint is one safetensors file (``state.safetensors``) written atomically: every tensor
of the state (weights, optimiser moments, RNG states, the best epoch's weights) as a tensor,
and everything else (epoch, history, scheduler counters, best score) as JSON in the file's
metadata, so that the file and its description can never disagree. No pickle is read or
written. ``fingerprint`` ties a checkpoint to the settings and data it was made with: resuming
with other settings is refused rather than mixing two runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from sentimodal.errors import UserInputError
from sentimodal.files import write_atomic

CHECKPOINT_FOLDER = "checkpoint"
STATE_FILE = "state.safetensors"
_FORMAT = "sentimodal-checkpoint"
_VERSION = 1


def fingerprint(*parts: Any) -> str:
    """A short digest of plain-data parts (settings, ids): what a checkpoint must match."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _flatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-able structure with every tensor moved into ``tensors`` (named by position);
    dict keys keep their type (an optimiser's state is keyed by ints)."""
    if torch.is_tensor(value):
        name = f"t{len(tensors)}"
        tensors[name] = value.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": name}
    if isinstance(value, dict):
        return {
            "__dict__": [[_flatten(k, tensors), _flatten(v, tensors)] for k, v in value.items()]
        }
    if isinstance(value, list | tuple):
        return [_flatten(v, tensors) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__}")


def _unflatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in value["__dict__"]}
    if isinstance(value, list):
        return [_unflatten(v, tensors) for v in value]
    return value


def state_bytes(state: dict[str, Any], key: str) -> bytes:
    """A training state (nested dicts, lists, numbers, tensors) as one safetensors file."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _flatten(state, tensors)
    metadata = {
        "format": _FORMAT,
        "version": str(_VERSION),
        "fingerprint": key,
        "state": json.dumps(structure),
    }
    return save(tensors, metadata=metadata)


def read_state(path: Path, key: str) -> dict[str, Any]:
    """The state in ``path``; refuses a foreign, corrupted or other run's checkpoint."""
    try:
        data = path.read_bytes()
        tensors = load(data)
        metadata = _metadata(data)
    except (OSError, SafetensorError, ValueError) as exc:
        raise UserInputError(f"unreadable checkpoint {path}: {exc}") from None
    if metadata.get("format") != _FORMAT or metadata.get("version") != str(_VERSION):
        raise UserInputError(f"{path} is not a sentimodal checkpoint of version {_VERSION}")
    if metadata.get("fingerprint") != key:
        raise UserInputError(
            f"{path} was written by a run with other settings or data: train without "
            "--resume to start again, or resume with the settings it was made with"
        )
    return _unflatten(json.loads(metadata["state"]), tensors)


def _metadata(data: bytes) -> dict[str, str]:
    """The safetensors header's ``__metadata__`` (the header is JSON after an 8-byte size)."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    return dict(header.get("__metadata__") or {})


class Checkpoints:
    """Where a run keeps its checkpoint (``folder/state.safetensors``), and whether it
    continues from it (``resume``); ``key`` is the run's fingerprint."""

    def __init__(self, folder: str | Path, key: str, *, resume: bool = False) -> None:
        self.folder = Path(folder)
        self.key = key
        self.resume = resume

    @property
    def path(self) -> Path:
        return self.folder / STATE_FILE

    def save(self, state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, state_bytes(state, self.key))

    def load(self) -> dict[str, Any] | None:
        """The saved state when resuming and one exists; None: start from the beginning."""
        if not self.resume or not self.path.is_file():
            return None
        return read_state(self.path, self.key)
