"""`sentimodal experiment SPEC --data DATASET_DIR --out DIR`: run a grid, resumably."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from sentimodal.errors import UserInputError
from sentimodal.interfaces.cli.app import app, console, say, user_errors
from sentimodal.interfaces.cli.tables import comparison_table
from sentimodal.specs import list_specs


@app.command("experiment")
@user_errors
def experiment_command(
    spec: str | None = typer.Argument(
        None, help="A spec YAML file, or a shipped spec's name (see --list)."
    ),
    data: Path | None = typer.Option(None, "--data", help="A prepared dataset directory."),
    out: str | None = typer.Option(
        None, "--out", "-o", help="Where runs and results go (resumable)."
    ),
    list_shipped: bool = typer.Option(
        False, "--list", help="List the shipped specs, one line each, and exit."
    ),
    jobs: int = typer.Option(
        1, "--jobs", "-j", help="Runs in parallel (processes, one torch thread each)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train every cell of a grid with every seed; finished runs are kept, not recomputed."""
    from sentimodal.files import check_output_folder

    out = check_output_folder(out) if out is not None else None
    import pandas as pd

    from sentimodal.analysis.experiment import expand_grid, load_spec, run_experiment

    if list_shipped:
        for name in list_specs():
            shipped = load_spec(name)
            cells, seeds = len(expand_grid(shipped)), len(shipped.seeds)
            summary = " ".join(shipped.description.split()).split(": ")[0].split(". ")[0]
            if len(summary) > 90:
                summary = summary[:90].rsplit(" ", 1)[0] + " ..."
            say((name, "bold"), f" ({cells} cells x {seeds} seeds): {summary.rstrip('.')}")
        return
    given = (("SPEC", spec), ("--data", data), ("--out", out))
    missing = [flag for flag, value in given if not value]
    if missing:
        raise UserInputError(f"give {', '.join(missing)} (or --list for the shipped specs)")
    parsed = load_spec(spec)
    command = shlex.join(["sentimodal", *sys.argv[1:]])
    result = run_experiment(parsed, data, out, jobs=jobs, command=command, progress=not quiet)
    rows = []
    for row in result.summary.to_dict("records"):
        shown: dict[str, object] = {"model": row["label"]}
        for metric in ("accuracy", "macro_f1", "weighted_f1"):
            std = row[f"test_{metric}_std"]
            shown[metric] = row[f"test_{metric}_mean"]
            shown[f"{metric}_std"] = None if pd.isna(std) else std  # one run: no spread
        rows.append(shown)
    console.print(comparison_table(rows, f"{parsed.name}: test split, mean ± std over seeds"))
    say(
        f"{result.computed} run(s) computed, {result.skipped} already done, "
        f"{result.seconds:.0f} s; results in ",
        (str(result.out), "bold"),
        " (results.md, report.html)",
    )
