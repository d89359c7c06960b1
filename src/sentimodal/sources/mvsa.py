"""Reader for the native MVSA-Single layout: ``labelResultAll.txt`` + ``data/<ID>.jpg|.txt``.

The label file holds one annotator's text label and image label per post. The tweets were
saved in mixed encodings (most UTF-8, about a quarter GB18030), so text is decoded as UTF-8
first, else as the most plausible of the configured legacy encodings and the Latin ones
(:func:`decode_text`); every post that was not UTF-8 records the encoding used in
``Post.meta["encoding"]``. Ids must be plain names: they name files inside ``data/``.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from sentimodal.config import Config
from sentimodal.errors import RecordError, UserInputError
from sentimodal.files import check_inside, check_regular, read_regular
from sentimodal.sources.record import NEUTRAL, Post, Record, Reject, parse_label
from sentimodal.sources.source import Source, SourceReader

LABEL_FILE = "labelResultAll.txt"
DATA_DIR = "data"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: GB18030 decodes every non-UTF-8 tweet of MVSA-Single cleanly, where detection guesses
#: wrongly for most of these short, mostly-ASCII texts (cp775, big5, ...).
DEFAULT_FALLBACK_ENCODINGS: tuple[str, ...] = ("gb18030",)
#: always candidates after the configured encodings (latin-1 decodes any bytes)
LATIN_ENCODINGS: tuple[str, ...] = ("cp1252", "latin-1")
_SINGLE_BYTE = frozenset({"cp1252", "latin-1", "latin_1", "iso-8859-1", "iso8859-1"})
_LATIN_PUNCTUATION = frozenset("–—‘’‚“”„…«»•€£¡¿°·")
#: a decoding with more than this share of implausible characters is no decoding
MAX_IMPLAUSIBILITY = 0.5
#: an id names files in ``data/``: digits, letters, ``_``, ``-`` and inner dots, nothing more
PLAIN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")

#: a tweet is at most a few KB; a larger "text" is not one
MAX_TEXT_BYTES = 64 * 1024

LabelMode = Literal["merged", "text", "image"]
LABEL_MODES: tuple[str, ...] = ("merged", "text", "image")


def merge_labels(text_label: str, image_label: str) -> str:
    """The standard single label (Xu and Mao 2017): equal labels give that label, one neutral
    and one polar give the polar one, positive against negative is no usable label."""
    if text_label == image_label:
        return text_label
    if NEUTRAL in (text_label, image_label):
        return image_label if text_label == NEUTRAL else text_label
    raise RecordError(f"conflicting labels: text {text_label}, image {image_label}")


def decode_text(
    data: bytes, fallback_encodings: Sequence[str] = DEFAULT_FALLBACK_ENCODINGS
) -> tuple[str, str]:
    """Bytes -> (text, encoding used).

    UTF-8 first (a BOM dropped). Otherwise every configured encoding and the Latin ones
    (cp1252, then latin-1) that decode strictly are candidates, and the most plausible wins
    (:func:`implausibility`; ties go to the earlier one): Latin-1 bytes often decode as
    GB18030 too, as CJK characters that swallowed the ASCII letter after an accent.
    """
    try:
        return data.decode("utf-8").removeprefix("\ufeff"), "utf-8"
    except UnicodeDecodeError:
        pass
    best: tuple[float, int, str, str] | None = None
    for order, encoding in enumerate(dict.fromkeys((*fallback_encodings, *LATIN_ENCODINGS))):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        candidate = (implausibility(text, encoding), order, text, encoding)
        best = candidate if best is None else min(best, candidate)
    if best is None or best[0] > MAX_IMPLAUSIBILITY:
        raise RecordError("text is in no known encoding")
    return best[2], best[3]


def implausibility(text: str, encoding: str) -> float:
    """Share of the non-ASCII characters that look like a wrong decoding: control characters,
    and for multi-byte encodings a letter whose bytes include an ASCII one (an ideograph that
    swallowed the letter after a Latin-1 accent), for single-byte ones a character that is
    neither a letter nor common punctuation."""
    odd = total = 0
    for char in text:
        if char in "\n\r\t":
            continue
        if char.isascii() and char.isprintable():
            continue
        total += 1
        category = unicodedata.category(char)
        if category in ("Cc", "Cn", "Cs"):  # control, unassigned, surrogate
            odd += 1
        elif encoding in _SINGLE_BYTE:
            odd += not (category.startswith("L") or char in _LATIN_PUNCTUATION)
        else:
            odd += category.startswith("L") and any(b < 0x80 for b in char.encode(encoding))
    return odd / total if total else 0.0


def check_encodings(encodings: Sequence[str]) -> None:
    """Fail early, on one line, for an encoding name Python does not know."""
    for name in encodings:
        try:
            b"a".decode(name)  # a text encoding: rot13 or base64 are codecs, not encodings
        except LookupError:
            raise UserInputError(f"unknown text encoding {name!r}") from None
        except UnicodeError:
            pass  # a real encoding that needs more bytes (utf-32)


def count_posts(root: str | Path) -> int:
    """Number of rows in the label file (header excluded), for a progress bar's total."""
    with open(_label_file(Path(root)), "rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


def read_mvsa(
    root: str | Path,
    label_mode: LabelMode = "merged",
    fallback_encodings: Sequence[str] = DEFAULT_FALLBACK_ENCODINGS,
) -> Iterator[Record]:
    """Stream the posts of an MVSA-Single folder, one label-file row at a time.

    ``label_mode`` picks the final label: ``merged`` (the standard rule), or the ``text`` or
    ``image`` annotation alone. Bad rows (unknown label word, missing file, empty or undecodable
    text, conflicting labels in merged mode) come out as rejects naming the file and row.
    """
    if label_mode not in LABEL_MODES:
        raise UserInputError(
            f"unknown label mode {label_mode!r} (choose from {', '.join(LABEL_MODES)})"
        )
    check_encodings(fallback_encodings)
    root = Path(os.path.abspath(root))  # locations in rejects name absolute files
    label_file = _label_file(root)
    data_dir = root / DATA_DIR
    if not data_dir.is_dir():
        raise UserInputError(f"MVSA folder {root} has no {DATA_DIR}/ folder")
    # utf-8-sig: a BOM before the first row must not become part of its id (or the header's)
    with open(label_file, encoding="utf-8-sig", errors="replace") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line_number == 1 and line.lower().startswith("id"):
                continue  # the header row
            if not line.strip():
                continue
            location = f"{label_file}:{line_number}"
            post_id = line.split("\t", 1)[0].strip()
            try:
                yield _read_post(line, location, data_dir, label_mode, fallback_encodings)
            except RecordError as exc:
                yield Reject(id=post_id, location=location, reason=str(exc))


def _label_file(root: Path) -> Path:
    if not root.is_dir():
        raise UserInputError(f"MVSA folder not found: {root}")
    label_file = root / LABEL_FILE
    if not label_file.is_file():
        raise UserInputError(f"MVSA folder {root} has no {LABEL_FILE}")
    return label_file


def _read_post(
    line: str,
    location: str,
    data_dir: Path,
    label_mode: LabelMode,
    fallback_encodings: Sequence[str],
) -> Post:
    fields = line.rstrip("\r\n").split("\t")
    words = fields[1].split(",") if len(fields) == 2 else []
    if len(words) != 2 or not fields[0].strip():
        raise RecordError(f"malformed label row: {line.strip()!r} (expected ID<TAB>text,image)")
    post_id = check_plain_id(fields[0].strip())
    text_label, image_label = parse_label(words[0]), parse_label(words[1])

    text_path = data_dir / f"{post_id}.txt"
    try:
        check_inside(text_path, data_dir.parent)
        data = read_regular(text_path, MAX_TEXT_BYTES)
    except RecordError as exc:
        raise RecordError(f"text {exc}") from None
    text, encoding = decode_text(data, fallback_encodings)
    if not text.strip():
        raise RecordError(f"empty text: {text_path}")
    image_path = _find_image(data_dir, post_id)

    if label_mode == "merged":
        label = merge_labels(text_label, image_label)
    else:
        label = text_label if label_mode == "text" else image_label
    meta = {} if encoding == "utf-8" else {"encoding": encoding}
    return Post(
        id=post_id,
        text=text.strip(),
        image=image_path,
        text_label=text_label,
        image_label=image_label,
        label=label,
        location=location,
        meta=meta,
    )


def check_plain_id(post_id: str) -> str:
    """An id names files inside ``data/``: a plain name, never a path (``../x``, ``/etc/x``),
    a NUL byte or hundreds of characters; anything else is a bad record."""
    if not PLAIN_ID.fullmatch(post_id):
        shown = post_id if len(post_id) <= 40 else post_id[:40] + "..."
        raise RecordError(f"bad id {shown!r}: ids are plain names (letters, digits, _ - .)")
    return post_id


def _find_image(data_dir: Path, post_id: str) -> str:
    for suffix in IMAGE_SUFFIXES:
        candidate = data_dir / f"{post_id}{suffix}"
        if os.path.lexists(candidate):
            check_inside(candidate, data_dir.parent)
            check_regular(candidate)  # a FIFO or folder is a bad record, not a hang
            return os.path.abspath(candidate)
    raise RecordError(f"image file not found: {data_dir / (post_id + IMAGE_SUFFIXES[0])}")


class MvsaOptions(Config):
    """``prepare``'s settings of the MVSA reader."""

    #: which annotation becomes the label
    label_mode: LabelMode = "merged"
    #: the encodings tried after UTF-8
    text_encodings: list[str] = Field(default_factory=lambda: list(DEFAULT_FALLBACK_ENCODINGS))

    @field_validator("text_encodings")
    @classmethod
    def _known_encodings(cls, encodings: list[str]) -> list[str]:
        check_encodings(encodings)
        return encodings


def _open(options: MvsaOptions, root: Path) -> SourceReader:
    return SourceReader(
        read_mvsa(root, options.label_mode, options.text_encodings),
        count_posts(root),
        f"{__name__}.read_mvsa",
    )


SOURCE = Source(
    name="mvsa",
    options=MvsaOptions,
    open=_open,
    input="MVSA root folder",
    default_labels="source",
    # its labels are sentiment annotations, merged by the tool: 2 classes drop neutral
    sentiment_labels=True,
)
