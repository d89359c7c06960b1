"""Filters that decide whether a post is usable: the study's text filters (English, spelling,
minimum length), and the image check every post with an image goes through.

A filter's ``check(post)`` returns nothing when the post passes and raises
:class:`~sentimodal.errors.RecordError` with the reject reason when it does not. Filters load
their resources (language profiles, dictionary) on first use, so building one is free.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from sentimodal.errors import RecordError
from sentimodal.files import check_regular
from sentimodal.net import FetchError, FetchPolicy, fetch
from sentimodal.sources.image_checks import check_jpeg_data
from sentimodal.sources.pixels import PixelBudget, check_header, decoding
from sentimodal.sources.record import Post

FILTER_NAMES: tuple[str, ...] = ("english", "spelling", "min-words", "image-reachable")
#: The study's filters, in the order they are cheapest to run (the image check runs last anyway).
STUDY_FILTERS: tuple[str, ...] = ("min-words=10", "english", "spelling=0.8", "image-reachable")
_DEFAULT_VALUES: dict[str, float | int] = {"spelling": 0.8, "min-words": 10}
_ALIASES = {"image": "image-reachable", "min_words": "min-words", "en": "english"}

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"@\w+")
_HASHTAG = re.compile(r"#\w+")
_ALPHA_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")
_WORD = re.compile(r"\w")


class PostFilter(Protocol):
    """What the pipeline calls: pass silently, or raise RecordError(reason)."""

    def check(self, post: Post) -> None: ...


def parse_filter(spec: str) -> tuple[str, float | int | None]:
    """``"spelling=0.8"`` -> ``("spelling", 0.8)``; a value-less spec takes the default value."""
    name, _, raw = spec.strip().partition("=")
    name = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if name not in FILTER_NAMES:
        raise ValueError(f"unknown filter {spec!r} (choose from {', '.join(FILTER_NAMES)})")
    raw = raw.strip()
    if name in ("english", "image-reachable"):
        if raw:
            raise ValueError(f"filter {name!r} takes no value, got {spec!r}")
        return name, None
    if not raw:
        return name, _DEFAULT_VALUES[name]
    try:
        value: float | int = float(raw) if name == "spelling" else int(raw)
    except ValueError:
        raise ValueError(f"filter {spec!r}: {raw!r} is not a number") from None
    if name == "spelling" and not 0.0 <= value <= 1.0:
        raise ValueError(f"filter {spec!r}: the spelling share must lie in [0, 1]")
    if name == "min-words" and value < 0:
        raise ValueError(f"filter {spec!r}: the word count must be >= 0")
    return name, value


def normalise_filters(specs: Iterable[str]) -> list[str]:
    """Canonical ``name[=value]`` specs, one per filter; a later spec overrides an earlier
    one's value (keeping its place)."""
    chosen: dict[str, float | int | None] = {}
    for spec in specs:
        name, value = parse_filter(spec)
        chosen[name] = value
    return [name if value is None else f"{name}={value}" for name, value in chosen.items()]


def build_filters(
    specs: Sequence[str],
    *,
    seed: int = 0,
    url_timeout: float = 5.0,
    allow_private_addresses: bool = False,
) -> tuple[list[PostFilter], ImageCheck]:
    """Text filters (cheapest first) and the image check, from canonical filter specs."""
    text_filters: dict[str, PostFilter] = {}
    check_urls = False
    for spec in specs:
        name, value = parse_filter(spec)
        if name == "min-words":
            text_filters[name] = MinWordsFilter(min_words=int(value or 0))
        elif name == "english":
            text_filters[name] = EnglishFilter(seed=seed)
        elif name == "spelling":
            text_filters[name] = SpellingFilter(threshold=float(value or 0.0))
        else:
            check_urls = True
    order = ("min-words", "english", "spelling")
    ordered = [text_filters[name] for name in order if name in text_filters]
    check = ImageCheck(check_urls, url_timeout, allow_private_addresses)
    return ordered, check


def _strip_social(text: str) -> str:
    """Text without URLs and mentions: they are not words of any language."""
    return _MENTION.sub(" ", _URL.sub(" ", text))


def count_words(text: str) -> int:
    """Whitespace-separated tokens holding at least one letter or digit."""
    return sum(1 for token in text.split() if _WORD.search(token))


@dataclass
class MinWordsFilter:
    """At least ``min_words`` words across title, description, text and tags."""

    min_words: int = 10

    def check(self, post: Post) -> None:
        n_words = count_words(post.words_text())
        if n_words < self.min_words:
            raise RecordError(f"too few words: {n_words} < {self.min_words}")


