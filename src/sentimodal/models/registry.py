"""Network kinds by name, each declared once where it lives, as timm's ``register_model``.

A network class says which config it is built from with :func:`register_network`; the
registry derives everything else from those declarations: the kinds ``list_models()`` shows,
which config a saved ``{"kind": ...}`` mapping is read as, which kinds may be a late fusion's
text or image branch, and how a config is built. The shipped networks register when their
modules are first imported (the registry imports every module of this package on the first
lookup); a user's own network registers when the user's module is imported.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from sentimodal.errors import UserInputError
from sentimodal.models.config import ModelConfig

if TYPE_CHECKING:  # the registry stays light: networks import torch, their configs do not
    from sentimodal.models.base import SentimentNet

Net = TypeVar("Net", bound=type)


@dataclass(frozen=True)
class NetworkKind:
    """One registered network: its kind tag, its config class, its class, and which late
    fusion branches (``text``, ``image``) it may be."""

    kind: str
    config: type[ModelConfig]
    network: type
    branch_of: tuple[str, ...]


_NETWORKS: dict[str, NetworkKind] = {}


def register_network(
    config: type[ModelConfig], *, branch_of: tuple[str, ...] = ()
) -> Callable[[Net], Net]:
    """Class decorator: the network is built from ``config`` (whose ``kind`` default names
    it); ``branch_of`` lists the late-fusion branches it may stand in."""
    kind = config.model_fields["kind"].default
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{config.__name__} needs a default for its kind, e.g. kind: Literal['x']")

    def add(network: Net) -> Net:
        known = _NETWORKS.get(kind)
        if known is not None and known.network.__qualname__ != network.__qualname__:
            raise ValueError(f"network kind {kind!r} is already {known.network.__qualname__}")
        _NETWORKS[kind] = NetworkKind(kind, config, network, tuple(branch_of))
        return network

    return add


@cache
def _import_shipped() -> None:
    """Import every module of this package, so that the shipped networks are declared."""
    package = importlib.import_module(__package__ or "sentimodal.models")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


def _kinds() -> dict[str, NetworkKind]:
    _import_shipped()
    return _NETWORKS


def list_models() -> list[str]:
    """Every network kind: the shipped ones and those registered by imported modules."""
    return list(_kinds())


def network_kind(kind: str) -> NetworkKind:
    kinds = _kinds()
    if kind not in kinds:
        raise UserInputError(f"unknown model {kind!r}; known: {', '.join(kinds)}")
    return kinds[kind]


def config_for(name: str, **cfg: Any) -> ModelConfig:
    """The validated config of model kind ``name``; bad settings are the user's to fix."""
    config = network_kind(name).config
    cfg.pop("kind", None)
    try:
        return config(**cfg)
    except ValidationError as error:
        raise UserInputError(f"bad settings for model {name!r}: {error}") from None


def config_from_dict(data: Mapping[str, Any]) -> ModelConfig:
    """A model config from plain data with its ``kind`` (as in a model directory's config)."""
    try:
        return _parse(data)
    except (ValueError, TypeError) as error:
        raise UserInputError(f"bad model config: {error}") from None


def _parse(data: Mapping[str, Any]) -> ModelConfig:
    kind = data.get("kind") if isinstance(data, Mapping) else None
    kinds = _kinds()
    if kind not in kinds:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(kinds)}")
    return kinds[kind].config.model_validate(dict(data))


def branch_config(modality: str, value: Any) -> ModelConfig:
    """A late fusion's ``modality`` branch config, read by its kind and checked to be a network
    that may stand there (pydantic turns the ValueError into the field's error)."""
    config = value if isinstance(value, ModelConfig) else _parse(value)
    allowed = [k for k, entry in _kinds().items() if modality in entry.branch_of]
    if config.kind not in allowed:
        raise ValueError(
            f"a {config.kind!r} network cannot be the {modality} branch; these can: "
            + ", ".join(allowed)
        )
    return config


def build_model(config: ModelConfig | dict[str, Any], seed: int | None = None) -> SentimentNet:
    """The model a config describes; with ``seed``, its initial weights are reproducible."""
    import torch

    if isinstance(config, dict):
        config = config_from_dict(config)
    network = network_kind(config.kind).network
    if seed is None:
        return network.from_config(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return network.from_config(config)


def get_model(name: str, *, seed: int | None = None, **cfg: Any) -> SentimentNet:
    """Build model kind ``name`` (see ``list_models()``) with settings ``cfg``."""
    return build_model(config_for(name, **cfg), seed=seed)
