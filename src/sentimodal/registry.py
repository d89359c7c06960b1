"""Name -> class registries, so configs, the CLI and saved models name components by string."""

from __future__ import annotations

import inspect
from typing import Any, Generic, TypeVar

from sentimodal.errors import UserInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Classes registered under their ``name`` attribute, built from plain-data settings.

    Unknown names and settings the class does not take are the user's to fix, so both raise
    :class:`UserInputError` naming the choices or the bad setting.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: make ``cls`` buildable by its ``name``."""
        name = cls.name  # type: ignore[attr-defined]
        if self._classes.get(name, cls) is not cls:
            raise ValueError(f"{self.kind} name {name!r} is already registered")
        self._classes[name] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        """The class registered as ``name`` (its class attributes describe it without building)."""
        try:
            return self._classes[name]
        except KeyError:
            raise UserInputError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def build(self, name: str, **config: Any) -> T:
        """An instance of ``name`` with its settings (the ``config`` of a previous instance)."""
        cls = self.get(name)
        try:
            inspect.signature(cls).bind(**config)
        except TypeError as exc:
            raise UserInputError(f"bad settings for {self.kind} {name!r}: {exc}") from None
        return cls(**config)
