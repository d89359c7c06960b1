"""``tokens``: the study's text-model input, token ids from a frequency-ranked vocabulary.

The text (title and description already joined with a period by the caller) is split by one
regular expression that keeps punctuation and emoji as tokens, because "!!" or ":(" carry
sentiment. Links carry none as text but their presence does, so URLs become ``<href>``, HTML
anchor tags ``<rel>`` and (optionally) @mentions ``<user>``. The vocabulary is learned by
``fit`` from the train texts only and saved as ``vocab.json``.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from sentimodal.errors import UserInputError
from sentimodal.features.text_encoders.base import TextEncoder
from sentimodal.features.text_encoders.registry import register_text_encoder
from sentimodal.files import read_regular

PAD, UNK = "<pad>", "<unk>"
HREF, REL, USER = "<href>", "<rel>", "<user>"
#: Ids 0.. in this order; the padding id must be 0 (models mask and pack with it).
RESERVED: tuple[str, ...] = (PAD, UNK, HREF, REL, USER)
PAD_ID, UNK_ID = 0, 1

VOCAB_FILE = "vocab.json"
#: the largest vocab.json read
MAX_VOCAB_BYTES = 64 * 1024 * 1024
VOCAB_FORMAT = "sentimodal-vocab"
VOCAB_VERSION = 1

# One alternation, tried left to right at each position: the special forms first, then
# numbers before words (so "3.5" stays whole), then any other single visible character
# (punctuation, symbols, emoji) as its own token.
_TOKEN_RE = re.compile(
    r"""
    (?P<anchor></?a\b[^>]*>)                     # <a href=... rel=...> and </a>
  | (?P<tag></?[a-z][a-z0-9]*\b[^>]*>)           # other HTML tags: formatting, dropped
  | (?P<url>(?:https?://|www\.)[^\s<>"']+)       # links
  | (?P<user>@\w+)                               # @mentions
  | (?P<ellipsis>\.{2,}|…)
  | (?P<number>\d+(?:[.,:/]\d+)+)                # 3.5  1,000  10:30  1/2
  | (?P<word>[^\W_]+(?:['’][^\W_]+)*)           # words, digits, don't, l'amour
  | (?P<symbol>[^\s\u200d\ufe0e\ufe0f])          # punctuation, emoji (joiners dropped)
    """,
    re.VERBOSE | re.IGNORECASE,
)
#: A URL's last characters that are sentence punctuation rather than part of the link.
_URL_TRAILING = ".,;:!?)]}"


def tokenize(text: str, *, lowercase: bool = True, map_users: bool = True) -> list[str]:
    """Split ``text`` into tokens (see the module docstring for the rules)."""
    return list(_iter_tokens(html.unescape(text or ""), lowercase, map_users))


def _iter_tokens(text: str, lowercase: bool, map_users: bool) -> Iterator[str]:
    for match in _TOKEN_RE.finditer(text):
        kind, value = match.lastgroup, match.group()
        if kind == "anchor":
            yield REL
        elif kind == "tag":
            continue
        elif kind == "url":
            trimmed = value.rstrip(_URL_TRAILING)
            yield HREF
            # Punctuation that ended the sentence after the link is still punctuation.
            yield from value[len(trimmed) :]
        elif kind == "user" and map_users:
            yield USER
        elif kind == "ellipsis":
            yield "..."
        else:
            yield value.lower() if lowercase else value


@register_text_encoder
class TokensEncoder(TextEncoder):
    """Token ids (int64, shape ``(max_len,)``), cut at ``max_len`` and post-padded with 0.

    Vocabulary: ids 0-4 are ``<pad> <unk> <href> <rel> <user>``, then the ``max_size`` most
    frequent train tokens seen at least ``min_count`` times, by decreasing count, ties broken
    alphabetically so that the same texts always give the same ids.
    """

    name = "tokens"
    dtype = "int64"

    def __init__(
        self,
        max_len: int = 101,
        max_size: int = 20000,
        min_count: int = 1,
        lowercase: bool = True,
        map_users: bool = True,
    ) -> None:
        if max_len < 1 or max_size < 0 or min_count < 1:
            raise UserInputError(
                f"tokens: need max_len >= 1, max_size >= 0, min_count >= 1 "
                f"(got {max_len}, {max_size}, {min_count})"
            )
        self.max_len = max_len
        self.max_size = max_size
        self.min_count = min_count
        self.lowercase = lowercase
        self.map_users = map_users
        self.shape = (max_len,)
        self.vocab_: dict[str, int] | None = None

    @property
    def config(self) -> dict[str, Any]:
        return {
            "max_len": self.max_len,
            "max_size": self.max_size,
            "min_count": self.min_count,
            "lowercase": self.lowercase,
            "map_users": self.map_users,
        }

    @property
    def learns(self) -> bool:
        return True

    @property
    def needs_fit(self) -> bool:
        return self.vocab_ is None

    @property
    def identity(self) -> str:
        """``vocab:<sha256[:16]>`` of the ordered token list (changes whenever an id would)."""
        tokens = json.dumps(self.vocabulary(), ensure_ascii=False).encode()
        return f"vocab:{hashlib.sha256(tokens).hexdigest()[:16]}"

    @property
    def vocab_size(self) -> int:
        """Number of ids (the embedding table size a model needs)."""
        return len(self._vocab())

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text, lowercase=self.lowercase, map_users=self.map_users)

    def fit(self, texts: Sequence[str]) -> Self:
        """Learn the vocabulary from ``texts`` (the train split) only."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(self.tokenize(text))
        kept = [(w, n) for w, n in counts.items() if n >= self.min_count and w not in RESERVED]
        kept.sort(key=lambda item: (-item[1], item[0]))
        words = [word for word, _ in kept[: self.max_size]]
        self.vocab_ = {token: i for i, token in enumerate([*RESERVED, *words])}
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N, max_len) int64 ids; unknown tokens -> 1, padding -> 0 at the end."""
        return self.encode_with_lengths(texts)[0]

    def encode_with_lengths(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Ids as :meth:`encode`, and int64 lengths = tokens kept after the cut (0 for an
        empty text). Since no token maps to id 0, ``lengths == (ids != 0).sum(1)``, so stored
        ids are enough to rebuild lengths (:func:`lengths_from_ids`)."""
        vocab = self._vocab()
        ids = np.zeros((len(texts), self.max_len), dtype=np.int64)
        lengths = np.zeros(len(texts), dtype=np.int64)
        for row, text in enumerate(texts):
            tokens = self.tokenize(text)[: self.max_len]
            ids[row, : len(tokens)] = [vocab.get(token, UNK_ID) for token in tokens]
            lengths[row] = len(tokens)
        return ids, lengths

    def save(self, directory: str | Path) -> None:
        """Write ``vocab.json``: the settings and the tokens in id order."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": VOCAB_FORMAT,
            "version": VOCAB_VERSION,
            "config": self.config,
            "tokens": self.vocabulary(),
        }
        (directory / VOCAB_FILE).write_text(
            json.dumps(payload, ensure_ascii=False, indent=0), encoding="utf-8"
        )

    def load(self, directory: str | Path) -> Self:
        """Read ``vocab.json``; refuse one written with different tokenisation settings, since
        its ids would not match what this encoder produces."""
        path = Path(directory) / VOCAB_FILE
        if not path.exists():
            raise UserInputError(f"no vocabulary at {path}")
        try:
            # a vocabulary is a few MB: a cap keeps a /dev/zero link from eating memory
            payload = json.loads(read_regular(path, MAX_VOCAB_BYTES, error=UserInputError))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise UserInputError(f"unreadable vocabulary {path}: {exc}") from None
        if not isinstance(payload, dict) or payload.get("format") != VOCAB_FORMAT:
            raise UserInputError(f"{path} is not a sentimodal vocabulary")
        if payload.get("version") != VOCAB_VERSION:
            raise UserInputError(f"{path}: unsupported vocabulary version {payload.get('version')}")
        tokens = payload.get("tokens")
        if not isinstance(tokens, list) or tuple(tokens[: len(RESERVED)]) != RESERVED:
            raise UserInputError(f"{path}: corrupted token list")
        saved = payload.get("config", {})
        for key in ("lowercase", "map_users"):
            if saved.get(key) != getattr(self, key):
                raise UserInputError(
                    f"{path} was built with {key}={saved.get(key)!r}, "
                    f"but this encoder has {key}={getattr(self, key)!r}"
                )
        self.max_size = saved.get("max_size", self.max_size)
        self.min_count = saved.get("min_count", self.min_count)
        self.vocab_ = {token: i for i, token in enumerate(tokens)}
        return self

    def _vocab(self) -> dict[str, int]:
        if self.vocab_ is None:
            raise RuntimeError(
                "tokens encoder has no vocabulary: call fit(train_texts) or load(dir)"
            )
        return self.vocab_

    def vocabulary(self) -> list[str]:
        vocab = self._vocab()
        return sorted(vocab, key=vocab.__getitem__)


def lengths_from_ids(ids: np.ndarray) -> np.ndarray:
    """Sequence lengths of stored, post-padded id arrays (pad id 0 never occurs inside)."""
    return (np.asarray(ids) != PAD_ID).sum(axis=-1).astype(np.int64)
