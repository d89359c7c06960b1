"""The spec of an experiment grid: its schema, its cells, and validation before anything runs.

A spec names a grid of settings over a base :class:`RunConfig`, the protocol its runs follow
(the dataset's split, or k folds) and what each run is scored on (its branches, its posts with
a modality hidden); every cell's options are checked through the model's recipe exactly as the
estimator checks them, so a grid refuses what a single run would refuse, and nothing else.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from sentimodal.analysis.baselines import BaselineConfig, BaselineName
from sentimodal.analysis.experiment.protocol import Protocol, SplitProtocol
from sentimodal.analysis.experiment.scoring import ScoresConfig
from sentimodal.config import Config, Seed, load_data, validation_message
from sentimodal.errors import UserInputError
from sentimodal.specs import list_specs, spec_path
from sentimodal.training.run_config import RunConfig, check_run

#: runs (cells x seeds) one grid may hold: beyond it a spec is a mistake, not a plan
MAX_RUNS = 10_000

Grid = dict[str, Any]


class ReferenceEntry(Config):
    """A published number for one cell: ``cell`` gives the grid values that identify it."""

    cell: dict[str, Any]
    accuracy: float | None = None
    macro_f1: float | None = None
    #: where the number comes from (paper table, dataset, classes)
    note: str = ""


class ExperimentSpec(Config):
    """A grid of runs: the base settings, what varies, the seeds, baselines and references."""

    name: str = Field(min_length=1)
    description: str = ""
    #: the RunConfig every cell starts from
    base: dict[str, Any] = Field(default_factory=dict)
    #: dotted RunConfig keys -> values; a list of grids is the union of their products
    grid: Grid | list[Grid] = Field(default_factory=dict)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    #: how each run trains and is tested: the dataset's split, or k folds of its posts
    protocol: Protocol = Field(default_factory=SplitProtocol)
    #: what each run is scored on besides itself: branches, posts with a modality hidden
    scores: ScoresConfig = Field(default_factory=ScoresConfig)
    #: a name, or a mapping of a baseline's own settings (over baseline_options)
    baselines: list[BaselineName | dict[str, Any]] = Field(default_factory=list)
    #: options of the baselines (e.g. the logreg encoders), shared by all of them
    baseline_options: dict[str, Any] = Field(default_factory=dict)
    reference: list[ReferenceEntry] = Field(default_factory=list)

    def baseline_configs(self) -> dict[str, BaselineConfig]:
        """Each baseline by its cell id: ``baseline-NAME``, and for one given as a mapping
        the encoders it reads too (``baseline-logreg-mobilenet_v2``), so two differ."""
        out: dict[str, BaselineConfig] = {}
        for entry in self.baselines:
            given = {"name": entry} if isinstance(entry, str) else entry
            config = BaselineConfig.model_validate({**self.baseline_options, **given})
            suffix = "" if isinstance(entry, str) else "+".join(config.encoders().values())
            if not isinstance(entry, str) and config.image_encoder_config:
                suffix += "@" + ",".join(
                    f"{k}={format_value(v)}" for k, v in config.image_encoder_config.items()
                )
            cell = f"baseline-{config.name}" + (f"-{suffix}" if suffix else "")
            if cell in out:
                raise UserInputError(f"baselines: {cell} is listed twice")
            out[cell] = config
        return out

    def grids(self) -> list[Grid]:
        return self.grid if isinstance(self.grid, list) else [self.grid]

    def grid_keys(self) -> list[str]:
        """Every varied key, in the order the grids list them."""
        return list(dict.fromkeys(key for grid in self.grids() for key in grid))


@dataclass(frozen=True)
class Cell:
    """One combination of grid values; its runs differ only by seed."""

    id: str
    values: dict[str, Any]
    label: str

    def run_config(self, base: Mapping[str, Any], seed: int) -> RunConfig:
        data = json.loads(json.dumps(dict(base)))  # a deep copy of plain data
        for key, value in self.values.items():
            _set_dotted(data, key, value)
        _set_dotted(data, "train.seed", seed)
        return RunConfig.model_validate(data)


def load_spec(spec: str | Path) -> ExperimentSpec:
    """A spec from a YAML file, or a shipped spec by name (``study-fusion``)."""
    path = Path(spec)
    if not path.is_file():
        if str(spec) not in list_specs():
            raise UserInputError(
                f"no spec file {spec} and no shipped spec of that name "
                f"(shipped: {', '.join(list_specs())})"
            )
        path = spec_path(str(spec))
    data = load_data(path, "spec file") or {}
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: a spec is a mapping (name, base, grid, seeds, ...)")
    try:
        parsed = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise UserInputError(validation_message(exc, f"{path}: bad spec key ")) from None
    check_spec(parsed)
    return parsed


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UserInputError(f"grid key {key}: {part} is not a group of settings")
        node = child
    node[parts[-1]] = value


def format_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _cell_id(values: Mapping[str, Any]) -> str:
    """A readable, filesystem-safe, stable name for a combination of grid values."""
    if not values:
        return "base"
    text = ",".join(f"{key}={format_value(value)}" for key, value in values.items())
    safe = re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)
    if len(safe) > 120:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]
        safe = f"{safe[:100]}-{digest}"
    return safe


def _cell_label(values: Mapping[str, Any]) -> str:
    """A short name for charts: the last part of each key, unless two keys share it."""
    last = [key.rsplit(".", 1)[-1] for key in values]
    names = [k if last.count(s) > 1 else s for k, s in zip(values, last, strict=True)]
    parts = [
        format_value(v) if k == "model" else f"{n}={format_value(v)}"
        for (k, v), n in zip(values.items(), names, strict=True)
    ]
    return " ".join(parts) or "base"


def _check_values(grid: Grid) -> None:
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UserInputError(f"grid key {key}: give a non-empty list of values")


def count_runs(spec: ExperimentSpec) -> int:
    """How many runs the spec asks for (an upper bound: equal cells count once when run)."""
    cells = 0
    for grid in spec.grids():
        _check_values(grid)
        cells += math.prod(len(values) for values in grid.values())
    return cells * len(spec.seeds)


def expand_grid(spec: ExperimentSpec) -> list[Cell]:
    """Every cell of the spec: the product of each grid's values, grids one after another."""
    cells: dict[str, Cell] = {}
    for grid in spec.grids():
        _check_values(grid)
        keys = list(grid)
        for combination in itertools.product(*(grid[key] for key in keys)):
            values = dict(zip(keys, combination, strict=True))
            cell = Cell(_cell_id(values), values, _cell_label(values))
            cells.setdefault(cell.id, cell)
    return list(cells.values())


