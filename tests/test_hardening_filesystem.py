"""Reads stay inside the data, touch regular files only, and never hang on a FIFO; bad rows are
rejects, never a shifted column or a traceback."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from hardening import assert_user_error, invoke
from sentimodal.errors import RecordError, UserInputError
from sentimodal.features.images import load_image
from sentimodal.preparation.filters import check_local_image
from sentimodal.sample import sample_path
from sentimodal.sources.mvsa import read_mvsa
from sentimodal.sources.mvso import read_photo_xml
from sentimodal.sources.record import Post, Reject
from sentimodal.sources.table import read_table

SAMPLE = sample_path()


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A read that blocks (a FIFO opened for reading) fails the test instead of hanging it."""

    def stop(*_: object) -> None:
        raise TimeoutError("blocked for 20 s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def mvsa_copy(root: Path, rows: list[str], ids: tuple[str, ...] = ("16", "17")) -> Path:
    """An MVSA folder with the sample's files for ``ids`` and the given label rows."""
    (root / "data").mkdir(parents=True)
    for post_id in ids:
        for suffix in (".txt", ".jpg"):
            shutil.copy(SAMPLE / "data" / f"{post_id}{suffix}", root / "data")
    (root / "labelResultAll.txt").write_text("ID\ttext,image\n" + "".join(r + "\n" for r in rows))
    return root


def reasons(records: list[Post | Reject]) -> dict[str, str]:
    return {r.id: r.reason for r in records if isinstance(r, Reject)}


@pytest.mark.parametrize(
    "bad_id",
    ["../../secret/leak", "/etc/hostname", "..", ".hidden", "a/b", "x\x00y", "9" * 300, "a\\b"],
)
def test_mvsa_ids_are_plain_names(tmp_path: Path, bad_id: str) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    shutil.copy(SAMPLE / "data" / "16.txt", secret / "leak.txt")
    shutil.copy(SAMPLE / "data" / "16.jpg", secret / "leak.jpg")
    root = mvsa_copy(
        tmp_path / "m" / "n", [f"{bad_id}\tpositive,positive", "16\tpositive,positive"]
    )
    records = list(read_mvsa(root))
    assert [type(r) for r in records] == [Reject, Post]
    assert records[0].reason.startswith("bad id")


def test_mvsa_text_fifo_is_a_reject_not_a_hang(tmp_path: Path) -> None:
    root = mvsa_copy(tmp_path / "m", ["16\tpositive,positive", "17\tpositive,positive"])
    (root / "data" / "16.txt").unlink()
    os.mkfifo(root / "data" / "16.txt")
    records = list(read_mvsa(root))
    assert "FIFO" in reasons(records)["16"] and isinstance(records[1], Post)


def test_mvsa_text_directory_is_a_reject(tmp_path: Path) -> None:
    root = mvsa_copy(tmp_path / "m", ["16\tpositive,positive", "17\tpositive,positive"])
    (root / "data" / "16.txt").unlink()
    (root / "data" / "16.txt").mkdir()
    assert "a folder" in reasons(list(read_mvsa(root)))["16"]


def test_mvsa_image_fifo_is_a_reject(tmp_path: Path) -> None:
    root = mvsa_copy(tmp_path / "m", ["16\tpositive,positive"])
    (root / "data" / "16.jpg").unlink()
    os.mkfifo(root / "data" / "16.jpg")
    assert "FIFO" in reasons(list(read_mvsa(root)))["16"]


def test_mvsa_text_symlinked_to_dev_zero_is_a_reject(tmp_path: Path) -> None:
    root = mvsa_copy(tmp_path / "m", ["16\tpositive,positive"])
    (root / "data" / "16.txt").unlink()
    os.symlink("/dev/zero", root / "data" / "16.txt")
    assert "leaves the dataset folder" in reasons(list(read_mvsa(root)))["16"]  # never read


def test_table_image_fifo_is_a_reject_in_prepare(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")
    shutil.copy(SAMPLE / "data" / "16.jpg", tmp_path / "ok.jpg")
    table = tmp_path / "t.csv"
    table.write_text("id,text,image,label\n1,nice day,pipe.jpg,pos\n2,sad day,ok.jpg,neg\n")
    out = tmp_path / "d"
    args = ["prepare", "table", table, "--out", out, "--text-column", "text"]
    result = invoke(*args, "--image-column", "image", "--label-column", "label", "--quiet")
    result = result if result.exit_code else result
    assert result.exit_code == 0, result.output
    rejects = (out / "rejects.csv").read_text()
    assert "FIFO" in rejects and "pipe.jpg" in rejects


def lying_jpeg(path: Path) -> Path:
    """A real small photo whose header claims 12000x12000 pixels."""
    data = bytearray((SAMPLE / "data" / "16.jpg").read_bytes())
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            data[at + 5 : at + 9] = struct.pack(">HH", 12000, 12000)
            break
    path.write_bytes(bytes(data))
    return path


def test_jpeg_header_claiming_more_than_its_data_is_refused(tmp_path: Path) -> None:
    path = lying_jpeg(tmp_path / "big.jpg")
    with Image.open(path) as image:
        assert image.size == (12000, 12000)
    with pytest.raises(RecordError, match="claims 12000x12000"):
        check_local_image(str(path))
    with pytest.raises(RecordError, match="claims 12000x12000"):
        load_image(path, draft=224)
    check_local_image(str(SAMPLE / "data" / "16.jpg"))  # the honest file passes


def test_ragged_csv_rows_are_rejects_not_a_shift(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("id,text,label\na,good one,pos,EXTRA\nb,bad one,neg\nc,short\nd,fine,pos\n")
    records = list(read_table(table, text_columns=["text"], label_column="label", id_column="id"))
    assert [r.id for r in records if isinstance(r, Post)] == ["b", "d"]
    ragged = [r for r in records if isinstance(r, Reject)]
    assert [r.location.rsplit(" ", 1)[1] for r in ragged] == ["1", "3"]
    assert all(r.reason.startswith("ragged row") for r in ragged)


def test_jsonl_line_that_is_an_array_is_a_reject(tmp_path: Path) -> None:
    table = tmp_path / "t.jsonl"
    lines = [{"text": "good", "label": "pos"}, ["text", "label"], 7, "{broken", {"text": "x"}]
    table.write_text("\n".join(json.dumps(x) if x != "{broken" else x for x in lines) + "\n")
    records = list(read_table(table, text_columns=["text"]))
    assert [type(r) for r in records] == [Post, Reject, Reject, Reject, Post]
    assert "list, not an object" in records[1].reason


def test_misspelled_jsonl_column_is_an_error(tmp_path: Path) -> None:
    table = tmp_path / "t.jsonl"
    table.write_text('{"text": "good"}\n')
    with pytest.raises(UserInputError, match="column 'txet' not in"):
        list(read_table(table, text_columns=["txet"]))


@pytest.mark.parametrize(
    "content", [b"PAR1 this is no parquet", b"", "parquet"], ids=["junk", "empty", "truncated"]
)
def test_broken_parquet_is_a_user_error(tmp_path: Path, content: bytes | str) -> None:
    path = tmp_path / "t.parquet"
    if content == "parquet":
        buffer = io.BytesIO()
        pq.write_table(pa.table({"text": ["a"] * 100}), buffer)
        content = buffer.getvalue()[:-30]
    path.write_bytes(content)
    with pytest.raises(UserInputError, match="cannot read table"):
        list(read_table(path, text_columns=["text"]))


def test_latin1_csv_rows_are_rejects(tmp_path: Path) -> None:
    """A line that is not UTF-8 is that row's reject; the rows around it are read."""
    path = tmp_path / "t.csv"
    path.write_bytes("text\ncaf\xe9\nthe rest\n".encode("latin-1"))
    bad, good = list(read_table(path, text_columns=["text"]))
    assert isinstance(bad, Reject) and bad.reason.startswith("not UTF-8")
    assert isinstance(good, Post) and good.text == "the rest"


def test_binary_and_struct_parquet_cells(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    table = pa.table(
        {
            "raw": pa.array([b"hello there", b"\xff\xfe\x00", b"x"], pa.binary()),
            "nested": pa.array([{"a": 1}, {"a": 2}, None], pa.struct([("a", pa.int64())])),
        }
    )
    pq.write_table(table, path)
    records = list(read_table(path, text_columns=["raw"]))
    assert isinstance(records[0], Post) and records[0].text == "hello there"
    assert isinstance(records[1], Reject) and "not UTF-8" in records[1].reason
    nested = list(read_table(path, text_columns=["nested"]))
    assert isinstance(nested[0], Reject) and "dict cell" in nested[0].reason


def test_bom_in_csv_header_and_mvsa_label_file(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_bytes("\ufeffid,text\nx,hello\n".encode())
    assert [r.id for r in read_table(table, text_columns=["text"], id_column="id")] == ["x"]
    root = mvsa_copy(tmp_path / "m", [])
    (root / "labelResultAll.txt").write_bytes(
        "\ufeff16\tpositive,positive\n17\tpositive,positive\n".encode()
    )
    assert [type(r) for r in read_mvsa(root)] == [Post, Post]


def test_prepare_out_is_a_file_or_empty(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    args = ["prepare", "mvsa", SAMPLE, "--quiet", "--out"]
    assert_user_error(invoke(*args, tmp_path / "file"), "not a folder")
    assert_user_error(invoke(*args, ""), "empty")


def test_prepare_into_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root may write anywhere (CI runs as root): answer as the bits say
        real = os.access

        def access(path: object, mode: int, **kwargs: object) -> bool:
            if Path(str(path)) == folder and mode & os.W_OK:
                return False
            return real(path, mode, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "access", access)
    result = invoke("prepare", "mvsa", SAMPLE, "--quiet", "--out", folder / "d")
    assert_user_error(result, "permission denied")
    assert not (folder / "d").exists()


def test_mvso_photo_xml_fifo_and_huge_file_are_rejects(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "1.xml")
    fifo = read_photo_xml(tmp_path / "1.xml")
    assert isinstance(fifo, Reject) and "FIFO" in fifo.reason
    huge = tmp_path / "2.xml"
    huge.write_bytes(b"<rsp stat='ok'><photo id='2'><title>" + b"x" * (2 << 20) + b"</title>")
    reject = read_photo_xml(huge)
    assert isinstance(reject, Reject) and "larger than" in reject.reason
