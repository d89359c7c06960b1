"""The table reader: CSV, TSV, JSON lines and Parquet with a column mapping, read in chunks."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pandas as pd
import pytest

from sentimodal.errors import UserInputError
from sentimodal.sources.record import Post, Reject
from sentimodal.sources.table import count_rows, read_table

ROWS = [
    {"pid": "a1", "head": "Great day", "body": "loved it", "img": "pics/a.jpg", "mood": "Positive"},
    {"pid": "a2", "head": "", "body": "awful", "img": "/abs/b.png", "mood": "neg"},
    {"pid": "a3", "head": "Meh", "body": "", "img": "https://example.org/c.jpg", "mood": "NEUTRAL"},
    {"pid": "a4", "head": "only text", "body": "", "img": "", "mood": "pos"},
    {"pid": "a5", "head": "", "body": "", "img": "", "mood": "positive"},
    {"pid": "a6", "head": "odd", "body": "", "img": "", "mood": "ecstatic"},
    {"pid": "a7", "head": "no label", "body": "", "img": "", "mood": ""},
]
MAPPING = {
    "text_columns": ["head", "body"],
    "image_column": "img",
    "label_column": "mood",
    "id_column": "pid",
}


def write_table(path: Path, rows: list[dict]) -> Path:
    frame = pd.DataFrame(rows)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_formats_give_the_same_posts(tmp_path: Path, suffix: str) -> None:
    path = write_table(tmp_path / f"posts{suffix}", ROWS)
    records = read_table(path, chunk_size=2, **MAPPING)
    assert inspect.isgenerator(records)
    records = list(records)
    assert [r.id for r in records] == [row["pid"] for row in ROWS]

    first, second, third, fourth = records[:4]
    assert isinstance(first, Post)
    assert first.text == "Great day\nloved it" and first.label == "positive"
    assert first.image == str(tmp_path / "pics" / "a.jpg")
    assert first.location == f"{path} row 1"
    assert (second.text, second.image, second.label) == ("awful", "/abs/b.png", "negative")
    assert (third.image, third.label) == ("https://example.org/c.jpg", "neutral")
    assert (fourth.image, fourth.label) == (None, "positive")

    # any other word is a label of its own: the table's label set is its column's values
    assert records[5].label == "ecstatic"
    reasons = {r.id: r.reason for r in records if isinstance(r, Reject)}
    assert reasons == {"a5": "no text and no image", "a7": "empty label: column 'mood'"}


def test_ids_default_to_row_numbers_and_columns_are_optional(tmp_path: Path) -> None:
    path = write_table(tmp_path / "t.csv", [{"t": "hello"}, {"t": "world"}])
    posts = list(read_table(path, text_columns=["t"]))
    assert [(p.id, p.text, p.image, p.label) for p in posts] == [
        ("1", "hello", None, None),
        ("2", "world", None, None),
    ]
    images_only = write_table(tmp_path / "i.jsonl", [{"id": 7, "u": "x.jpg"}])
    (post,) = read_table(images_only, image_column="u", id_column="id")
    assert (post.id, post.text, post.image) == ("7", "", str(tmp_path / "x.jpg"))


def test_parquet_row_count(tmp_path: Path) -> None:
    assert count_rows(write_table(tmp_path / "p.parquet", ROWS)) == len(ROWS)
    assert count_rows(write_table(tmp_path / "p.csv", ROWS)) is None


def test_broken_tables_are_user_errors(tmp_path: Path) -> None:
    csv_path = write_table(tmp_path / "t.csv", ROWS)
    with pytest.raises(UserInputError, match="column 'title' not in"):
        list(read_table(csv_path, text_columns=["title"]))
    parquet = write_table(tmp_path / "t.parquet", ROWS)
    with pytest.raises(UserInputError, match="column 'caption' not in"):
        list(read_table(parquet, image_column="caption"))
    with pytest.raises(UserInputError, match="table not found"):
        list(read_table(tmp_path / "absent.csv", text_columns=["head"]))
    with pytest.raises(UserInputError, match="unknown table format"):
        (tmp_path / "t.xlsx").write_bytes(b"")
        list(read_table(tmp_path / "t.xlsx", text_columns=["head"]))
    with pytest.raises(UserInputError, match="at least one"):
        list(read_table(csv_path))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("t\ncafé\nfine\n".encode("latin-1"))
    bad, good = list(read_table(latin, text_columns=["t"]))  # a bad line is that row's reject
    assert isinstance(bad, Reject) and bad.reason.startswith("not UTF-8")
    assert isinstance(good, Post) and good.text == "fine"
