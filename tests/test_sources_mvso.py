"""The MVSO reader on a Flickr-style XML corpus built here, with the real ANP score table."""

from __future__ import annotations

import glob
import inspect
import os
from pathlib import Path

import pytest
from PIL import Image

from sentimodal.errors import UserInputError
from sentimodal.sources.mvso import anp_key, load_anp_scores, read_mvso, read_photo_xml
from sentimodal.sources.record import Post, Reject


def photo_xml(
    photo_id: str,
    title: str = "",
    description: str = "",
    tags: tuple[tuple[str, str], ...] = (),
    secret: str = "abc123",
) -> str:
    tag_xml = "".join(
        f'<tag id="t{i}" raw="{raw}">{text}</tag>' for i, (raw, text) in enumerate(tags)
    )
    return (
        '<?xml version="1.0" encoding="utf-8" ?>\n'
        f'<rsp stat="ok"><photo id="{photo_id}" secret="{secret}" server="7" farm="8" '
        f'dateuploaded="1" isfavorite="0"><owner nsid="1@N0"/>'
        f"<title>{title}</title><description>{description}</description>"
        f"<tags>{tag_xml}</tags>"
        f'<urls><url type="photopage">https://www.flickr.com/photos/x/{photo_id}/</url></urls>'
        "</photo></rsp>\n"
    )


def build_corpus(root: Path) -> Path:
    """Three ANP folders (two in the real score table, one not) with good and broken files."""
    smile, sadness, unknown = (
        root / "nice_smile",
        root / "infinite_sadness",
        root / "zzz_not_an_anp",
    )
    for folder in (smile, sadness, unknown):
        folder.mkdir(parents=True)
    (smile / "101.xml").write_text(
        photo_xml(
            "101",
            "Sunny day",
            "A &lt;b&gt;lovely&lt;/b&gt; smile &amp; more",
            (("Happy Kid", "happykid"), ("smile", "smile")),
        )
    )
    (smile / "102.xml").write_text(photo_xml("102", "Local copy"))
    Image.new("RGB", (8, 8), "red").save(smile / "102.jpg")
    (smile / "notes.txt").write_text("not a photo record")
    (sadness / "201.xml").write_text(photo_xml("201", "Rainy", "so sad"))
    (sadness / "202.xml").write_text('<rsp stat="ok"><photo id="202"><title>cut off')
    (sadness / "203.xml").write_text('<rsp stat="fail"><err code="1" msg="Photo not found"/></rsp>')
    (sadness / "204.xml").write_text(photo_xml("204", "No secret", secret=""))
    (sadness / "205.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        '<rsp stat="ok"><photo id="205"><title>&b;</title></photo></rsp>'
    )
    (unknown / "301.xml").write_text(photo_xml("301", "Who knows"))
    return root


@pytest.fixture()
def anp_scores(shared_data: Path) -> dict[str, float]:
    return load_anp_scores(shared_data / "ontologies" / "mvso_english_anp_sentiment.csv")


def test_real_anp_table(anp_scores: dict[str, float]) -> None:
    assert len(anp_scores) == 4421
    assert anp_scores["nice_smile"] == pytest.approx(2.019)
    assert anp_scores["infinite_sadness"] == pytest.approx(-2.128)
    assert min(anp_scores.values()) == pytest.approx(-2.363)


def test_anp_table_problems(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="not found"):
        load_anp_scores(tmp_path / "absent.csv")
    table = tmp_path / "scores.csv"
    table.write_text("anp,score\nNice Smile,1.5\n")
    assert load_anp_scores(table) == {"nice_smile": 1.5}
    table.write_text("nice_smile,1.5\nbroken_row,high\n")
    with pytest.raises(UserInputError, match=r"scores.csv:2"):
        load_anp_scores(table)


def test_corpus_posts_and_rejects(tmp_path: Path, anp_scores: dict[str, float]) -> None:
    records = read_mvso(build_corpus(tmp_path / "mvso"), anp_scores)
    assert inspect.isgenerator(records)
    by_id = {r.id: r for r in records}
    assert set(by_id) == {"101", "102", "201", "202", "203", "204", "205", "301"}

    sunny = by_id["101"]
    assert isinstance(sunny, Post)
    assert sunny.title == "Sunny day" and sunny.description == "A lovely smile & more"
    assert sunny.tags == ["Happy Kid", "smile"]
    assert sunny.image == "https://farm8.staticflickr.com/7/101_abc123.jpg"
    assert (sunny.anp, sunny.anp_score) == ("nice_smile", pytest.approx(2.019))
    assert sunny.location.endswith(os.path.join("nice_smile", "101.xml"))

    local = by_id["102"]
    assert local.image == str(tmp_path / "mvso" / "nice_smile" / "102.jpg")
    assert by_id["201"].anp_score == pytest.approx(-2.128)

    reasons = {k: r.reason for k, r in by_id.items() if isinstance(r, Reject)}
    assert reasons["202"].startswith("malformed XML")
    assert reasons["203"] == "Flickr response not ok: stat='fail' (Photo not found)"
    assert reasons["204"] == "no image: no local file and the photo lacks secret"
    assert reasons["205"].startswith("unsafe XML refused")
    assert reasons["301"] == "ANP not in the score table: 'zzz_not_an_anp'"


def test_without_scores_posts_have_no_score(tmp_path: Path) -> None:
    posts = [r for r in read_mvso(build_corpus(tmp_path / "mvso")) if isinstance(r, Post)]
    assert {p.id for p in posts} == {"101", "102", "201", "301"}
    assert all(p.anp_score is None for p in posts)


def test_walk_never_lists_a_folder_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only os.scandir (lazy) may be used to walk photo folders."""
    root = build_corpus(tmp_path / "mvso")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("listed a whole folder")

    monkeypatch.setattr(os, "listdir", refuse)
    monkeypatch.setattr(glob, "glob", refuse)
    monkeypatch.setattr(Path, "iterdir", refuse)
    monkeypatch.setattr(Path, "glob", refuse)
    assert len(list(read_mvso(root))) == 8


def test_unreadable_and_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="MVSO folder not found"):
        next(read_mvso(tmp_path / "absent"))
    not_xml = tmp_path / "9.xml"
    not_xml.write_text("<html><body>rate limited</body></html>")
    reject = read_photo_xml(not_xml)
    assert (
        isinstance(reject, Reject) and reject.reason == "not a Flickr response: root element <html>"
    )


def test_anp_key_normalises_folder_names() -> None:
    assert anp_key("Nice Smile") == anp_key("nice-smile") == anp_key("nice_smile") == "nice_smile"
