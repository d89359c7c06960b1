"""The on-disk model directory: everything needed to predict on new raw posts, no pickle.

Files: ``config.json`` (format tag, versions, run config, model config, encoders with their
weights identity), ``model.safetensors``, ``labels.json`` (labels, and label vectors for
embedding heads), ``vocab.json`` when the text encoder learned one, ``history.json`` and
``metrics.json`` when training recorded them, and ``scaler.safetensors`` (the
train-split feature standardisation). Reading refuses anything that is not such a
directory, or whose weights do not fit its config, with a message naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from sentimodal import __version__
from sentimodal.errors import UserInputError
from sentimodal.files import write_atomic, write_json_atomic

MODEL_FORMAT = "sentimodal-model"
MODEL_FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
LABELS_FILE = "labels.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
#: the run's full settings, next to its results (also what `sentimodal train --config` reads)
RUN_FILE = "run.yaml"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically, so an interrupted save never leaves half a file behind."""
    write_json_atomic(path, data)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserInputError(
            f"{path.parent} is not a sentimodal model: {path.name} is missing"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path} is corrupted: {exc}") from None


def save_weights(module: torch.nn.Module, directory: Path) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    write_atomic(directory / WEIGHTS_FILE, save(state, metadata={"format": MODEL_FORMAT}))


def load_weights(module: torch.nn.Module, directory: Path) -> None:
    """Load weights strictly: every tensor present, none extra, shapes equal."""
    path = directory / WEIGHTS_FILE
    if not path.is_file():
        raise UserInputError(f"{directory} is not a complete sentimodal model: no {WEIGHTS_FILE}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserInputError(f"{path} is corrupted: {exc}") from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise UserInputError(
            f"{path} does not fit the model in {CONFIG_FILE}: {first[0]}"
        ) from None


def read_config(directory: str | Path) -> dict[str, Any]:
    """The checked ``config.json`` of a model directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserInputError(f"model directory not found: {directory}")
    config = read_json(directory / CONFIG_FILE)
    if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
        raise UserInputError(f"{directory} is not a sentimodal model (wrong {CONFIG_FILE} format)")
    version = config.get("format_version")
    if version != MODEL_FORMAT_VERSION:
        raise UserInputError(
            f"{directory}: model format version {version} is not supported by sentimodal "
            f"{__version__} (expects {MODEL_FORMAT_VERSION})"
        )
    for key in ("run", "model", "labels", "encoders"):
        if key not in config:
            raise UserInputError(f"{directory / CONFIG_FILE} lacks the field {key!r}")
    return config


def config_header() -> dict[str, Any]:
    return {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "sentimodal_version": __version__,
    }
