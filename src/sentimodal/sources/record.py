"""The one record type every source yields, and the reject that replaces a bad record."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sentimodal.errors import RecordError

POSITIVE, NEUTRAL, NEGATIVE = "positive", "neutral", "negative"
SENTIMENT_LABELS: tuple[str, ...] = (NEGATIVE, NEUTRAL, POSITIVE)

# Spellings of the three sentiment words that sources use in the wild.
LABEL_ALIASES: dict[str, str] = {
    "positive": POSITIVE,
    "pos": POSITIVE,
    "neutral": NEUTRAL,
    "neu": NEUTRAL,
    "negative": NEGATIVE,
    "neg": NEGATIVE,
}


def parse_label(word: str) -> str:
    """One source label word -> a sentiment label; anything else is a bad record, not a guess."""
    label = LABEL_ALIASES.get(word.strip().lower())
    if label is None:
        raise RecordError(f"unknown label word: {word.strip()!r}")
    return label


def join_text(*parts: str | None) -> str:
    """Non-empty text fields joined with periods: the one rule for a post's full text."""
    return ". ".join(p.strip() for p in parts if p and p.strip())


@dataclass
class Post:
    """One social-media post: text fields, an image reference, and whatever labels are known.

    ``image`` is a local path or an http(s) URL. ``label`` is the final label used for
    training; ``text_label`` / ``image_label`` are the source's per-modality annotations.
    ``location`` says where the record came from (file, row) for error messages.
    """

    id: str
    title: str = ""
    description: str = ""
    tags: list[str] = field(default_factory=list)
    text: str = ""
    image: str | None = None
    text_label: str | None = None
    image_label: str | None = None
    anp: str | None = None
    anp_score: float | None = None
    label: str | None = None
    location: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def full_text(self) -> str:
        """Title, description and post text joined with periods, as the study's text model reads."""
        return join_text(self.title, self.description, self.text)

    def words_text(self) -> str:
        """All words of the post, tags included: what the minimum-length filter counts."""
        return " ".join(filter(None, [self.full_text(), " ".join(self.tags)]))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Reject:
    """A record that was dropped, where it came from, and why."""

    id: str
    location: str
    reason: str


#: What every reader yields.
Record = Post | Reject
