"""Text encodings: UTF-8 first, then the most plausible of the legacy candidates; BOMs are not
part of the data; encodings that are not text encodings are refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sentimodal.errors import RecordError, UserInputError
from sentimodal.sources.mvsa import check_encodings, decode_text

LATIN_TEXTS = [
    "Zürich Straße schön grün",
    "Café crème brûlée à Noël, très été!",
    "¡Qué día más bonito! señor",
    "Un café à Paris, très bien. Déjà vu, naïve façade.",
]


@pytest.mark.parametrize("text", LATIN_TEXTS)
def test_latin1_text_is_not_decoded_as_gb18030(text: str) -> None:
    data = text.encode("latin-1")
    assert decode_text(data) == (text, "cp1252")


@pytest.mark.parametrize(
    "text",
    ["今天天气很好，我们去公园吧", "RT @x: “so happy” ＺｉＰＰＹ！", "mordiéndose mirándola"],
)
def test_gb18030_text_stays_gb18030(text: str) -> None:
    assert decode_text(text.encode("gb18030")) == (text, "gb18030")


def test_utf8_bom_is_dropped() -> None:
    assert decode_text("\ufeffhello".encode()) == ("hello", "utf-8")


def test_binary_junk_is_no_text() -> None:
    with pytest.raises(RecordError, match="no known encoding"):
        decode_text(bytes(range(0x80, 0xA0)) * 4)


@pytest.mark.parametrize("name", ["rot13", "base64", "hex", "zlib", "nope"])
def test_codecs_that_are_not_text_encodings_are_refused(name: str) -> None:
    with pytest.raises(UserInputError, match="unknown text encoding"):
        check_encodings([name])


def test_real_encodings_are_accepted() -> None:
    check_encodings(["gb18030", "utf-16", "utf-32", "latin-1", "cp1252", "big5"])


def test_every_non_utf8_mvsa_tweet_still_decodes_as_gb18030(mvsa_root: Path) -> None:
    """The real data: the scoring must not move a single GB18030 tweet to a Latin guess."""
    data_dir = mvsa_root / "data"
    decoded = 0
    for entry in os.scandir(data_dir):
        if not entry.name.endswith(".txt"):
            continue
        raw = Path(entry.path).read_bytes()
        try:
            raw.decode("utf-8")
            continue
        except UnicodeDecodeError:
            pass
        assert decode_text(raw)[1] == "gb18030", entry.name
        decoded += 1
    assert decoded > 900
