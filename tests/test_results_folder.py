"""The one writer of a results folder: config, CSV tables, JSON data, other files, report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sentimodal.analysis.report import Report
from sentimodal.analysis.results_folder import CONFIG_FILE, write_results_folder
from sentimodal.config import Config


class _Settings(Config):
    name: str = "naïve"
    folds: int = 5


def test_every_part_lands_under_its_name(tmp_path: Path) -> None:
    out = tmp_path / "new" / "results"
    table = pd.DataFrame({"model": ["a", "b"], "accuracy": [0.5, 0.75]})
    report = Report("Results").add_table(table, caption="Scores")
    paths = write_results_folder(
        out,
        config=_Settings(),
        tables={"scores.csv": table},
        data={"scores.json": {"rows": table.to_dict("records"), "label": "naïve"}},
        files={"notes.md": "# Notes\n", "picture.png": b"\x89PNG"},
        report=report,
    )
    assert _Settings.load(out / CONFIG_FILE) == _Settings()
    pd.testing.assert_frame_equal(pd.read_csv(out / "scores.csv"), table)
    text = (out / "scores.json").read_text(encoding="utf-8")
    assert text.endswith("}\n") and "\\u00efve" in text  # indented, ASCII-escaped JSON
    assert json.loads(text)["rows"][1] == {"model": "b", "accuracy": 0.75}
    assert (out / "notes.md").read_text(encoding="utf-8") == "# Notes\n"
    assert (out / "picture.png").read_bytes() == b"\x89PNG"
    assert paths.markdown == out / "report.md" and paths.html.is_file()
    assert "Scores" in paths.markdown.read_text(encoding="utf-8")


def test_only_what_is_given_is_written(tmp_path: Path) -> None:
    assert write_results_folder(tmp_path / "out", config=_Settings()) is None
    assert [p.name for p in (tmp_path / "out").iterdir()] == [CONFIG_FILE]
