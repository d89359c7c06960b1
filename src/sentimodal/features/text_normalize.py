"""Tweet-aware text normalisation, applied by the pretrained text encoders before tokenising.

Tweets carry things a sentence encoder trained on clean prose reads badly: URLs and @mentions
(long, unique, meaningless sub-word pieces), hashtags whose words are glued together
(``#sobeautiful``), emoji, HTML entities and mojibake. ``"tweet"`` turns them into words the
encoder knows; ``"none"`` leaves the text as it is. The choice is part of the encoder's
``config``, so it is recorded in the run config and the feature cache key, and a saved model
applies the same normalisation to the posts it predicts.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

from sentimodal.errors import UserInputError

TextNormalization = Literal["none", "tweet"]
TEXT_NORMALIZATIONS: tuple[str, ...] = ("none", "tweet")
#: what the pretrained text encoders apply unless told otherwise
DEFAULT_TEXT_NORMALIZATION: TextNormalization = "tweet"

URL_TOKEN = "http"
USER_TOKEN = "@user"

# a URL, also one cut short by the tweet's truncation ("http:/…", "htt…")
_URL = re.compile(r"(?:\bhttps?:\S*|\bhtt(?:p|ps)?…|\bwww\.\S+|\b\w+\.(?:com|org|net|ly)/\S*)")
_MENTION = re.compile(r"(?<![\w@])@\w+")
_HASHTAG = re.compile(r"(?<![\w#&])#(\w+)")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+|[^\W\d_]+")
# one character repeated four times or more: "sooooo", "!!!!!!", "??????"
_ELONGATED = re.compile(r"(.)\1{3,}")
_SPACES = re.compile(r"\s+")
_LONGEST_WORD = 20
# segmentation costs, set by eye on MVSA-Single's hashtags (see tests/test_text_normalize.py)
_MIN_COUNT = 100
_WORD_TOLL = 2.0
_UNKNOWN_PER_LETTER = 1.5


def check_normalization(name: str) -> TextNormalization:
    """``name`` if it is a known normalisation; a one-line UserInputError otherwise."""
    if name not in TEXT_NORMALIZATIONS:
        raise UserInputError(
            f"unknown text normalisation {name!r}; choose one of: {', '.join(TEXT_NORMALIZATIONS)}"
        )
    return name  # type: ignore[return-value]


def normalize_texts(texts: Sequence[str | None], how: str) -> list[str]:
    """Every text normalised by ``how`` (``"none"``: as given, None as "")."""
    check_normalization(how)
    if how == "none":
        return [text or "" for text in texts]
    return [normalize_tweet(text or "") for text in texts]


def normalize_tweet(text: str) -> str:
    """One tweet as plain words: entities and mojibake repaired, URLs and mentions as one
    placeholder each, hashtags split into words, emoji named, elongations cut to three."""
    import ftfy

    text = ftfy.fix_text(html.unescape(text), unescape_html=False)
    text = _URL.sub(f" {URL_TOKEN} ", text)
    text = _MENTION.sub(USER_TOKEN, text)
    # before hashtags, so that "#soooooo" is one word and not a row of "ooo" pieces
    text = _ELONGATED.sub(lambda match: match.group(1) * 3, text)
    text = _HASHTAG.sub(lambda match: " " + " ".join(split_hashtag(match.group(1))), text)
    text = _emoji_as_words(text)
    return _SPACES.sub(" ", text).strip()


def split_hashtag(tag: str) -> list[str]:
    """A hashtag's body as lower-case words: camel case where it has it (``SpeakUp``), else the
    most probable split by English word frequencies (``sobeautiful`` -> so beautiful)."""
    parts = _CAMEL.findall(tag) or [tag]
    words: list[str] = []
    for part in parts:
        if part.isascii() and part.isalpha() and part.islower() or len(parts) == 1:
            words.extend(segment(part.lower()))
        else:
            words.append(part.lower())
    return words


def segment(text: str) -> list[str]:
    """``text`` (one run of letters, no spaces) as the most probable sequence of English words.

    Viterbi over positions: a known word costs -log of its relative frequency in
    pyspellchecker's English word list plus a per-word toll (fewer, longer words win ties);
    an unknown stretch costs more than the rarest word and grows with its length, so an
    unknown word (``selfie``, ``urbex``) is kept whole rather than cut into rare pieces.
    """
    if not (text.isascii() and text.isalpha()) or len(text) <= 2:
        return [text]
    costs, unknown = _word_costs()
    best = [0.0] + [math.inf] * len(text)
    back = [0] * (len(text) + 1)
    for end in range(1, len(text) + 1):
        for start in range(max(0, end - _LONGEST_WORD), end):
            word = text[start:end]
            cost = best[start] + costs.get(word, unknown + _UNKNOWN_PER_LETTER * len(word))
            if cost < best[end]:
                best[end], back[end] = cost, start
    words: list[str] = []
    end = len(text)
    while end > 0:
        words.append(text[back[end] : end])
        end = back[end]
    return words[::-1]


@lru_cache(maxsize=1)
def _word_costs() -> tuple[dict[str, float], float]:
    """The cost of each usable English word, and the base cost of an unknown stretch (that
    of the rarest usable word)."""
    from spellchecker import SpellChecker

    counts = SpellChecker(language="en", distance=1).word_frequency.dictionary
    # the list's rarest entries ("sta", "haik") and one-letter words other than a and i are
    # mostly fragments that would cut unknown words into pieces
    usable = {
        word: count
        for word, count in counts.items()
        if count >= _MIN_COUNT
        and word.isascii()
        and word.isalpha()
        and (len(word) > 1 or word in ("a", "i"))
    }
    total = float(sum(usable.values()))
    costs = {word: _WORD_TOLL - math.log(count / total) for word, count in usable.items()}
    return costs, max(costs.values())


def _emoji_as_words(text: str) -> str:
    import emoji

    return emoji.replace_emoji(
        text, replace=lambda chars, data: " " + data["en"].strip(":").replace("_", " ") + " "
    )
