"""Reader for MVSO-style Flickr metadata: one folder per ANP, one ``flickr.photos.getInfo`` XML
response per photo, and optionally the photo itself beside its XML.

MVSO holds millions of photos, so folders are walked lazily with ``os.scandir`` (one entry at
a time, never a full listing), and each XML file is parsed on its own with defusedxml (the
files come from the web: no entity expansion, no external references), optionally in a pool
of processes that returns the records in the order the files were listed.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from pydantic import Field

from sentimodal.config import Config
from sentimodal.errors import RecordError, UserInputError
from sentimodal.files import check_inside, read_regular, read_user_text
from sentimodal.pool import default_workers, ordered_map
from sentimodal.sources.record import Post, Record, Reject
from sentimodal.sources.source import Source, SourceReader

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
FLICKR_IMAGE_URL = "https://farm{farm}.staticflickr.com/{server}/{id}_{secret}.jpg"
#: the largest ANP score table read (MVSO's English one is about 1 MB)
MAX_SCORES_BYTES = 256 * 1024 * 1024
#: the largest photo XML read (a getInfo response is a few KB)
MAX_XML_BYTES = 1024 * 1024
_HTML_TAG = re.compile(r"<[^>]+>")


def anp_key(name: str) -> str:
    """The form ANP names are compared in: lower case, words joined by underscores."""
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


def read_anp_rows(path: str | Path) -> list[tuple[str, float]]:
    """The ``(anp, score)`` rows of an ``anp,score`` CSV (no header, as MVSO ships it; a header
    row is skipped), checked: UTF-8 (a BOM dropped), finite scores, and an ANP listed twice
    only with the same score (otherwise which one wins would be an accident of order)."""
    path = Path(path)
    text = read_user_text(path, MAX_SCORES_BYTES, "ANP score table")
    rows: list[tuple[str, float]] = []
    first_row: dict[str, tuple[int, float]] = {}
    try:
        for row_number, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            if not row or not row[0].strip():
                continue
            try:
                if len(row) != 2:
                    raise ValueError
                anp, score = row[0].strip(), float(row[1])
            except ValueError:
                if row_number == 1:
                    continue  # a header row such as "anp,score"
                raise UserInputError(
                    f"{path}:{row_number}: expected 'anp,score', got {','.join(row)[:80]!r}"
                ) from None
            if not math.isfinite(score):
                raise UserInputError(f"{path}:{row_number}: score {row[1].strip()!r} is not finite")
            key = anp_key(anp)
            if key in first_row:
                earlier, value = first_row[key]
                if value != score:
                    raise UserInputError(
                        f"{path}:{row_number}: ANP {anp!r} is listed again with another score "
                        f"({score} here, {value} on row {earlier})"
                    )
                continue
            first_row[key] = (row_number, score)
            rows.append((anp, score))
    except csv.Error as exc:
        raise UserInputError(f"{path}: not a CSV file ({exc})") from None
    if not rows:
        raise UserInputError(f"ANP score table {path} holds no rows")
    return rows


def load_anp_scores(path: str | Path) -> dict[str, float]:
    """ANP key -> score, from an ``anp,score`` CSV (see :func:`read_anp_rows`)."""
    return {anp_key(anp): score for anp, score in read_anp_rows(path)}


def read_mvso(
    root: str | Path, anp_scores: Mapping[str, float] | None = None, workers: int = 1
) -> Iterator[Record]:
    """Stream one post per photo XML under ``root/<anp>/``.

    With ``anp_scores`` each post gets its folder's ANP score, and a folder whose ANP is not
    in the table turns its photos into rejects. The image is a local file beside the XML
    (same stem, .jpg/.jpeg/.png) when there is one, else the Flickr static URL. With
    ``workers`` > 1 the files are parsed in that many processes (this one walks the folders
    and collects); the records and their order are the same as with one.
    """
    root = Path(os.path.abspath(root))  # locations in rejects name absolute files
    if not root.is_dir():
        raise UserInputError(f"MVSO folder not found: {root}")
    yield from ordered_map(_read_photos, _photo_files(root, anp_scores), workers)


#: one photo file to read: its path, its folder's ANP, that ANP's score, and whether the
#: score table lacks the ANP
PhotoFile = tuple[str, str, float | None, bool]


def _photo_files(root: Path, anp_scores: Mapping[str, float] | None) -> Iterator[PhotoFile]:
    # ANP folders are few (thousands) and sorted for a stable order; photos are streamed.
    anp_dirs = sorted(entry.path for entry in os.scandir(root) if entry.is_dir())
    for anp_dir in anp_dirs:
        anp = anp_key(os.path.basename(anp_dir))
        score = None if anp_scores is None else anp_scores.get(anp)
        unknown = anp_scores is not None and score is None
        with os.scandir(anp_dir) as entries:
            for entry in entries:
                if entry.name.lower().endswith(".xml") and entry.is_file():
                    yield entry.path, anp, score, unknown


def _read_photos(files: list[PhotoFile]) -> list[Record]:
    """A chunk of photo files -> their records (what a parsing process runs)."""
    records: list[Record] = []
    for path, anp, score, unknown in files:
        if unknown:
            stem = os.path.splitext(os.path.basename(path))[0]
            reason = f"ANP not in the score table: {anp!r}"
            records.append(Reject(id=stem, location=path, reason=reason))
        else:
            records.append(read_photo_xml(path, anp=anp, anp_score=score))
    return records


def read_photo_xml(
    path: str | Path, anp: str | None = None, anp_score: float | None = None
) -> Record:
    """One ``flickr.photos.getInfo`` response file -> a post, or a reject saying what is wrong."""
    path = str(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    root = os.path.dirname(os.path.dirname(os.path.abspath(path)))  # holds the ANP folders
    try:
        check_inside(path, root)  # a linked XML or ANP folder that leaves the dataset
        photo = _photo_element(path)
        photo_id = (photo.get("id") or "").strip() or stem
        return Post(
            id=photo_id,
            title=_element_text(photo.find("title")),
            description=_element_text(photo.find("description")),
            tags=[_tag_text(tag) for tag in photo.iterfind("tags/tag") if _tag_text(tag)],
            image=_image_reference(path, photo, root),
            anp=anp,
            anp_score=anp_score,
            location=path,
        )
    except RecordError as exc:
        return Reject(id=stem, location=path, reason=str(exc))


def _photo_element(path: str) -> Element:
    data = read_regular(path, MAX_XML_BYTES)  # RecordError: not a regular file, or too large
    try:
        response = SafeET.fromstring(data)
    except ParseError as exc:
        raise RecordError(f"malformed XML: {exc}") from None
    except DefusedXmlException as exc:
        raise RecordError(f"unsafe XML refused: {exc}") from None
    if response.tag != "rsp":
        raise RecordError(f"not a Flickr response: root element <{response.tag}>")
    status = response.get("stat")
    if status != "ok":
        error = response.find("err")
        detail = f" ({error.get('msg')})" if error is not None and error.get("msg") else ""
        raise RecordError(f"Flickr response not ok: stat={status!r}{detail}")
    photo = response.find("photo")
    if photo is None:
        raise RecordError("Flickr response has no <photo>")
    return photo


def _image_reference(xml_path: str, photo: Element, root: str) -> str:
    stem = os.path.splitext(xml_path)[0]
    for suffix in IMAGE_SUFFIXES:
        if os.path.isfile(stem + suffix):
            check_inside(stem + suffix, root)
            return os.path.abspath(stem + suffix)
    parts = {key: (photo.get(key) or "").strip() for key in ("id", "farm", "server", "secret")}
    missing = [key for key, value in parts.items() if not value]
    if missing:
        raise RecordError(f"no image: no local file and the photo lacks {', '.join(missing)}")
    # The attributes are pasted into a URL: anything but the documented shapes could pick
    # another host or path (farm="1.evil.example/x"), so they must be what Flickr sends.
    for key, pattern in _FLICKR_PARTS.items():
        if not pattern.fullmatch(parts[key]):
            raise RecordError(f"invalid Flickr {key} {parts[key][:40]!r}: no image URL built")
    return FLICKR_IMAGE_URL.format(**parts)


#: photo id, farm and server are decimal numbers; the secret is hexadecimal
_FLICKR_PARTS = {
    "id": re.compile(r"[0-9]{1,20}"),
    "farm": re.compile(r"[0-9]{1,4}"),
    "server": re.compile(r"[0-9]{1,6}"),
    "secret": re.compile(r"[0-9a-fA-F]{1,32}"),
}


def _element_text(element: Element | None) -> str:
    """Flickr descriptions carry (escaped) HTML: keep the words, drop the markup."""
    if element is None or not element.text:
        return ""
    text = html.unescape(_HTML_TAG.sub(" ", element.text))
    return " ".join(text.split())


def _tag_text(tag: Element) -> str:
    """The tag as the user typed it (``raw``), else Flickr's normalised form."""
    return " ".join((tag.get("raw") or tag.text or "").split())


