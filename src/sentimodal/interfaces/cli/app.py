"""The Typer application every command module registers on, and the shared output and error
policy.

Output: the consoles never parse markup (``markup=False``), so an id, a path or a label the user
gave is printed as it is (``[/bold]`` as an id is text, not a rich tag); styling goes through
:func:`say` (or rich ``Text``/``Table`` styles), never through markup in a string.
Errors: a :class:`UserInputError` or a pydantic ``ValidationError`` (settings built from flags)
becomes one line on stderr and exit code 2, never a traceback. This module stays cheap to import:
commands import their heavy modules (torch, models) inside the function that runs.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable
from typing import Any, TypeVar

import click
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from sentimodal.config import validation_message
from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli import help_layout


class _InWorkflowOrder(TyperGroup):
    """Commands listed in the order they are registered (the data's path), not A to Z."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


help_layout.install()

app = typer.Typer(
    cls=_InWorkflowOrder,
    help="sentimodal: multimodal (image + text) sentiment analysis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)

F = TypeVar("F", bound=Callable[..., Any])


def say(*parts: str | tuple[str, str], err: bool = False) -> None:
    """Print plain strings and ``(text, style)`` pairs on one line; no string is markup."""
    target = err_console if err else console
    target.print(Text.assemble(*parts), highlight=False, soft_wrap=True)


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr; returns the exit (code 2) to raise."""
    say(("error: ", "bold red"), " ".join(message.split()), err=True)
    return typer.Exit(code=2)


def user_errors(func: F) -> F:
    """Turn a user error into a one-line message and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserInputError as exc:
            raise fail(str(exc)) from None
        except ValidationError as exc:
            raise fail(validation_message(exc, "invalid setting ")) from None

    return wrapper  # type: ignore[return-value]


def command_line(context: typer.Context) -> str:
    """The running command with every option spelled out (to redo the run from a report)."""
    parts = ["sentimodal", *shlex.split(context.command_path)[1:]]  # whatever ran the app
    for param in context.command.params:
        value = context.params.get(str(param.name))
        if value is None:
            continue
        if param.param_type_name == "argument":
            parts.append(shlex.quote(str(value)))
        elif getattr(param, "is_flag", False) and param.secondary_opts:
            parts.append(param.opts[0] if value else param.secondary_opts[0])
        elif getattr(param, "is_flag", False):
            parts += [param.opts[0]] if value else []
        else:
            parts += [param.opts[0], shlex.quote(str(value))]
    return " ".join(parts)


def _version(value: bool) -> None:
    if value:
        from sentimodal import __version__

        console.print(f"sentimodal {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """sentimodal: multimodal (image + text) sentiment analysis."""
    # An explicit callback keeps `sentimodal <command>` a command group even while only one
    # command is registered (Typer otherwise runs a lone command as the root command).
