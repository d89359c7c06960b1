"""Reads outside the data through symlinks (issue 25, item 6): a link that leaves the dataset
folder is a reject with its reason; one that stays inside is read as usual."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from sentimodal.sources.mvsa import read_mvsa
from sentimodal.sources.mvso import read_photo_xml
from sentimodal.sources.record import Post, Reject

PHOTO_XML = (
    "<rsp stat='ok'><photo id='7' farm='1' server='2' secret='ab'>"
    "<title>sunny</title><description>a day</description></photo></rsp>"
)


def _mvsa(root: Path, ids: list[str]) -> Path:
    (root / "data").mkdir(parents=True)
    rows = "".join(f"{i}\tpositive,positive\n" for i in ids)
    (root / "labelResultAll.txt").write_text("ID\ttext,image\n" + rows)
    for i in ids:
        Image.new("RGB", (4, 4)).save(root / "data" / f"{i}.jpg")
    return root


def test_mvsa_text_linked_outside_the_dataset_is_a_reject(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash")
    root = _mvsa(tmp_path / "mvsa", ["1", "2", "3"])
    os.symlink(secret, root / "data" / "1.txt")
    (root / "data" / "2.txt").write_text("a real tweet")
    os.symlink(root / "data" / "2.txt", root / "data" / "3.txt")  # stays inside: fine
    records = list(read_mvsa(root))
    assert isinstance(records[0], Reject), records[0]
    assert "leaves the dataset folder" in records[0].reason
    assert all("root:x" not in getattr(r, "text", "") for r in records)
    assert [r.text for r in records[1:] if isinstance(r, Post)] == ["a real tweet"] * 2


def test_mvsa_image_linked_outside_the_dataset_is_a_reject(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.jpg"
    Image.new("RGB", (4, 4)).save(outside)
    root = _mvsa(tmp_path / "mvsa", ["1"])
    (root / "data" / "1.jpg").unlink()
    os.symlink(outside, root / "data" / "1.jpg")
    (root / "data" / "1.txt").write_text("a tweet")
    (record,) = read_mvsa(root)
    assert isinstance(record, Reject) and "leaves the dataset folder" in record.reason


def test_mvso_xml_and_image_linked_outside_the_dataset_are_rejects(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.xml").write_text(PHOTO_XML)
    Image.new("RGB", (4, 4)).save(outside / "x.jpg")
    anp = tmp_path / "mvso" / "happy_dog"
    anp.mkdir(parents=True)
    os.symlink(outside / "x.xml", anp / "1.xml")
    linked_xml = read_photo_xml(anp / "1.xml")
    assert isinstance(linked_xml, Reject) and "leaves the dataset folder" in linked_xml.reason
    (anp / "2.xml").write_text(PHOTO_XML)
    os.symlink(outside / "x.jpg", anp / "2.jpg")
    linked_image = read_photo_xml(anp / "2.xml")
    assert isinstance(linked_image, Reject) and "leaves the dataset folder" in linked_image.reason
    (anp / "3.xml").write_text(PHOTO_XML)
    os.symlink(anp / "2.xml", anp / "4.xml")  # inside: read as usual
    assert isinstance(read_photo_xml(anp / "4.xml"), Post)
