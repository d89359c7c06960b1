"""Shared checks of the hardening tests: a user error is one line and exit code 2."""

from __future__ import annotations

from click.testing import Result
from typer.testing import CliRunner

from sentimodal.interfaces.cli import app

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result: Result, *needles: str) -> str:
    """Exit code 2, no traceback, one ``error:`` line holding every needle; returns it."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
