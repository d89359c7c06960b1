"""The folder an analysis writes its results into, laid out the same way by every command:
``config.yaml`` (the settings that made the results), tables as CSV, data as JSON, any other
files, and the report (``report.md`` + ``report.html``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, overload

import pandas as pd

from sentimodal.analysis.report import Report, ReportPaths
from sentimodal.config import Config
from sentimodal.files import write_atomic

CONFIG_FILE = "config.yaml"


@overload
def write_results_folder(
    out: Path,
    *,
    config: Config | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    data: Mapping[str, Any] | None = None,
    files: Mapping[str, str | bytes] | None = None,
    report: Report,
) -> ReportPaths: ...


@overload
def write_results_folder(
    out: Path,
    *,
    config: Config | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    data: Mapping[str, Any] | None = None,
    files: Mapping[str, str | bytes] | None = None,
    report: None = None,
) -> None: ...


def write_results_folder(
    out: Path,
    *,
    config: Config | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    data: Mapping[str, Any] | None = None,
    files: Mapping[str, str | bytes] | None = None,
    report: Report | None = None,
) -> ReportPaths | None:
    """Write what is given into ``out`` (created if needed); with a report, its paths.

    ``tables`` and ``data`` map file names to a DataFrame (CSV, no index) and to plain data
    (indented JSON); ``files`` to the text (UTF-8) or bytes of any other file.
    """
    out.mkdir(parents=True, exist_ok=True)
    if config is not None:
        config.save(out / CONFIG_FILE)
    for name, frame in (tables or {}).items():
        frame.to_csv(out / name, index=False)
    for name, payload in (data or {}).items():
        write_atomic(out / name, json.dumps(payload, indent=2) + "\n")
    for name, content in (files or {}).items():
        write_atomic(out / name, content)
    return report.write(out) if report is not None else None
