"""The prepared dataset directory every later stage reads: ``examples.parquet`` (one row per
kept post), ``rejects.csv`` (id, location, reason) and ``dataset.json`` (config, labels,
counts, provenance). See docs/ARCHITECTURE.md for the contract.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sentimodal.errors import UserInputError
from sentimodal.files import (
    check_regular,
    folder_lock,
    read_regular,
    write_atomic,
    write_json_atomic,
)
from sentimodal.preparation.label_set import LabelSpellings, sort_labels
from sentimodal.preparation.splits import (
    ALL_SPLIT,
    SPLIT_NAMES,
    assign_splits,
    parse_split,
    split_names,
)
from sentimodal.sources.record import Post, join_text
from sentimodal.sources.table import (
    cell_text,
    join_text_cells,
    resolve_image_reference,
)

EXAMPLES_FILE = "examples.parquet"
REJECTS_FILE = "rejects.csv"
INFO_FILE = "dataset.json"
REJECT_COLUMNS: tuple[str, ...] = ("id", "location", "reason")
#: the largest dataset.json read (real ones are a few KB)
INFO_LIMIT = 16 * 1024 * 1024

EXAMPLE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("title", pa.string()),
        ("description", pa.string()),
        ("text", pa.string()),
        ("tags", pa.string()),
        ("image", pa.string()),
        ("label", pa.string()),
        ("split", pa.string()),
        ("anp", pa.string()),
        ("anp_score", pa.float64()),
        ("text_label", pa.string()),
        ("image_label", pa.string()),
        ("location", pa.string()),
        # soft label: probabilities in the order of dataset.json's labels (null: none)
        ("label_distribution", pa.list_(pa.float64())),
    ]
)
EXAMPLE_COLUMNS: tuple[str, ...] = tuple(EXAMPLE_SCHEMA.names)
#: columns added after the first format: datasets written before them load with nulls
OPTIONAL_COLUMNS: tuple[str, ...] = ("label_distribution",)


def post_to_row(post: Post, split: str | None = None) -> dict[str, Any]:
    """One kept post as an ``examples.parquet`` row."""
    return {
        "id": post.id,
        "title": post.title,
        "description": post.description,
        "text": post.text,
        "tags": " ".join(post.tags),
        "image": post.image,
        "label": post.label,
        "split": split,
        "anp": post.anp,
        "anp_score": post.anp_score,
        "text_label": post.text_label,
        "image_label": post.image_label,
        "location": post.location,
        "label_distribution": None,
    }


def count_by_split(
    splits: Sequence[str], labels: Sequence[str | None], label_names: Sequence[str]
) -> dict[str, dict[str, int]]:
    """``{split: {label: n}}`` with every known label present (zeros included)."""
    counts: dict[str, dict[str, int]] = {}
    for split, label in zip(splits, labels, strict=True):
        per_label = counts.setdefault(split, dict.fromkeys(label_names, 0))
        if label is not None:  # unlabelled posts (data to predict) count in n_examples only
            per_label[label] = per_label.get(label, 0) + 1
    return counts


def manifest(root: Path) -> dict[str, dict[str, int]]:
    """What ``dataset.json`` records of the data files written with it (their sizes), so that
    a reader can tell a complete dataset from one whose files come from different runs."""
    return {name: {"bytes": (root / name).stat().st_size} for name in (EXAMPLES_FILE, REJECTS_FILE)}


def check_manifest(root: Path, info: dict[str, Any]) -> None:
    """Refuse a folder whose files are not the ones its ``dataset.json`` names."""
    files = info.get("files")
    if files is None:
        return  # written before datasets named their files
    for name, expected in files.items() if isinstance(files, dict) else ():
        path = root / name
        size = path.stat().st_size if path.is_file() else None
        if not isinstance(expected, dict) or size != expected.get("bytes"):
            raise UserInputError(
                f"incomplete dataset {root}: {name} is not the file {INFO_FILE} names "
                "(an interrupted or concurrent prepare?); run prepare again"
            )


_STRING_COLUMNS = ("id", "text", "label", "split")
_TEXT_TYPES = (pa.string(), pa.large_string(), pa.null())


def _label_list(labels: Any) -> bool:
    return isinstance(labels, list) and all(isinstance(x, str) for x in labels)


def image_or_none(value: Any) -> str | None:
    """An ``image`` cell as a path or URL, or None when the post has no image."""
    return cell_text(value).strip() or None


def _read_examples(path: Path) -> pd.DataFrame:
    try:
        examples = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        message = " ".join(str(exc).split())
        raise UserInputError(f"corrupted {path}: {message}") from None
    for column in OPTIONAL_COLUMNS:
        if column not in examples.columns:
            examples[column] = None
    return examples


class PreparedDataset:
    """A prepared dataset: its examples (a DataFrame with the contract's columns) and info.

    ``root`` is the directory it lives in (None for a dataset built in memory only).
    """

    def __init__(
        self, examples: pd.DataFrame | None, info: dict[str, Any], root: Path | None = None
    ):
        self._examples = examples  # None: read from root on first use
        self.info = info
        self.root = root

    @property
    def examples(self) -> pd.DataFrame:
        if self._examples is None:
            assert self.root is not None  # only load(lazy=True) leaves them unread
            check_manifest(self.root, self.info)  # still the files dataset.json names
            self._examples = _read_examples(self.root / EXAMPLES_FILE)
        return self._examples

    @examples.setter
    def examples(self, examples: pd.DataFrame) -> None:
        self._examples = examples

    @classmethod
    def load(cls, root: str | Path, *, lazy: bool = False) -> PreparedDataset:
        """Open a dataset directory written by ``sentimodal prepare`` (or ``save``); with
        ``lazy`` the examples are read on first use (a large dataset's examples take memory
        in proportion to its size, its info does not)."""
        root = Path(root)
        info_path, examples_path = root / INFO_FILE, root / EXAMPLES_FILE
        if not info_path.is_file() or not examples_path.is_file():
            raise UserInputError(
                f"not a prepared dataset: {root} (needs {EXAMPLES_FILE} and {INFO_FILE})"
            )
        try:
            info = json.loads(read_regular(info_path, INFO_LIMIT, error=UserInputError))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise UserInputError(f"corrupted {info_path}: {exc}") from None
        if not isinstance(info, dict) or not _label_list(info.get("labels")):
            raise UserInputError(f"corrupted {info_path}: no list of labels")
        check_manifest(root, info)
        check_regular(examples_path, error=UserInputError)
        try:
            schema = pq.read_schema(examples_path)
            required = [c for c in EXAMPLE_COLUMNS if c not in OPTIONAL_COLUMNS]
            missing = [c for c in required if c not in schema.names]
            if missing:
                raise UserInputError(f"not a prepared dataset: {root} (missing {missing})")
            wrong = [c for c in _STRING_COLUMNS if schema.field(c).type not in _TEXT_TYPES]
            if wrong:
                raise UserInputError(f"corrupted {examples_path}: column {wrong[0]!r} is not text")
        except (OSError, ValueError, pa.ArrowException) as exc:
            message = " ".join(str(exc).split())
            raise UserInputError(f"corrupted {examples_path}: {message}") from None
        return cls(None if lazy else _read_examples(examples_path), info, root)

    @property
    def labels(self) -> list[str]:
        return list(self.info["labels"])

    @property
    def splits(self) -> list[str]:
        """Split names in the order the counts list them (train, val, test, or all)."""
        return list(self.info.get("counts", {}))

    def split(self, name: str) -> pd.DataFrame:
        """The examples of one split, in file order."""
        if name not in set(self.examples["split"]):
            if name in self.splits:
                raise UserInputError(
                    f"the {name!r} split of {self.root or 'this dataset'} is empty"
                )
            known = ", ".join(self.splits) or "none"
            raise UserInputError(f"no split {name!r} in this dataset (splits: {known})")
        return self.examples[self.examples["split"] == name].reset_index(drop=True)

    def texts(self, df: pd.DataFrame | None = None) -> list[str]:
        """Each post's full text (title, description and text joined), as models read it."""
        df = self.examples if df is None else df
        columns = [df[c].fillna("").astype(str) for c in ("title", "description", "text")]
        return [join_text(*parts) for parts in zip(*columns, strict=True)]

    def rejects(self) -> pd.DataFrame:
        """The rejected records (empty when the dataset has none or lives in memory)."""
        path = None if self.root is None else self.root / REJECTS_FILE
        if path is None or not path.is_file():
            return pd.DataFrame(columns=list(REJECT_COLUMNS))
        return pd.read_csv(path, dtype=str, keep_default_na=False)

    def save(self, root: str | Path, rejects: pd.DataFrame | None = None) -> PreparedDataset:
        """Write the dataset directory (each file replaced atomically) and return it from there.

        ``rejects`` replaces the rejected records (by default: the ones this dataset has)."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        examples_path = root / EXAMPLES_FILE
        table = pa.Table.from_pandas(
            self.examples[list(EXAMPLE_COLUMNS)], schema=EXAMPLE_SCHEMA, preserve_index=False
        )
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        if rejects is None:
            rejects = self.rejects() if self.root is not None else pd.DataFrame()
        rejects = rejects.reindex(columns=list(REJECT_COLUMNS))
        with folder_lock(root):
            write_atomic(examples_path, buffer.getvalue().to_pybytes())
            write_atomic(root / REJECTS_FILE, rejects.to_csv(index=False))
            write_json_atomic(root / INFO_FILE, {**self.info, "files": manifest(root)})
        return PreparedDataset.load(root)

    @classmethod
    def from_examples(cls, examples: pd.DataFrame, root: str | Path) -> PreparedDataset:
        """Posts already in the contract's columns (a slice or an edited copy of a prepared
        dataset's examples) as a dataset of their own under ``root``, ids and splits kept."""
        return cls.from_dataframe(
            examples,
            text_columns=["text"],
            image_column="image",
            label_column="label",
            id_column="id",
            split_column="split",
            root=root,
        )

    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        *,
        text_columns: Sequence[str] = ("text",),
        image_column: str | None = None,
        label_column: str | None = "label",
        id_column: str | None = None,
        split_column: str | None = None,
        split: str | Sequence[float] | None = None,
        labels: Sequence[str] | None = None,
        seed: int = 0,
        base_dir: str | Path | None = None,
        root: str | Path | None = None,
    ) -> PreparedDataset:
        """A dataset from an in-memory table, for the fit/predict API.

        Text columns are joined into ``text``; image cells are URLs or paths (relative ones
        against ``base_dir``, default the working directory). Labels are the column's values as
        text (any label set; numbers by value, 1 and 1.0 and 01 one class "1", with a warning
        when spellings merge; sentiment spellings unified, see ``label_set.canonical_label``),
        in sorted order; without a label column they are null.
        Splits come from ``split_column``, else from ``split`` fractions (stratified, seeded),
        else everything is ``all``. Rows are taken as they are: no filters, no image checks
        (that is ``prepare``'s job). With ``root`` the dataset is also written there.
        """
        mapped = [*text_columns, image_column, label_column, id_column, split_column]
        missing = [c for c in mapped if c is not None and c not in df.columns]
        if missing:
            present = ", ".join(map(str, df.columns))
            raise UserInputError(f"column {missing[0]!r} not in the DataFrame (columns: {present})")
        n = len(df)
        ids = (
            [cell_text(v).strip() for v in df[id_column]] if id_column else list(map(str, range(n)))
        )
        if len(set(ids)) != n:
            raise UserInputError(f"duplicate ids in column {id_column!r}")
        columns = [df[c].tolist() for c in text_columns]
        texts = (
            [join_text_cells(values) for values in zip(*columns, strict=True)]
            if columns
            else [""] * n
        )
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        images = (
            [resolve_image_reference(v, base) for v in df[image_column].tolist()]
            if image_column
            else [None] * n
        )
        spellings = LabelSpellings()
        row_labels = (
            [spellings.add(v) or None for v in df[label_column].tolist()]
            if label_column
            else [None] * n
        )
        if warning := spellings.warning():
            warnings.warn(warning, UserWarning, stacklevel=2)
        label_names = sort_labels(labels if labels is not None else (x for x in row_labels if x))

        fractions = parse_split(split)
        if split_column:
            split_values = [cell_text(v).strip() or ALL_SPLIT for v in df[split_column].tolist()]
        else:
            strata = [label or "" for label in row_labels]
            split_values = assign_splits(ids, strata, fractions, seed).tolist()
        examples = pd.DataFrame(
            {
                "id": ids,
                "title": "",
                "description": "",
                "text": texts,
                "tags": "",
                "image": images,
                "label": row_labels,
                "split": split_values,
                "anp": None,
                "anp_score": float("nan"),
                "text_label": None,
                "image_label": None,
                "location": [f"DataFrame row {i}" for i in range(n)],
                "label_distribution": None,
            },
            columns=list(EXAMPLE_COLUMNS),
        )
        order = split_names(fractions) if not split_column else _split_order(split_values)
        counts = count_by_split(split_values, row_labels, label_names)
        info = {
            "config": {
                "source": "dataframe",
                "text_columns": list(text_columns),
                "image_column": image_column,
                "label_column": label_column,
                "id_column": id_column,
                "split_column": split_column,
                "split": fractions,
                "seed": seed,
            },
            "labels": label_names,
            "counts": {name: counts[name] for name in order if name in counts},
            "n_examples": n,
            "n_rejects": 0,
            "provenance": {
                "source": "dataframe",
                "reader": f"{cls.__module__}.{cls.__name__}.from_dataframe",
            },
        }
        dataset = cls(examples, info)
        return dataset.save(root) if root is not None else dataset


def _split_order(values: Sequence[str]) -> list[str]:
    """Split names present, the usual ones first in their usual order."""
    present = set(values)
    usual = [name for name in (*SPLIT_NAMES, ALL_SPLIT) if name in present]
    return usual + sorted(present - set(usual))


def as_dataset(data: PreparedDataset | str | Path) -> PreparedDataset:
    """A dataset given as itself or by its directory."""
    return data if isinstance(data, PreparedDataset) else PreparedDataset.load(data)
