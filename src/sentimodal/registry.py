"""Name -> class registries, so configs, the CLI and saved models name components by string."""

from __future__ import annotations

import inspect
from typing import Any, Generic, TypeVar

from sentimodal.errors import UserInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Classes registered under their ``name`` attribute, built from plain-data settings.

    A class with ``family = True`` names a whole family of entries ``<name>:<source>`` (e.g.
    ``hf:bert-base-uncased``, ``timm:resnet18``): it is built with ``model=<source>``.
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
        """Registered names, sorted; a family shows as ``<name>:<source>``."""
        return sorted(f"{n}:<source>" if _family(c) else n for n, c in self._classes.items())

    def get(self, name: str) -> type[T]:
        """The class registered as ``name`` (its class attributes describe it without building)."""
        family, source = self._split(name)
        try:
            cls = self._classes[family]
        except KeyError:
            raise UserInputError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None
        if _family(cls) != (source is not None):
            usage = f"{family}:<source>" if _family(cls) else family
            raise UserInputError(f"{self.kind} {name!r}: write it as {usage}")
        return cls

    def build(self, name: str, **config: Any) -> T:
        """An instance of ``name`` with its settings (the ``config`` of a previous instance)."""
        cls = self.get(name)
        _, source = self._split(name)
        if source is not None:
            config = {**config, "model": source}
        try:
            inspect.signature(cls).bind(**config)
        except TypeError as exc:
            raise UserInputError(f"bad settings for {self.kind} {name!r}: {exc}") from None
        return cls(**config)

    def _split(self, name: str) -> tuple[str, str | None]:
        """``hf:org/model`` -> ("hf", "org/model") where ``hf`` is a family; else (name, None)."""
        family, colon, source = name.partition(":")
        if colon and family in self._classes and _family(self._classes[family]):
            if not source:
                raise UserInputError(f"{self.kind} {name!r} names no model after the colon")
            return family, source
        return name, None


def _family(cls: type) -> bool:
    return bool(getattr(cls, "family", False))
