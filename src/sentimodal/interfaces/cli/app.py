"""The Typer application every command module registers on, and the shared error policy."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from sentimodal.errors import UserInputError

app = typer.Typer(
    help="sentimodal: multimodal (image + text) sentiment analysis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn a UserInputError into a one-line message and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserInputError as exc:
            message = Text.assemble(("error: ", "bold red"), str(exc))
            err_console.print(message, highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main() -> None:
    """sentimodal: multimodal (image + text) sentiment analysis."""
    # An explicit callback keeps `sentimodal <command>` a command group even while only one
    # command is registered (Typer otherwise runs a lone command as the root command).
