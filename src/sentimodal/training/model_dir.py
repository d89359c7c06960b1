"""The on-disk model directory: everything needed to predict on new raw posts, no pickle.

Files: ``config.json`` (format tag, versions, run config, model config, encoders with their
weights identity), ``model.safetensors``, ``labels.json`` (labels, and label vectors for
embedding heads), ``vocab.json`` when the text encoder learned one, ``history.json`` and
``metrics.json`` when training recorded them, and ``scaler.safetensors`` (the
train-split feature standardisation). Reading refuses anything that is not such a
directory, or whose weights do not fit its config, with a message naming the file.

A model directory is input like any other: JSON files are read with a size cap (a
``config.json`` symlinked to /dev/zero is refused, not read until memory runs out), and the
network its config describes is checked against the shapes in the safetensors header before
it is built, so a config claiming a hidden size of 10^9 allocates nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError, safe_open

from sentimodal import __version__
from sentimodal.errors import UserInputError
from sentimodal.files import read_regular, write_atomic, write_json_atomic
from sentimodal.inference.labels import check_labels

if TYPE_CHECKING:  # torch loads when a model is saved or loaded, not when this is imported
    import torch

MODEL_FORMAT = "sentimodal-model"
MODEL_FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
LABELS_FILE = "labels.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
#: the run's full settings, next to its results (also what `sentimodal train --config` reads)
RUN_FILE = "run.yaml"
#: the largest JSON file of a model directory read (real ones are KBs; a vocab a few MB)
MAX_JSON_BYTES = 64 * 1024 * 1024


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically, so an interrupted save never leaves half a file behind."""
    write_json_atomic(path, data)


def read_json(path: Path, limit: int = MAX_JSON_BYTES) -> Any:
    """A JSON file of a model directory, read safely; problems name the file, on one line."""
    if not path.exists() and not path.is_symlink():
        raise UserInputError(f"{path.parent} is not a sentimodal model: {path.name} is missing")
    data = read_regular(path, limit, error=UserInputError)
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        message = " ".join(str(exc).split())
        raise UserInputError(f"{path} is corrupted: {message}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def save_weights(module: torch.nn.Module, directory: Path) -> None:
    from safetensors.torch import save

    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    write_atomic(directory / WEIGHTS_FILE, save(state, metadata={"format": MODEL_FORMAT}))


def weight_shapes(directory: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from the safetensors header alone (no tensor is read)."""
    path = directory / WEIGHTS_FILE
    if not path.is_file():
        raise UserInputError(f"{directory} is not a complete sentimodal model: no {WEIGHTS_FILE}")
    try:
        with safe_open(str(path), framework="numpy") as weights:
            names = weights.keys()  # a safe_open handle is not a mapping
            return {name: tuple(weights.get_slice(name).get_shape()) for name in names}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserInputError(f"{path} is corrupted: {exc}") from None


def build_checked(build: Callable[[], torch.nn.Module], directory: Path) -> torch.nn.Module:
    """Build the network ``build`` describes only once its shapes match the weights file.

    The network is first built on torch's ``meta`` device (shapes, no memory) and compared
    with the safetensors header; only a network that fits is built for real.
    """
    import torch

    stored = weight_shapes(directory)
    try:
        with torch.device("meta"):
            skeleton = build()
    except (ValueError, TypeError, RuntimeError) as exc:
        raise UserInputError(f"{directory / CONFIG_FILE}: cannot build the model: {exc}") from None
    expected = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    path = directory / WEIGHTS_FILE
    for name, shape in expected.items():
        if name not in stored:
            raise UserInputError(f"{path} does not fit the model in {CONFIG_FILE}: no {name!r}")
        if stored[name] != shape:
            raise UserInputError(
                f"{path} does not fit the model in {CONFIG_FILE}: {name!r} is "
                f"{list(stored[name])} in the file, {list(shape)} in the config"
            )
    extra = sorted(set(stored) - set(expected))
    if extra:
        raise UserInputError(
            f"{path} does not fit the model in {CONFIG_FILE}: unexpected {extra[0]!r}"
        )
    return build()


def load_weights(module: torch.nn.Module, directory: Path) -> None:
    """Load weights strictly: every tensor present, none extra, shapes equal, all finite."""
    import torch
    from safetensors.torch import load_file

    path = directory / WEIGHTS_FILE
    if not path.is_file():
        raise UserInputError(f"{directory} is not a complete sentimodal model: no {WEIGHTS_FILE}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserInputError(f"{path} is corrupted: {exc}") from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UserInputError(f"{path} holds NaN or infinite weights ({name}): refused")
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
    where = directory / CONFIG_FILE
    for key in ("run", "model", "encoders"):
        if not isinstance(config[key], dict):
            raise UserInputError(f"{where}: {key!r} must be a mapping")
    check_labels(config["labels"], where)
    if not config["encoders"]:
        raise UserInputError(f"{where}: the model names no encoder")
    for kind, entry in config["encoders"].items():
        if kind not in ("image", "text") or not isinstance(entry, dict):
            raise UserInputError(f"{where}: bad encoder entry {kind!r}")
        if not isinstance(entry.get("name"), str) or not isinstance(entry.get("config"), dict):
            raise UserInputError(f"{where}: the {kind} encoder needs a name and a config")
    return config


def read_labels(directory: Path, labels: list[str]) -> dict[str, Any] | None:
    """``labels.json``: the same labels as ``config.json``, and the label space (or None)."""
    path = directory / LABELS_FILE
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserInputError(f"{path} is corrupted: expected a mapping")
    if data.get("labels") is not None and check_labels(data["labels"], path) != labels:
        raise UserInputError(f"{path}: its labels differ from those in {CONFIG_FILE}")
    space = data.get("space")
    if space is not None and not isinstance(space, dict):
        raise UserInputError(f"{path}: 'space' must be a mapping")
    return space


def config_header() -> dict[str, Any]:
    return {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "sentimodal_version": __version__,
    }
