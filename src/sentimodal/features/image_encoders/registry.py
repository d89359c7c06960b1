"""Name -> image encoder class, so that configs, the CLI and saved models name encoders by string.

Each encoder module registers its class with :func:`register_image_encoder` when imported; the
package ``__init__`` imports them all.
"""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

from sentimodal.errors import UserInputError
from sentimodal.features.image_encoders.base import ImageEncoder

_REGISTRY: dict[str, type[ImageEncoder]] = {}
_T = TypeVar("_T", bound=type[ImageEncoder])


def register_image_encoder(cls: _T) -> _T:
    """Class decorator: make ``cls`` available as ``get_image_encoder(cls.name)``."""
    if _REGISTRY.get(cls.name, cls) is not cls:
        raise ValueError(f"image encoder name {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def list_image_encoders() -> list[str]:
    """Registered encoder names, sorted."""
    return sorted(_REGISTRY)


def get_image_encoder(name: str, **config: Any) -> ImageEncoder:
    """Build the encoder ``name`` with its settings (the ``config`` of a previous encoder)."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise UserInputError(
            f"unknown image encoder {name!r}; choose one of: {', '.join(list_image_encoders())}"
        ) from None
    try:
        inspect.signature(cls).bind(**config)
    except TypeError as exc:
        raise UserInputError(f"bad settings for image encoder {name!r}: {exc}") from None
    return cls(**config)
