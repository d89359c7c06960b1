"""The text filters, the always-on local image check, and the bounded URL check (against a
local HTTP server, so the tests stay offline)."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentimodal.errors import RecordError
from sentimodal.net import FetchPolicy
from sentimodal.preparation.filters import (
    STUDY_FILTERS,
    EnglishFilter,
    ImageCheck,
    MinWordsFilter,
    SpellingFilter,
    build_filters,
    check_image_url,
    check_local_image,
    count_words,
    normalise_filters,
    parse_filter,
)
from sentimodal.sources.record import Post


def test_filter_specs() -> None:
    assert parse_filter("spelling") == ("spelling", 0.8)
    assert parse_filter(" Min-Words=5 ") == ("min-words", 5)
    assert parse_filter("image") == ("image-reachable", None)
    assert normalise_filters(["english", "spelling=0.7", "spelling=0.9"]) == [
        "english",
        "spelling=0.9",
    ]
    assert normalise_filters(STUDY_FILTERS) == [
        "min-words=10",
        "english",
        "spelling=0.8",
        "image-reachable",
    ]
    for bad, message in [
        ("french", "unknown filter"),
        ("spelling=high", "not a number"),
        ("spelling=1.5", r"\[0, 1\]"),
        ("english=1", "takes no value"),
        ("min-words=-1", ">= 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_filter(bad)


def test_build_orders_cheap_filters_first() -> None:
    text_filters, image_check = build_filters(["spelling=0.5", "english", "min-words=3"])
    assert [type(f).__name__ for f in text_filters] == [
        "MinWordsFilter",
        "EnglishFilter",
        "SpellingFilter",
    ]
    assert image_check.check_urls is False
    assert build_filters(["image-reachable"], url_timeout=2.0)[1] == ImageCheck(True, 2.0)


def test_min_words_counts_title_description_text_and_tags() -> None:
    post = Post(
        id="1", title="Blue sky", description="over the hills", tags=["summer", "Lake Tahoe"]
    )
    assert count_words(post.words_text()) == 8
    MinWordsFilter(8).check(post)
    with pytest.raises(RecordError, match="too few words: 8 < 9"):
        MinWordsFilter(9).check(post)
    assert count_words("-- ... !!") == 0


def test_english_detection_is_seeded_and_ignores_urls_and_mentions() -> None:
    english = Post(
        id="e", text="@someone What a wonderful morning at the beach with my family http://t.co/x"
    )
    spanish = Post(
        id="s", text="Te quiero mucho, mañana vamos a la playa con mis amigos y mi familia"
    )
    only_links = Post(id="l", text="@abc http://t.co/xyz")
    detector = EnglishFilter(seed=0)
    detector.check(english)
    with pytest.raises(RecordError, match="not English: detected 'es'"):
        detector.check(spanish)
    with pytest.raises(RecordError, match="no words"):
        detector.check(only_links)
    # A fresh filter with the same seed decides the same way on a short, ambiguous text.
    short = Post(id="x", text="ok fine")
    outcomes = set()
    for _ in range(3):
        try:
            EnglishFilter(seed=0).check(short)
            outcomes.add("en")
        except RecordError as exc:
            outcomes.add(str(exc))
    assert len(outcomes) == 1


def test_spelling_share_excludes_hashtags_mentions_urls() -> None:
    checker = SpellingFilter(threshold=0.8)
    clean = Post(id="c", text="@fooo The quick brown fox jumps #xyzzyqq http://t.co/zzqx")
    assert checker.known_share(clean) == pytest.approx(1.0)
    messy = Post(id="m", text="Thiss sentense hass manny erors in it")
    share = checker.known_share(messy)
    assert share is not None and share < 0.8
    with pytest.raises(RecordError, match=r"misspelled: 0\.\d\d of words known < 0.8"):
        checker.check(messy)
    with pytest.raises(RecordError, match="no alphabetic words"):
        checker.check(Post(id="n", text="#only #tags 1234"))
    SpellingFilter(threshold=0.25).check(messy)


def test_local_images_must_decode_to_the_end(tmp_path: Path, mvsa_root: Path) -> None:
    good = mvsa_root / "data" / "5.jpg"
    check_local_image(str(good))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(RecordError, match="image does not decode: .*truncated"):
        check_local_image(str(truncated))
    fake = tmp_path / "fake.jpg"
    fake.write_text("not an image at all")
    with pytest.raises(RecordError, match="not an image file"):
        check_local_image(str(fake))
    with pytest.raises(RecordError, match="image not found"):
        check_local_image(str(tmp_path / "absent.jpg"))
    # The image check skips posts without images and URLs unless asked to check URLs.
    ImageCheck().check(Post(id="1", text="text only"))
    ImageCheck().check(Post(id="2", image="http://127.0.0.1:9/none.jpg"))


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep the test output quiet
        pass


@pytest.fixture()
def image_server(tmp_path: Path, mvsa_root: Path) -> Iterator[str]:
    """A local HTTP server with one image and one HTML page."""
    shutil.copyfile(mvsa_root / "data" / "5.jpg", tmp_path / "photo.jpg")
    (tmp_path / "page.html").write_text("<html></html>")

    def handler(*args: object, **kwargs: object) -> _Handler:
        return _Handler(*args, directory=str(tmp_path), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_url_check(image_server: str) -> None:
    local = FetchPolicy(allow_private=True, timeout=2, deadline=4, retries=0)
    check_image_url(f"{image_server}/photo.jpg", policy=local)
    with pytest.raises(RecordError, match=r"image URL unreachable: .*\(HTTP 404\)"):
        check_image_url(f"{image_server}/missing.jpg", policy=local)
    with pytest.raises(RecordError, match="content type text/html"):
        check_image_url(f"{image_server}/page.html", policy=local)
    check = ImageCheck(check_urls=True, timeout=2, allow_private=True)
    check.check(Post(id="1", image=f"{image_server}/photo.jpg"))


def test_url_check_fails_fast_on_a_closed_port() -> None:
    with pytest.raises(RecordError, match="image URL unreachable"):
        local = FetchPolicy(allow_private=True, timeout=1, deadline=2, retries=0)
        check_image_url("http://127.0.0.1:9/photo.jpg", policy=local)