def check_spec(spec: ExperimentSpec) -> list[Cell]:
    """Validate every cell's RunConfig before anything runs; errors name the key to fix."""
    for key in spec.grid_keys():
        if key == "train.seed":
            raise UserInputError("grid key train.seed: list the seeds under `seeds` instead")
    runs = count_runs(spec)
    if runs > MAX_RUNS:
        raise UserInputError(
            f"the grid holds {runs:,} runs (cells x seeds), more than {MAX_RUNS:,}: "
            "split it into smaller specs"
        )
    cells = expand_grid(spec)
    for cell in cells:
        try:
            run = cell.run_config(spec.base, spec.seeds[0])
        except ValidationError as exc:
            raise UserInputError(validation_message(exc, f"cell {cell.id}: bad key ")) from None
        try:
            check_run(run)
        except UserInputError as exc:
            raise UserInputError(f"cell {cell.id}: {exc}") from None
    try:
        BaselineConfig.model_validate({"name": "logreg", **spec.baseline_options})
    except ValidationError as exc:
        raise UserInputError(validation_message(exc, "bad key baseline_options.")) from None
    try:
        spec.baseline_configs()
    except ValidationError as exc:
        raise UserInputError(validation_message(exc, "bad key baselines.")) from None
    keys = set(spec.grid_keys())
    for entry in spec.reference:
        unknown = sorted(set(entry.cell) - keys)
        if unknown:
            raise UserInputError(
                f"reference cell {entry.cell}: {', '.join(unknown)} is not a grid key"
            )
    return cells
