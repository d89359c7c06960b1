"""``--help`` that reads at 80 columns: option names whole, each option's help on the right.

Typer's own options table gives every name form a column of its own (long, short, the
``--no-x`` form, its short form, the type) and lets rich cut any of them: at 80 columns
``--allow-private-addresses`` printed as ``--allow-private-a…``. Here an option's names share
one column that wraps between names but never inside one (``--balance /`` over
``--no-balance``), the type shows the value's own type (a repeatable option's ``<str>``, not
``<list[str]>``; its help says it repeats; a bounded number's ``<int>``, not ``<int range>``),
a flag shows none, and the help takes the rest.
A command's later paragraphs are reflowed to the terminal as its first line is (Typer keeps
their source line breaks, which leave half-empty lines at 80 columns).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click
import typer.rich_utils as rich_utils
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from typer.core import TyperArgument, TyperOption


def _value_type(display: Callable[..., str | None]) -> Callable[..., str | None]:
    """The type an option's value has: none for an on/off flag, an element's for a list."""

    @functools.wraps(display)
    def shown(self: TyperOption, ctx: click.Context) -> str | None:
        if self.is_flag:
            return None
        text = display(self, ctx)
        if text and text.startswith("<list[") and text.endswith("]>"):
            return f"<{text[len('<list[') : -len(']>')]}>"
        # a bounded number is an <int>; its bounds follow it ([x>=1])
        return text.replace(" range>", ">") if text else text

    return shown


def _names(param: click.Parameter) -> Text:
    """Every name of a parameter, long forms first; a space (never a hyphen) may wrap."""
    if isinstance(param, TyperArgument):
        return Text(param.display_name_raw, style="bold cyan")
    long = [o for o in param.opts if o.startswith("--")]
    text = rich_utils.highlighter(", ".join(long))
    if param.secondary_opts:
        text.append(" / ")
        text.append_text(rich_utils.negative_highlighter(" / ".join(param.secondary_opts)))
    return text


def _options_panel(
    *,
    name: str,
    params: list[TyperOption] | list[TyperArgument],
    ctx: click.Context,
    markup_mode: Any,
    console: Console,
) -> None:
    """Typer's options panel, laid out as the module docstring says."""
    if not params:
        return
    table = Table(
        show_header=False, box=None, pad_edge=False, padding=(0, 1), expand=True, highlight=True
    )
    required = any(param.required for param in params)
    if required:
        table.add_column(no_wrap=True)
    table.add_column(no_wrap=False, overflow="fold")  # names (wrap only between them)
    table.add_column(no_wrap=True)  # short forms (-o)
    table.add_column(no_wrap=False, overflow="fold")  # type and range
    table.add_column(ratio=1, no_wrap=False)  # help
    for param in params:
        kind = Text(style=rich_utils.STYLE_TYPES, overflow="fold")
        kind.append(param.display_type_rich(ctx=ctx) or "")
        number_range = param._get_number_range_help_str()
        if number_range:
            kind.append(rich_utils.RANGE_STRING.format(number_range))
        argument = isinstance(param, TyperArgument)
        short = [] if argument else [o for o in param.opts if not o.startswith("--")]
        row = [
            _names(param),
            rich_utils.highlighter(",".join(short)),
            rich_utils.types_highlighter(kind),
            rich_utils._get_parameter_help(param=param, ctx=ctx, markup_mode=markup_mode),
        ]
        mark = Text(rich_utils.REQUIRED_SHORT_STRING, style=rich_utils.STYLE_REQUIRED_SHORT)
        table.add_row(*([mark if param.required else ""] if required else []), *row)
    console.print(
        Panel(
            table,
            border_style=rich_utils.STYLE_OPTIONS_PANEL_BORDER,
            title=name,
            title_align=rich_utils.ALIGN_OPTIONS_PANEL,
        )
    )


def _reflow(paragraphs: list[str], markup_mode: Any) -> str:
    """Paragraphs joined by blank lines, each one line of text (``\b`` ones kept as they are)."""
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split()) for p in paragraphs)


def install() -> None:
    """Lay out every command's ``--help`` this way (called once, by the app's module)."""
    TyperOption.display_type_rich = _value_type(TyperOption.display_type_rich)  # type: ignore[method-assign]
    rich_utils._print_options_panel = _options_panel
    rich_utils._fix_linebreaks = _reflow
