"""`sentimodal demo [--out DIR]`: the whole path on the embedded MVSA-Single sample, offline."""

from __future__ import annotations

from pathlib import Path

import typer

from sentimodal.interfaces.cli.app import app, console, say, user_errors


@app.command("demo")
@user_errors
def demo_command(
    out: str = typer.Option("runs/demo", "--out", "-o", help="Folder to write into."),
    config_file: Path | None = typer.Option(
        None, "--config", help="A demo config YAML/JSON (as written to OUT/config.yaml)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Run everything on the embedded sample, offline; print the comparison; write a report."""
    from sentimodal.files import check_output_folder

    out = check_output_folder(out)
    from sentimodal.analysis.demo import DemoConfig, run_demo
    from sentimodal.config import load_config
    from sentimodal.interfaces.cli.tables import comparison_table

    config = load_config(DemoConfig, config_file, "demo config") if config_file else DemoConfig()
    result = run_demo(config, out, progress=not quiet)
    rows = [
        {"model": result.titles[name], **metrics[result.split]}
        for name, metrics in result.metrics.items()
    ]
    console.print(comparison_table(rows, f"{result.split} split ({rows[0]['n']} posts)"))
    say(
        "report: ",
        (str(result.report.html), "bold"),
        f" and {result.report.markdown.name} ({result.seconds:.0f} s in all)",
    )
