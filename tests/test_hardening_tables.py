"""One reader for tables: `predict --input` and `prepare table` make the same decision about
every row (issue 25, item 5). A bad row is that row's error (predict) or reject (prepare), and
the rows after it are read."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tests.hardening import invoke

from sentimodal.inference.stream import REJECT, Columns, read_chunks
from sentimodal.sources.record import Post, Reject
from sentimodal.sources.table import read_table
from sentimodal.sources.table_rows import TableLimits
from sentimodal.training.estimator import SentimentModel


def predicted(path: Path, limits: TableLimits | None = None) -> list[dict]:
    """What `predict --input` reads from ``path``: one record per row."""
    return [r for chunk in read_chunks(path, Columns(), 3, limits) for r in chunk]


def prepared(path: Path, limits: TableLimits | None = None) -> list[Post | Reject]:
    return list(read_table(path, text_columns=["text"], id_column="id", limits=limits))


def decisions(path: Path, limits: TableLimits | None = None) -> tuple[list, list]:
    """(predict's, prepare's) decision per row: the reason it was refused, or its text."""
    ours = [r.get(REJECT) or ("text", r.get("text", "")) for r in predicted(path, limits)]
    theirs = [
        r.reason if isinstance(r, Reject) else ("text", r.text) for r in prepared(path, limits)
    ]
    return ours, theirs


def test_csv_rows_with_too_many_or_too_few_fields_are_row_errors_in_both(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,text,x\na,good,1\nb,five,fields,in,here\nc,short\nd,fine,2\n")
    ours, theirs = decisions(path)
    assert ours == theirs
    assert ours[0] == ("text", "good") and ours[3] == ("text", "fine")
    assert ours[1] == "ragged row: 5 fields, the header has 3"
    assert ours[2] == "ragged row: 2 fields, the header has 3"


def test_deeply_nested_jsonl_line_is_a_row_error(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    deep = '{"id": "d", "text": ' + "[" * 5000 + "]" * 5000 + "}"
    medium = '{"id": "m", "text": "x", "extra": ' + "[" * 40 + "]" * 40 + "}"
    path.write_text(
        f'{{"id": "a", "text": "ok"}}\n{deep}\n{medium}\n{{"id": "z", "text": "end"}}\n'
    )
    ours, theirs = decisions(path)
    assert ours == theirs
    assert ours[1] == ours[2] == "JSON nested deeper than 32 levels"
    assert ours[0] == ("text", "ok") and ours[3] == ("text", "end")
    assert decisions(path, TableLimits(max_depth=64))[0][2] == ("text", "x")


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_lone_surrogate_text_is_a_row_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"t{suffix}"
    if suffix == ".jsonl":
        path.write_text('{"id": "a", "text": "\\ud800x"}\n{"id": "\\udfff", "text": "fine"}\n')
    else:  # Parquet cannot hold one; the same text arrives as invalid UTF-8 bytes
        pd.DataFrame({"id": ["a", "b"], "text": [b"\xed\xa0\x80x", b"fine"]}).to_parquet(path)
    ours, theirs = decisions(path)
    assert ours == theirs
    assert ("not valid Unicode" in ours[0]) or ("not UTF-8" in ours[0])
    if suffix == ".jsonl":
        assert "column 'id': text that is not valid Unicode" in ours[1]
        assert predicted(path)[1].get("id") is None  # the error row takes the row's number


def test_objects_lists_and_numbers_as_ids_and_texts(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    rows = [
        {"id": {"a": 1}, "text": "x"},
        {"id": "b", "text": ["a", "list"]},
        {"id": 12, "text": "number id"},
        {"id": 12.0, "text": 3.5},
        {"id": True, "text": "bool id"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ours, theirs = decisions(path)
    assert ours == theirs
    assert ours[0] == "column 'id': a dict cell where text was expected"
    assert ours[1] == "column 'text': a list cell where text was expected"
    assert [r["id"] for r in predicted(path)[2:]] == ["12", "12", "true"]
    assert [r.id for r in prepared(path)[2:]] == ["12", "12", "true"]
    assert ours[3] == ("text", "3.5")


def test_a_row_over_the_size_cap_is_a_row_error_and_the_next_is_read(tmp_path: Path) -> None:
    for suffix in (".csv", ".jsonl"):
        path = tmp_path / f"t{suffix}"
        big = "x" * 5000
        if suffix == ".csv":
            path.write_text(f'id,text\na,"{big}"\nb,"multi\nline"\nc,after\n')
        else:
            lines = [
                {"id": "a", "text": big},
                {"id": "b", "text": "multi"},
                {"id": "c", "text": "after"},
            ]
            path.write_text("".join(json.dumps(r) + "\n" for r in lines))
        ours, theirs = decisions(path, TableLimits(max_row_bytes=1000))
        assert ours == theirs, suffix
        assert ours[0] == "a row over 1,000 bytes", suffix
        assert ours[2] == ("text", "after"), suffix


def test_tsv_reads_the_same_in_both(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("id\ttext\na\tone\tthree\nb\ttwo\n")
    ours, theirs = decisions(path)
    assert ours == theirs == ["ragged row: 3 fields, the header has 2", ("text", "two")]


@pytest.fixture(scope="module")
def text_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model")
    words = ["lovely day", "great fun", "so happy", "awful mess", "sad news", "terrible pain"]
    frame = pd.DataFrame({"text": words * 12, "label": (["positive"] * 3 + ["negative"] * 3) * 12})
    model = SentimentModel(model="text", text_encoder="vader", train={"epochs": 5})
    model.fit(frame, work_dir=root / "work", progress=False)
    return model.save(root / "model")


def test_predict_writes_an_error_row_for_each_bad_row_and_goes_on(
    text_model: Path, tmp_path: Path
) -> None:
    """The reported cases end to end: a 5-field CSV row, a 5,000-deep JSON line, a lone
    surrogate; every other row is predicted, and the output is valid UTF-8."""
    cases = {
        "t.csv": "id,text,x\na,lovely day,1\nb,five,fields,in,here\nc,awful mess,2\n",
        "t.jsonl": (
            '{"id": "a", "text": "lovely day"}\n'
            '{"id": "b", "text": ' + "[" * 5000 + "]" * 5000 + "}\n"
            '{"id": "s", "text": "\\ud800x"}\n'
            '{"id": "c", "text": "awful mess"}\n'
        ),
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_text(content)
        out = tmp_path / f"{name}.out.jsonl"
        result = invoke("predict", text_model, "-i", path, "-o", out, "-q", "--workers", "0")
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert lines[0]["error"] is None and lines[-1]["error"] is None, lines
        assert all(line["error"] for line in lines[1:-1]), lines
