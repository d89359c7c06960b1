"""Experiment specs shipped with the package: the study's tables as runnable grids.

``sentimodal experiment study-fusion ...`` finds a spec here by name, so the grids behind
``docs/results/`` can be rerun without a checkout.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from sentimodal.errors import UserInputError

SPECS_ROOT = Path(str(files(__name__)))


def list_specs() -> list[str]:
    """Names of the shipped specs (file names without ``.yaml``), sorted."""
    return sorted(path.stem for path in SPECS_ROOT.glob("*.yaml"))


def spec_path(name: str) -> Path:
    """The YAML file of a shipped spec."""
    path = SPECS_ROOT / f"{name}.yaml"
    if not path.is_file():
        raise UserInputError(f"no shipped spec {name!r} (shipped: {', '.join(list_specs())})")
    return path
