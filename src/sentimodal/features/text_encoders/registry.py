"""The text encoders by name. Each encoder module registers its class with
:func:`register_text_encoder` when imported; the package ``__init__`` imports them all.
"""

from __future__ import annotations

from typing import Any

from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.registry import Registry

_REGISTRY: Registry[TextEncoder] = Registry("text encoder")
register_text_encoder = _REGISTRY.register


def list_text_encoders() -> list[str]:
    """Registered encoder names, sorted."""
    return _REGISTRY.names()


def get_text_encoder(name: str, **config: Any) -> TextEncoder:
    """Build the encoder ``name`` with its settings (the ``config`` of a previous encoder)."""
    return _REGISTRY.build(name, **config)


def saved_text_encoder(name: str, config: dict[str, Any]) -> TextEncoder:
    """The encoder a saved model was trained with, from its saved name and config: a setting
    added since that model was saved takes the value it had then (``legacy_config``)."""
    return get_text_encoder(name, **{**text_encoder_class(name).legacy_config, **config})


def text_encoder_class(name: str) -> type[TextEncoder]:
    """The class of encoder ``name``, to read what it gives without building it."""
    return _REGISTRY.get(name)
