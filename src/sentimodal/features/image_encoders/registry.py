"""The image encoders by name. Each encoder module registers its class with
:func:`register_image_encoder` when imported; the package ``__init__`` imports them all.
"""

from __future__ import annotations

from typing import Any

from sentimodal.features.image_encoders.base import ImageEncoder
from sentimodal.registry import Registry

_REGISTRY: Registry[ImageEncoder] = Registry("image encoder")
register_image_encoder = _REGISTRY.register


def list_image_encoders() -> list[str]:
    """Registered encoder names, sorted."""
    return _REGISTRY.names()


def get_image_encoder(name: str, **config: Any) -> ImageEncoder:
    """Build the encoder ``name`` with its settings (the ``config`` of a previous encoder)."""
    return _REGISTRY.build(name, **config)


def image_encoder_class(name: str) -> type[ImageEncoder]:
    """The class of encoder ``name``, to read what it gives without building it."""
    return _REGISTRY.get(name)
