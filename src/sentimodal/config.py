"""Typed configuration that round-trips to YAML and JSON.

Every stage (preparation, features, training, experiments) describes its settings with a
subclass of :class:`Config`, and every run writes the full config next to its results.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from sentimodal.errors import UserInputError
from sentimodal.files import write_atomic


class Config(BaseModel):
    """Base for all settings: strict field names, plain-data dumps, YAML/JSON files."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_yaml(cls, text: str) -> Self:
        return cls.model_validate(yaml.safe_load(text) or {})

    @classmethod
    def from_json(cls, text: str) -> Self:
        return cls.model_validate(json.loads(text))

    def save(self, path: str | Path) -> Path:
        """Write as YAML or JSON, chosen by the file suffix."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = self.to_json() if path.suffix == ".json" else self.to_yaml()
        return write_atomic(path, text)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        return cls.from_json(text) if path.suffix == ".json" else cls.from_yaml(text)


def validation_message(exc: ValidationError, prefix: str = "") -> str:
    """The first problem of a pydantic error on one line: where (dotted) and what."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown setting"
    return f"{prefix}{where}: {message}" if where else f"{prefix}{message}"


C = TypeVar("C", bound=Config)


def load_config(cls: type[C], path: str | Path, what: str = "config") -> C:
    """A settings file for ``cls``, every problem with it a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{what} file not found: {path}")
    try:
        return cls.load(path)
    except ValidationError as exc:
        raise UserInputError(validation_message(exc, f"{path}: invalid {what}: ")) from None
    except (yaml.YAMLError, ValueError) as exc:
        raise UserInputError(
            f"{path}: not valid YAML/JSON ({' '.join(str(exc).split())})"
        ) from None
    except UnicodeDecodeError:
        raise UserInputError(f"{path}: not UTF-8 text") from None
