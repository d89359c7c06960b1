"""`sentimodal models`: the run models ``train --model`` takes, as a table.

Every row comes from the recipe registry (:mod:`sentimodal.models.recipes`), so a model a user
registers is listed the same way as a shipped one.
"""

from __future__ import annotations

from sentimodal.interfaces.cli.app import app, console, user_errors


@app.command("models")
@user_errors
def models_command() -> None:
    """List the run models: what each reads, what it trains, and when to use it."""
    from sentimodal.interfaces.cli.tables import SafeTable
    from sentimodal.models.recipes import DEFAULT_RECIPE, RECIPES

    table = SafeTable(title="run models (train --model NAME; default: " + DEFAULT_RECIPE + ")")
    table.add_column("model", style="bold", no_wrap=True)
    table.add_column("reads", ratio=2, overflow="fold")
    table.add_column("trains", ratio=3, overflow="fold")
    table.add_column("use it when", ratio=3, overflow="fold")
    for name, recipe in RECIPES.items():
        table.add_row(name, recipe.reads(), recipe.summary, recipe.use_when)
    console.print(table)
