"""`sentimodal experiment SPEC --data DATASET_DIR --out DIR`: run a grid, resumably."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from sentimodal.interfaces.cli.app import app, console, say, user_errors
from sentimodal.interfaces.cli.tables import comparison_table
from sentimodal.specs import list_specs


@app.command("experiment")
@user_errors
def experiment_command(
    spec: str = typer.Argument(
        ..., help=f"A spec YAML file, or a shipped spec: {', '.join(list_specs())}."
    ),
    data: Path = typer.Option(..., "--data", help="A prepared dataset directory."),
    out: Path = typer.Option(..., "--out", "-o", help="Where runs and results go (resumable)."),
    jobs: int = typer.Option(
        1, "--jobs", "-j", help="Runs in parallel (processes, one torch thread each)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train every cell of a grid with every seed; finished runs are kept, not recomputed."""
    import pandas as pd

    from sentimodal.analysis.experiment import load_spec, run_experiment

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
