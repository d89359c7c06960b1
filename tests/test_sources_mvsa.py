"""The MVSA-Single reader on real files, and on small crafted broken folders."""

from __future__ import annotations

import inspect
import itertools
import shutil
from pathlib import Path

import pytest

from sentimodal.errors import RecordError, UserInputError
from sentimodal.sources.mvsa import count_posts, decode_text, merge_labels, read_mvsa
from sentimodal.sources.record import Post, Reject


def make_mvsa(root: Path, rows: list[str], source: Path | None = None, ids: tuple = ()) -> Path:
    """A native-layout folder: the given label rows, plus real files copied for ``ids``."""
    (root / "data").mkdir(parents=True)
    (root / "labelResultAll.txt").write_text("ID\ttext,image\n" + "\n".join(rows) + "\n")
    for post_id in ids:
        for suffix in (".txt", ".jpg"):
            shutil.copyfile(
                source / "data" / f"{post_id}{suffix}", root / "data" / f"{post_id}{suffix}"
            )
    return root


@pytest.mark.parametrize(
    ("text_label", "image_label", "expected"),
    [
        ("positive", "positive", "positive"),
        ("negative", "negative", "negative"),
        ("neutral", "neutral", "neutral"),
        ("neutral", "positive", "positive"),
        ("positive", "neutral", "positive"),
        ("neutral", "negative", "negative"),
        ("negative", "neutral", "negative"),
    ],
)
def test_merge_rule(text_label: str, image_label: str, expected: str) -> None:
    assert merge_labels(text_label, image_label) == expected


@pytest.mark.parametrize(
    ("text_label", "image_label"), [("positive", "negative"), ("negative", "positive")]
)
def test_merge_rule_rejects_opposite_polarities(text_label: str, image_label: str) -> None:
    with pytest.raises(RecordError, match="conflicting labels"):
        merge_labels(text_label, image_label)


def test_reads_real_posts_lazily(mvsa_root: Path) -> None:
    records = read_mvsa(mvsa_root)
    assert inspect.isgenerator(records)
    first = list(itertools.islice(records, 40))
    posts = [r for r in first if isinstance(r, Post)]
    assert len(first) == 40 and len(posts) >= 30
    post = posts[0]
    assert post.id == "1" and post.text.startswith("How I feel today")
    assert (post.text_label, post.image_label, post.label) == ("neutral", "positive", "positive")
    assert Path(post.image).is_absolute() and Path(post.image).is_file()
    assert post.location.endswith("labelResultAll.txt:2")
    for reject in (r for r in first if isinstance(r, Reject)):
        assert reject.reason.startswith("conflicting labels")


@pytest.mark.parametrize("mode", ["text", "image"])
def test_single_annotation_modes_keep_conflicts(mvsa_root: Path, mode: str) -> None:
    records = list(itertools.islice(read_mvsa(mvsa_root, label_mode=mode), 60))
    assert all(isinstance(r, Post) for r in records)
    for post in records:
        assert post.label == (post.text_label if mode == "text" else post.image_label)


def test_non_utf8_text_is_redecoded_and_recorded(tmp_path: Path, mvsa_root: Path) -> None:
    root = make_mvsa(
        tmp_path / "m", ["342\tneutral,positive", "1\tneutral,positive"], mvsa_root, ("342", "1")
    )
    gb_post, utf8_post = list(read_mvsa(root))
    assert "mordiéndose" in gb_post.text and "mirándola" in gb_post.text
    assert gb_post.meta == {"encoding": "gb18030"}
    assert utf8_post.meta == {}


def test_decode_falls_back_to_detection() -> None:
    data = "Un café à Paris, très bien. Déjà vu, naïve façade.".encode("cp1252")
    text, encoding = decode_text(data, fallback_encodings=())
    assert encoding not in ("utf-8", "gb18030")
    assert text.startswith("Un caf") and "Paris" in text
    assert decode_text(b"plain ascii")[1] == "utf-8"


def test_bad_rows_become_rejects_with_reasons(tmp_path: Path, mvsa_root: Path) -> None:
    rows = [
        "1\tneutral,positive",  # fine
        "3\tgreat,positive",  # unknown label word
        "5\tpositive",  # malformed row
        "6\tpositive,positive",  # text file missing
        "7\tpositive,positive",  # image missing
        "8\tnegative,negative",  # empty text
        "9\tpositive,negative",  # conflicting
    ]
    root = make_mvsa(tmp_path / "m", rows, mvsa_root, ("1",))
    data = root / "data"
    shutil.copyfile(data / "1.jpg", data / "6.jpg")
    (data / "7.txt").write_text("no picture here")
    (data / "8.txt").write_bytes(b"  \n")
    shutil.copyfile(data / "1.jpg", data / "8.jpg")
    (data / "9.txt").write_text("mixed feelings")
    shutil.copyfile(data / "1.jpg", data / "9.jpg")

    records = list(read_mvsa(root))
    assert [type(r).__name__ for r in records] == ["Post"] + ["Reject"] * 6
    reasons = {r.id: r.reason for r in records if isinstance(r, Reject)}
    assert reasons["3"] == "unknown label word: 'great'"
    assert reasons["5"].startswith("malformed label row")
    assert reasons["6"].startswith("text file not found") and reasons["6"].endswith("6.txt")
    assert reasons["7"].startswith("image file not found") and reasons["7"].endswith("7.jpg")
    assert reasons["8"].startswith("empty text")
    assert reasons["9"] == "conflicting labels: text positive, image negative"
    assert all(":" in r.location and r.location.split(":")[-1].isdigit() for r in records)
    assert count_posts(root) == 7


def test_missing_folders_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="MVSA folder not found"):
        next(read_mvsa(tmp_path / "absent"))
    with pytest.raises(UserInputError, match="labelResultAll.txt"):
        next(read_mvsa(tmp_path))
    (tmp_path / "labelResultAll.txt").write_text("ID\ttext,image\n")
    with pytest.raises(UserInputError, match="no data/ folder"):
        next(read_mvsa(tmp_path))
    with pytest.raises(UserInputError, match="label mode"):
        next(read_mvsa(tmp_path, label_mode="both"))  # type: ignore[arg-type]
