"""What to download: the URL rows of a table (CSV / TSV / JSONL / Parquet) or of a prepared
dataset, as one DataFrame with the columns the output dataset is built from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sentimodal.download.config import DownloadConfig
from sentimodal.errors import UserInputError
from sentimodal.net import is_url
from sentimodal.preparation.dataset import INFO_FILE, PreparedDataset
from sentimodal.sources.table import cell_text, table_format


@dataclass
class Source:
    """The input: its rows, and the prepared dataset when it is one (None for a table)."""

    path: Path
    frame: pd.DataFrame
    dataset: PreparedDataset | None
    #: the column holding image references
    image_column: str

    def urls(self) -> list[tuple[int, str, str]]:
        """(row, id, url) for every row whose image cell is an http(s) URL."""
        ids = self.ids()
        out = []
        for row, value in enumerate(self.frame[self.image_column].tolist()):
            cell = cell_text(value).strip()
            if is_url(cell):
                out.append((row, ids[row], cell))
        return out

    def ids(self) -> list[str]:
        if self.dataset is not None:
            return self.frame["id"].astype(str).tolist()
        return self.frame["__id__"].tolist()


def open_source(path: str | Path, config: DownloadConfig) -> Source:
    path = Path(path)
    if path.is_dir():
        if not (path / INFO_FILE).is_file():
            raise UserInputError(f"{path} is a folder but not a prepared dataset (no {INFO_FILE})")
        dataset = PreparedDataset.load(path)
        return Source(path, dataset.examples.reset_index(drop=True), dataset, "image")
    if not path.is_file():
        raise UserInputError(f"input not found: {path}")
    frame = _read_table(path)
    wanted = [config.image_column, config.id_column, config.label_column, *config.text_columns]
    missing = [c for c in wanted if c is not None and c not in frame.columns]
    if missing:
        present = ", ".join(map(str, frame.columns))
        raise UserInputError(f"column {missing[0]!r} not in {path} (columns: {present})")
    if config.id_column:
        ids = [cell_text(v).strip() for v in frame[config.id_column].tolist()]
        seen: set[str] = set()
        for number, value in enumerate(ids, start=1):
            if not value or value in seen:
                problem = "empty" if not value else f"duplicate id {value!r}"
                raise UserInputError(
                    f"{path} row {number}: {problem} in column {config.id_column!r}"
                )
            seen.add(value)
    else:
        ids = [str(n) for n in range(1, len(frame) + 1)]  # like `prepare table`: row numbers
    frame = frame.assign(__id__=ids)
    return Source(path, frame, None, config.image_column)


def _read_table(path: Path) -> pd.DataFrame:
    fmt = table_format(path)
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        if fmt == "jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        sep = "\t" if fmt == "tsv" else ","
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserInputError(f"table {path} is not UTF-8 ({exc.reason})") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        message = " ".join(str(exc).split())
        raise UserInputError(f"cannot read table {path}: {message}") from None
