"""Name -> text encoder class, so that configs, the CLI and saved models name encoders by string.

Each encoder module registers its class with :func:`register_text_encoder` when imported; the
package ``__init__`` imports them all.
"""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

from sentimodal.errors import UserInputError
from sentimodal.features.text_encoders.base import TextEncoder

_REGISTRY: dict[str, type[TextEncoder]] = {}
_T = TypeVar("_T", bound=type[TextEncoder])


def register_text_encoder(cls: _T) -> _T:
    """Class decorator: make ``cls`` available as ``get_text_encoder(cls.name)``."""
    if _REGISTRY.get(cls.name, cls) is not cls:
        raise ValueError(f"text encoder name {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def list_text_encoders() -> list[str]:
    """Registered encoder names, sorted."""
    return sorted(_REGISTRY)


def get_text_encoder(name: str, **config: Any) -> TextEncoder:
    """Build the encoder ``name`` with its settings (the ``config`` of a previous encoder)."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise UserInputError(
            f"unknown text encoder {name!r}; choose one of: {', '.join(list_text_encoders())}"
        ) from None
    try:
        inspect.signature(cls).bind(**config)
    except TypeError as exc:
        raise UserInputError(f"bad settings for text encoder {name!r}: {exc}") from None
    return cls(**config)