#: Plutchik's eight basic emotions, each with its three intensities (strong, basic, mild), as
#: the 24 columns of MVSO's ANP -> emotion table name them.
PLUTCHIK_BASIC: dict[str, tuple[str, str, str]] = {
    "joy": ("ecstasy", "joy", "serenity"),
    "trust": ("admiration", "trust", "acceptance"),
    "fear": ("terror", "fear", "apprehension"),
    "surprise": ("amazement", "surprise", "distraction"),
    "sadness": ("grief", "sadness", "pensiveness"),
    "disgust": ("loathing", "disgust", "boredom"),
    "anger": ("rage", "anger", "annoyance"),
    "anticipation": ("vigilance", "anticipation", "interest"),
}
PLUTCHIK_EMOTIONS: tuple[str, ...] = tuple(e for trio in PLUTCHIK_BASIC.values() for e in trio)


def load_anp_emotions(path: str | Path) -> dict[str, dict[str, float]]:
    """Read MVSO's ANP -> emotion table (header ``ANP,<24 Plutchik emotions>``): per ANP, its
    distribution over the 24 emotions, as the file gives it."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"ANP emotion table not found: {path}")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = [h.strip().lower() for h in next(reader, [])]
        missing = [e for e in PLUTCHIK_EMOTIONS if e not in header[1:]]
        if not header or missing:
            raise UserInputError(
                f"{path}: expected a header 'ANP,<the 24 Plutchik emotions>', missing {missing}"
            )
        table: dict[str, dict[str, float]] = {}
        for row_number, row in enumerate(reader, start=2):
            if not row or not row[0].strip():
                continue
            try:
                values = [float(v) for v in row[1:]]
                if len(values) != len(header) - 1 or not all(v >= 0 for v in values):
                    raise ValueError
            except ValueError:
                raise UserInputError(
                    f"{path}:{row_number}: expected an ANP and {len(header) - 1} non-negative "
                    f"numbers"
                ) from None
            table[anp_key(row[0])] = dict(zip(header[1:], values, strict=True))
    if not table:
        raise UserInputError(f"ANP emotion table {path} holds no rows")
    return table


class MvsoOptions(Config):
    """``prepare``'s settings of the MVSO reader, and of the MVSO tables labels come from."""

    #: the ANP -> sentiment score table (anp labels, and each post's ANP score)
    anp_scores: str | None = None
    #: the ANP -> 24 emotions table (anp-emotion labels)
    anp_emotions: str | None = None
    #: anp-emotion labels: Plutchik's 24 emotions, or the 8 basic ones (intensities summed)
    emotion_classes: Literal[8, 24] = 24
    #: processes parsing the XML files (None: this machine's cores, up to 8); results do not
    #: depend on it
    parse_workers: int | None = Field(default=None, ge=1)


def _open(options: MvsoOptions, root: Path) -> SourceReader:
    scores, provenance = None, {}
    if options.anp_scores:
        scores = load_anp_scores(options.anp_scores)
        digest = hashlib.sha256(Path(options.anp_scores).read_bytes()).hexdigest()
        provenance["anp_scores_sha256"] = digest
    workers = options.parse_workers or default_workers()
    records = read_mvso(root, scores, workers)
    return SourceReader(records, None, f"{__name__}.read_mvso", provenance)


def _check(options: MvsoOptions, labels: str) -> None:
    if labels == "source":
        raise UserInputError("MVSO has no source labels: use labels 'anp' or 'vader'")


SOURCE = Source(
    name="mvso",
    options=MvsoOptions,
    open=_open,
    input="MVSO root folder",
    default_labels="anp",
    refused_elsewhere=("anp_scores",),
    check=_check,
)
