"""The command line: starts without torch, prints user strings as text, and turns every bad
option into one line with exit code 2."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hardening import assert_user_error, invoke
from sentimodal.errors import UserInputError
from sentimodal.preparation.pipeline import prepare
from sentimodal.sample import sample_path


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )


def test_the_cli_app_imports_without_torch() -> None:
    code = (
        "import sys\n"
        "from sentimodal.interfaces.cli import app\n"
        "names = ('torch', 'torchvision', 'sklearn', 'transformers')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("args", [["--help"], ["prepare", "--help"]])
def test_help_is_fast_and_light(args: list[str]) -> None:
    """Measured on the 2-core machine: 3.3 s and 1.1 GB before commands imported their heavy
    modules lazily, 0.6 s and 180 MB after (up to 2.6 s under load)."""
    code = (
        "import sys, time\n"
        "started = time.perf_counter()\n"
        "from sentimodal.interfaces.cli import app\n"
        f"sys.argv = ['sentimodal', *{args!r}]\n"
        "try:\n"
        "    app()\n"
        "except SystemExit:\n"
        "    pass\n"
        "status = open('/proc/self/status').read().split('VmRSS:')[1].split()[0]\n"
        "rss = int(status) / 1024  # ru_maxrss would carry the parent's peak across exec\n"
        "status = 'TORCH' if 'torch' in sys.modules else 'ok'\n"
        "print(status, time.perf_counter() - started, rss)\n"
    )
    result = run_python(code)
    status, seconds, megabytes = result.stdout.strip().splitlines()[-1].split()
    assert status == "ok"
    assert float(megabytes) < 400  # torch alone takes more
    assert float(seconds) < 5.0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("d") / "ds"
    prepare("mvsa", sample_path(), out, progress=False)
    return out


@pytest.mark.parametrize(
    ("flags", "needle"), [(["--perplexity", "-1"], "perplexity"), (["--threads", "0"], "threads")]
)
def test_visualize_bad_numbers(
    dataset: Path, tmp_path: Path, flags: list[str], needle: str
) -> None:
    result = invoke("visualize", tmp_path / "model", dataset, "--out", tmp_path / "v", *flags)
    assert_user_error(result, needle)


def test_zeroshot_anp_unknown_source(tmp_path: Path) -> None:
    scores = tmp_path / "anp.csv"
    scores.write_text("happy_dog,1.5\nsad_cat,-1\n")
    result = invoke(
        "zeroshot", "anp", "--anp-scores", scores, "--out", tmp_path / "z", "--sources", "bogus"
    )
    assert_user_error(result, "sources")


@pytest.mark.parametrize("encoding", ["rot13", "base64", "klingon"])
def test_prepare_encoding_that_is_not_a_text_encoding(tmp_path: Path, encoding: str) -> None:
    result = invoke(
        "prepare", "mvsa", sample_path(), "--out", tmp_path / "d", "--encoding", encoding
    )
    assert_user_error(result, "unknown text encoding")


def test_markup_in_an_out_name_is_printed_as_text(tmp_path: Path) -> None:
    out = tmp_path / "[/bold]out[red]"
    result = invoke("prepare", "mvsa", sample_path(), "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert "[/bold]out[red]" in result.output.replace("\n", "")


def test_markup_in_an_error_message_is_printed_as_text(tmp_path: Path) -> None:
    missing = tmp_path / "[/bold]"
    result = invoke("prepare", "mvsa", missing, "--out", tmp_path / "d")
    assert_user_error(result, "[/bold]")


@pytest.mark.parametrize("garbage", [b"not parquet at all", b""])
def test_features_on_a_garbage_examples_file(dataset: Path, tmp_path: Path, garbage: bytes) -> None:
    broken = Path(shutil.copytree(dataset, tmp_path / "d"))
    (broken / "examples.parquet").write_bytes(garbage)
    result = invoke("features", broken, "--image", "pixels32", "--text", "none")
    assert_user_error(result)


def test_prepare_with_every_row_rejected_writes_nothing(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("text,label\n,positive\n ,negative\n")  # no post has anything to read
    out = tmp_path / "d"
    result = invoke(
        "prepare", "table", table, "--out", out, "--text-column", "text",
        "--label-column", "label", "--quiet",
    )  # fmt: skip
    assert_user_error(result, "every one of the 2 records was rejected")
    assert not out.exists() or list(out.iterdir()) == []


def test_an_empty_split_says_so(tmp_path: Path) -> None:
    dataset = prepare("mvsa", sample_path(), tmp_path / "d", progress=False, split="0.5,0.5,0")
    with pytest.raises(UserInputError, match="'test' split of .* is empty"):
        dataset.split("test")


def test_help_through_the_entry_point_is_fast() -> None:
    """`sentimodal --help` through the installed entry point, as a user starts it."""
    entry = shutil.which("sentimodal") or str(Path(sys.executable).with_name("sentimodal"))
    if not Path(entry).exists():
        pytest.skip("no sentimodal entry point on this machine")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    started = time.perf_counter()
    result = subprocess.run([entry, "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0 and "prepare" in result.stdout
    assert time.perf_counter() - started < 5.0


@pytest.mark.parametrize(
    "command",
    [
        ["train", "DATA", "--out", ""],
        ["demo", "--out", ""],
        ["experiment", "study-fusion", "--data", "DATA", "--out", ""],
        ["crossval", "DATA", "--out", ""],
        ["visualize", "MODEL", "DATA", "--out", ""],
        ["zeroshot", "unseen", "DATA", "--out", ""],
        ["download", "DATA", "--out", ""],
        ["export", "MODEL", "--out", ""],
    ],
)
def test_an_empty_out_is_refused_not_the_current_folder(command: list[str], tmp_path: Path) -> None:
    args = [str(tmp_path) if a in ("DATA", "MODEL") else a for a in command]
    assert_user_error(invoke(*args), "output folder name is empty")


def test_no_command_writes_rich_markup_into_a_string() -> None:
    """The consoles print markup as text, so a ``[bold]`` in a message is shown literally."""
    cli = Path(__file__).parents[1] / "src" / "sentimodal" / "interfaces" / "cli"
    tag = re.compile(r"\[/?(bold|dim|italic|red|green|yellow|blue|cyan|magenta)?\]")
    hits = [
        f"{path.name}:{number}"
        for path in sorted(cli.glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "print(" in line and tag.search(line)
    ]
    assert hits == []


#: the commands that show progress bars: each takes -q/--quiet
PROGRESS_COMMANDS = (
    "crossval", "demo", "download", "experiment", "features", "predict", "prepare", "train",
    "zeroshot",
)  # fmt: skip


def test_every_command_with_a_progress_bar_takes_quiet_and_q() -> None:
    import typer.main

    from sentimodal.interfaces.cli import app

    group = typer.main.get_command(app)

    def flags(command) -> set[str]:
        names = set()
        for param in command.params:
            names.update(param.opts)
        for sub in getattr(command, "commands", {}).values():
            names.update(flags(sub))
        return names

    commands = group.commands  # type: ignore[attr-defined]
    assert set(PROGRESS_COMMANDS) <= set(commands)
    for name in PROGRESS_COMMANDS:
        assert {"-q", "--quiet"} <= flags(commands[name]), name


@pytest.mark.parametrize(("flag", "shown"), [("-q", False), ("--quiet", False), (None, True)])
def test_features_quiet_turns_the_progress_bars_off(
    dataset: Path, monkeypatch: pytest.MonkeyPatch, flag: str | None, shown: bool
) -> None:
    import sentimodal.features.store as store

    calls: list[bool] = []
    real = store.extract_features

    def spy(*args, **kwargs):
        calls.append(kwargs["progress"])
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "extract_features", spy)
    args = ["features", dataset, "--image", "pixels32", "--text", "none"]
    result = invoke(*args, *([flag] if flag else []))
    assert result.exit_code == 0, result.output
    assert calls == [shown]


def test_prepare_refuses_an_out_holding_other_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("months of work")
    line = assert_user_error(
        invoke("prepare", "mvsa", sample_path(), "--out", out, "--quiet"),
        "other files",
        "--overwrite",
    )
    assert "thesis.tex" in line
    assert (out / "thesis.tex").read_text() == "months of work"


def test_prepare_refuses_an_out_holding_another_inputs_dataset(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke("prepare", "mvsa", sample_path(), "--out", out, "--quiet").exit_code == 0
    assert invoke("prepare", "mvsa", sample_path(), "--out", out, "--quiet").exit_code == 0  # rerun
    other = tmp_path / "posts.csv"
    other.write_text("text,label\n" + "".join(f"post {i},{'ab'[i % 2]}\n" for i in range(40)))
    table = ["prepare", "table", other, "--out", out, "--text-column", "text",
             "--label-column", "label", "--quiet"]  # fmt: skip
    assert_user_error(invoke(*table), "a dataset prepared from", str(sample_path()))
    assert invoke(*table, "--overwrite").exit_code == 0


def test_bidi_controls_in_ids_and_labels_are_escaped_in_cli_tables() -> None:
    """U+202A..U+202E and U+2066..U+2069 in an id or label would reorder the printed line."""
    from rich.console import Console
    from rich.text import Text

    from sentimodal.interfaces.cli.tables import SafeTable, metrics_table

    controls = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    table = SafeTable(title="t\u202e")
    table.add_column("label\u2067")
    table.add_column("error")
    table.add_row("id\u202eevil", Text("error: \u2066x", "red"))
    label = "pos\u202eitive"
    metrics = {
        "labels": [label], "support": {label: 1}, "per_class": {label: 1.0},
        "per_class_f1": {label: 1.0}, "confusion": [[1]], "n": 1, "accuracy": 1.0,
        "macro_f1": 1.0, "weighted_f1": 1.0,
    }  # fmt: skip
    for printed in (table, metrics_table(metrics, "m")):
        console = Console(record=True, width=200)
        console.print(printed)
        text = console.export_text()
        assert not any(c in text for c in controls), text
        assert "\\u202e" in text
