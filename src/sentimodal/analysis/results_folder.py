"""The folder an analysis writes its results into, laid out the same way by every command:
``config.yaml`` (the settings that made the results), tables as CSV, data as JSON, any other
files, and the report (``report.md`` + ``report.html``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict, Unpack, overload

import pandas as pd

from sentimodal.analysis.report import Report, ReportPaths
from sentimodal.config import Config
from sentimodal.files import write_atomic

CONFIG_FILE = "config.yaml"


class ResultsParts(TypedDict, total=False):
    """What a results folder may hold besides its report, each part by file name."""

    #: written as ``config.yaml``
    config: Config
    #: DataFrames, written as CSV without the index
    tables: Mapping[str, pd.DataFrame]
    #: plain data, written as indented JSON
    data: Mapping[str, Any]
    #: the text (UTF-8) or bytes of any other file
    files: Mapping[str, str | bytes]


@overload
def write_results_folder(
    out: Path, *, report: Report, **parts: Unpack[ResultsParts]
) -> ReportPaths: ...


@overload
def write_results_folder(
    out: Path, *, report: None = None, **parts: Unpack[ResultsParts]
) -> None: ...


def write_results_folder(
    out: Path, *, report: Report | None = None, **parts: Unpack[ResultsParts]
) -> ReportPaths | None:
    """Write the parts given into ``out`` (created if needed); with a report, its paths."""
    out.mkdir(parents=True, exist_ok=True)
    if "config" in parts:
        parts["config"].save(out / CONFIG_FILE)
    for name, frame in parts.get("tables", {}).items():
        frame.to_csv(out / name, index=False)
    for name, payload in parts.get("data", {}).items():
        write_atomic(out / name, json.dumps(payload, indent=2) + "\n")
    for name, content in parts.get("files", {}).items():
        write_atomic(out / name, content)
    return report.write(out) if report is not None else None
