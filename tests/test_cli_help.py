"""Every command's ``--help`` reads at 80 columns: no option name cut, each option's help short."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from sentimodal.interfaces.cli import app

#: the most lines one option's row may take at 80 columns (its names, help and default)
MAX_OPTION_LINES = 4
WIDTH = 80

_COMMAND = typer.main.get_command(app)
_COMMANDS = [[], *([name] for name in _COMMAND.commands)]  # type: ignore[attr-defined]


def _help(command: list[str]) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0, result.output
    return result.output


def _rows(output: str, params: list) -> dict[str, int]:
    """How many lines each parameter's row takes: from the line that starts with its first
    name to the next row's first line or the end of its panel."""
    lines = output.splitlines()
    starts: list[tuple[str, int]] = []
    at = 0
    for param in params:
        if getattr(param, "hidden", False):
            continue
        first = next((o for o in param.opts if o.startswith("--")), param.opts[0])
        pattern = re.compile(rf"^│ (\* )?\s*{re.escape(first)}(?![\w-])")
        found = next(i for i in range(at, len(lines)) if pattern.search(lines[i]))
        starts.append((first, found))
        at = found + 1
    ends = [i for i, line in enumerate(lines) if line.startswith("╰")]
    sizes = {}
    for number, (name, start) in enumerate(starts):
        following = [s for _, s in starts[number + 1 :]] + [e for e in ends if e > start]
        sizes[name] = min(end for end in following if end > start) - start
    return sizes


@pytest.mark.parametrize("command", _COMMANDS, ids=lambda c: " ".join(c) or "sentimodal")
def test_help_reads_at_80_columns(command: list[str]) -> None:
    output = _help(command)
    assert "…" not in output
    assert max(len(line) for line in output.splitlines()) <= WIDTH
    cli = _COMMAND.commands[command[0]] if command else _COMMAND  # type: ignore[attr-defined]
    params = [p for p in cli.params if not getattr(p, "hidden", False)]
    for param in params:
        for name in [*param.opts, *param.secondary_opts]:
            if param.param_type_name == "option":
                assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", output), name
    arguments = [p for p in params if p.param_type_name == "argument"]
    options = [p for p in params if p.param_type_name == "option"]
    sizes = {**_rows(output, arguments), **_rows(output, options)}
    long = {name: size for name, size in sizes.items() if size > MAX_OPTION_LINES}
    assert not long, f"help longer than {MAX_OPTION_LINES} lines at {WIDTH} columns: {long}"
