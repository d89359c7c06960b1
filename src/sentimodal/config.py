"""Typed configuration that round-trips to YAML and JSON, and the one safe loader for them.

Every stage (preparation, features, training, experiments) describes its settings with a
subclass of :class:`Config`, and every run writes the full config next to its results.
Config and spec files are user input: :func:`load_data` reads them with a size cap, strict
UTF-8, a bound on YAML aliases (a 1 KB alias bomb would otherwise grow to gigabytes) and no
non-finite numbers, and turns every problem into a one-line :class:`UserInputError`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Self, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sentimodal.errors import UserInputError
from sentimodal.files import read_user_text, write_atomic

#: the largest config or spec file read (real ones are a few KB)
MAX_CONFIG_BYTES = 1 << 20
#: YAML aliases (``*name``, ``<<: *name``) allowed in one document: with 20, the deepest
#: nesting of aliases expands to about 1,500 nodes; a bomb needs many more
MAX_YAML_ALIASES = 20
#: values (scalars, lists, mappings, counted through aliases) a config may hold
MAX_VALUES = 100_000
#: a random seed as numpy, torch and random all accept it
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
#: nesting depth allowed in a config (deeper ones are hostile, and overflow recursion)
MAX_DEPTH = 50


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting aliases as it composes the document."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} YAML aliases")
        return super().compose_node(parent, index)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not allowed")


def parse_data(text: str, fmt: str = "yaml", where: str = "config") -> Any:
    """YAML or JSON text -> plain data, or a one-line UserInputError naming ``where``."""
    try:
        if fmt == "json":
            data = json.loads(text, parse_constant=_refuse_constant)
        else:
            data = yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader subclass
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserInputError(f"unreadable config file {where}: {first}") from None
    _check_values(data, where, [], 0, [0])
    return data


def load_data(path: str | Path, what: str = "config file") -> Any:
    """A YAML or JSON file (by suffix) -> plain data, read safely; problems are one line."""
    path = Path(path)
    text = read_user_text(path, MAX_CONFIG_BYTES, what)
    return parse_data(text, "json" if path.suffix.lower() == ".json" else "yaml", str(path))


def _check_values(data: Any, where: str, keys: list[str], depth: int, seen: list[int]) -> None:
    """Refuse NaN/inf anywhere (they silently poison training), absurd nesting and size."""
    seen[0] += 1
    if seen[0] > MAX_VALUES:
        raise UserInputError(f"config {where} holds more than {MAX_VALUES:,} values")
    if depth > MAX_DEPTH:
        raise UserInputError(f"config {where} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(data, float) and not math.isfinite(data):
        at = ".".join(keys) or "value"
        raise UserInputError(f"config {where}: {at} is {data}, not a finite number")
    if isinstance(data, dict):
        for key, value in data.items():
            _check_values(value, where, [*keys, str(key)], depth + 1, seen)
    elif isinstance(data, list):
        for number, value in enumerate(data):
            _check_values(value, where, [*keys, str(number)], depth + 1, seen)


class Config(BaseModel):
    """Base for all settings: strict field names, finite numbers, plain-data dumps, files."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_yaml(cls, text: str) -> Self:
        return cls.model_validate(parse_data(text, "yaml") or {})

    @classmethod
    def from_json(cls, text: str) -> Self:
        return cls.model_validate(parse_data(text, "json"))

    def save(self, path: str | Path) -> Path:
        """Write as YAML or JSON, chosen by the file suffix."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = self.to_json() if path.suffix == ".json" else self.to_yaml()
        return write_atomic(path, text)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a file safely (:func:`load_data`); every problem is a one-line UserInputError."""
        data = load_data(path)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise UserInputError(
                f"invalid config file {path}: expected a mapping of settings, "
                f"got {type(data).__name__}"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise UserInputError(validation_message(exc, f"invalid config file {path}: ")) from None


def validation_message(exc: ValidationError, prefix: str = "") -> str:
    """The first problem of a pydantic error on one line: where (dotted) and what."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    detail = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        detail = "unknown setting"
    message = f"{prefix}{where}: {detail}" if where else f"{prefix}{detail}"
    return " ".join(message.split())  # one line, whatever the keys hold


C = TypeVar("C", bound=Config)


def load_config(cls: type[C], path: str | Path, what: str = "config") -> C:
    """A settings file for ``cls`` (read safely by ``Config.load``), its problems one line
    that says what the file was meant to be."""
    try:
        return cls.load(path)
    except UserInputError as exc:
        raise UserInputError(f"{what}: {exc}") from None