@dataclass
class EnglishFilter:
    """The post's words are English according to langdetect, seeded so reruns agree."""

    seed: int = 0

    def check(self, post: Post) -> None:
        from langdetect.lang_detect_exception import LangDetectException

        text = " ".join(_strip_social(post.words_text()).replace("#", " ").split())
        if not _ALPHA_WORD.search(text):
            raise RecordError("not English: no words to detect a language in")
        detector = _language_detectors(self.seed).create()
        detector.append(text)
        try:
            language = detector.detect()
        except LangDetectException:
            raise RecordError("not English: language undetectable") from None
        if language != "en":
            raise RecordError(f"not English: detected {language!r}")


@functools.cache
def _language_detectors(seed: int) -> Any:
    """A private, seeded langdetect factory (other code reseeding langdetect's global one
    cannot change our results); loading the profiles takes a second, so it is shared."""
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.seed = seed
    return factory


@dataclass
class SpellingFilter:
    """At least ``threshold`` of the alphabetic words are dictionary words (pyspellchecker).

    Hashtags, mentions and URLs are not counted: they are rarely dictionary words by design.
    """

    threshold: float = 0.8
    _checker: Any = field(default=None, init=False, repr=False)

    def known_share(self, post: Post) -> float | None:
        """Share of known words, or None when there is no alphabetic word at all."""
        text = _HASHTAG.sub(" ", _strip_social(post.words_text()))
        words = [w.lower() for w in _ALPHA_WORD.findall(text)]
        if not words:
            return None
        checker = self._spell_checker()
        return sum(1 for w in words if w in checker) / len(words)

    def check(self, post: Post) -> None:
        share = self.known_share(post)
        if share is None:
            raise RecordError("misspelled: no alphabetic words to check")
        if share < self.threshold:
            raise RecordError(f"misspelled: {share:.2f} of words known < {self.threshold}")

    def _spell_checker(self) -> Any:
        if self._checker is None:
            from spellchecker import SpellChecker

            self._checker = SpellChecker(language="en")
        return self._checker


def is_url(reference: str) -> bool:
    return reference.strip().lower().startswith(("http://", "https://"))


def check_local_image(path: str) -> None:
    """The file exists and its pixel data decodes to the end (truncated files fail here).

    For JPEGs the decoder runs in draft mode (DCT scaling): it still reads and entropy-decodes
    every byte, so truncation and corruption are caught, at a fraction of the cost.
    """
    if not os.path.exists(path):
        raise RecordError(f"image not found: {path}")
    try:
        check_regular(path)  # a FIFO would block the decoder, a device would never end
    except RecordError as exc:
        raise RecordError(f"image {exc}") from None
    try:
        with Image.open(path) as image:
            header = image.size
            check_jpeg_data(image, os.stat(path).st_size, path)
            image.draft("RGB", (1, 1))
            budget = PixelBudget()
            cost = check_header(budget, image.mode, header, image.size, path)
            with decoding(budget, cost, path):
                image.load()
    except FileNotFoundError:
        raise RecordError(f"image not found: {path}") from None
    except Image.UnidentifiedImageError:
        raise RecordError(f"image does not decode: {path} (not an image file)") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise RecordError(f"image does not decode: {path} ({exc})") from None


def check_image_url(url: str, timeout: float = 5.0, *, policy: FetchPolicy | None = None) -> None:
    """A bounded reachability check through the one fetcher (address rules, deadline): HEAD
    (or a one-byte ranged GET where HEAD is refused), an image content type, and not Flickr's
    "photo unavailable" stand-in. ``policy`` defaults to public addresses only, ``timeout``
    seconds per request and no retries."""
    policy = policy or FetchPolicy(timeout=timeout, deadline=2 * timeout, retries=0)
    try:
        try:
            response = fetch(url, policy, method="HEAD")
        except FetchError as exc:
            if exc.status not in (403, 405, 501):
                raise
            response = fetch(url, policy, headers={"Range": "bytes=0-0"})
    except FetchError as exc:
        raise RecordError(f"image URL unreachable: {url} ({exc})") from None
    if "photo_unavailable" in response.final_url:
        raise RecordError(f"image URL unreachable: {url} (photo unavailable)")
    content_type = response.content_type
    if content_type and not content_type.lower().startswith("image/"):
        raise RecordError(f"image URL unreachable: {url} (content type {content_type})")


@dataclass
class ImageCheck:
    """Local images must always exist and decode; URLs are checked only when asked
    (the ``image-reachable`` filter), since that costs a request per post."""

    check_urls: bool = False
    timeout: float = 5.0
    #: let URL checks reach loopback / private / link-local addresses
    allow_private: bool = False

    def check(self, post: Post) -> None:
        if post.image is None:
            return
        if is_url(post.image):
            if self.check_urls:
                policy = FetchPolicy(
                    timeout=self.timeout,
                    deadline=2 * self.timeout,
                    retries=0,
                    allow_private=self.allow_private,
                )
                check_image_url(post.image, policy=policy)
            return
        check_local_image(post.image)
