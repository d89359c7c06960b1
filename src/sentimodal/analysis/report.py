"""A run's report, written twice: ``report.md`` with its pictures as files beside it, and a
self-contained ``report.html`` (every image inlined, no script, no external resource) that a
person can open anywhere, mail, or attach to an issue.

A :class:`Report` is a list of blocks (headings, config, tables, figures, example tables,
Markdown paragraphs) rendered to both formats. All user text is escaped in HTML, and only a
small Markdown subset (paragraphs, ``- `` lists, ``**bold**``, ``*italic*``, `` `code` ``)
is turned into HTML, so reports never carry markup from the data.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sentimodal.analysis.plots import data_uri, figure_to_png
from sentimodal.config import Config
from sentimodal.errors import RecordError
from sentimodal.features.images import load_image

ASSETS_DIR = "report_files"
THUMBNAIL_SIDE = 128
ITALIC = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")
BULLET = re.compile(r"^\s*[-*] ")

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1d;
       background: #fff; margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 1.9em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #0072B2; padding-bottom: 4px; margin-top: 2em; }
h3 { margin-top: 1.5em; }
nav { background: #f4f6f8; padding: 8px 16px; border-radius: 6px; }
nav ul { margin: 4px 0; padding-left: 20px; }
table { border-collapse: collapse; margin: 12px 0; font-size: 14px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid #d6dbe0; padding: 4px 10px; vertical-align: top; text-align: left; }
th { background: #eef2f6; }
tbody tr:nth-child(even) { background: #f8fafb; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text { max-width: 520px; }
figure { margin: 16px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e6ea; }
figcaption { color: #555; font-size: 14px; }
img.thumb { max-width: 128px; max-height: 128px; display: block; }
.placeholder { display: inline-block; width: 120px; padding: 24px 4px; color: #777;
               background: #f1f1f1; text-align: center; font-size: 12px; }
code { background: #f1f3f5; padding: 1px 4px; border-radius: 3px; }
"""


class ReportPaths(NamedTuple):
    markdown: Path
    html: Path


def image_thumbnail(image: str | Path | None, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small JPEG of a local image; RecordError says why there is none (shown as placeholder).

    Remote images are not fetched: a report is written offline and must not stall on network.
    """
    if not isinstance(image, str | Path) or str(image) == "":
        raise RecordError("no image")
    if re.match(r"^[a-z]+://", str(image)):
        raise RecordError("remote image")
    path = Path(image)
    if not path.is_file():
        raise RecordError("image not found")
    try:  # the one decode path: pixel budget, reduced-scale decode, upright, RGB
        picture = load_image(path, draft=side)
    except RecordError as exc:
        raise RecordError(f"image unreadable ({exc})") from None
    picture.thumbnail((side, side))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def thumbnail_data_uri(image: str | Path | None, side: int = THUMBNAIL_SIDE) -> str | None:
    """Inline JPEG thumbnail, or None when the image is missing or cannot be decoded."""
    try:
        return data_uri(image_thumbnail(image, side), "image/jpeg")
    except RecordError:
        return None


def format_value(value: Any) -> str:
    """Numbers as people read them in tables: floats with 3 decimals, missing as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}" if abs(int(value)) >= 10_000 else str(int(value))
    if isinstance(value, float | np.floating):
        # Learning rates and other small settings would all read 0.000.
        small = value != 0 and abs(float(value)) < 0.001
        return f"{float(value):.3g}" if small else f"{float(value):.3f}"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _numeric_column(column: pd.Series) -> bool:
    present = column.dropna()
    return len(present) > 0 and all(_is_number(v) for v in present)


def escape_markdown_cell(text: str) -> str:
    """One table cell: no line breaks, no column separators, no raw HTML from the data."""
    text = " ".join(str(text).split())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table, numbers right-aligned."""
    columns = [str(c) for c in frame.columns]
    numeric = [_numeric_column(frame[c]) for c in frame.columns]
    lines = [
        "| " + " | ".join(escape_markdown_cell(c) for c in columns) + " |",
        "| " + " | ".join("---:" if n else "---" for n in numeric) + " |",
    ]
    for row in frame.itertuples(index=False):
        cells = [escape_markdown_cell(format_value(v)) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def html_table(frame: pd.DataFrame, caption: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(
            f'<td class="num">{html.escape(format_value(v))}</td>'
            if _is_number(v)
            else f"<td>{html.escape(format_value(v))}</td>"
            for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def markdown_to_html(text: str) -> str:
    """The Markdown subset of free paragraphs as HTML, everything escaped first."""

    def inline(line: str) -> str:
        parts = html.escape(line).split("`")
        if len(parts) % 2 == 0:  # an unmatched backtick stays literal
            parts[-2:] = [parts[-2] + "`" + parts[-1]]
        for i, part in enumerate(parts):
            if i % 2:
                parts[i] = f"<code>{part}</code>"
            else:
                part = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part)
                parts[i] = ITALIC.sub(r"<em>\1</em>", part)
        return "".join(parts)

    blocks = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.rstrip() for line in block.splitlines() if line.strip()]
        if lines and all(BULLET.match(line) for line in lines):
            items = "".join(f"<li>{inline(BULLET.sub('', line))}</li>" for line in lines)
            blocks.append(f"<ul>{items}</ul>")
        elif lines:
            blocks.append(f"<p>{' '.join(inline(line) for line in lines)}</p>")
    return "\n".join(blocks)


def flatten_config(config: Mapping[str, Any] | Config, prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys, so a config reads as one two-column table."""
    items = config.to_dict() if isinstance(config, Config) else dict(config)
    flat: dict[str, Any] = {}
    for key, value in items.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def as_table(data: pd.DataFrame | Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Metrics in the shapes runs produce them, as one DataFrame.

    ``{metric: value}`` gives a metric/value table, ``{name: {metric: value}}`` one row per
    name, a list of dicts one row per dict.
    """
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        if data and all(isinstance(v, Mapping) for v in data.values()):
            frame = pd.DataFrame.from_dict(dict(data), orient="index")
            return frame.rename_axis("name").reset_index()
        values = pd.Series(list(data.values()), dtype=object)  # keep ints apart from floats
        return pd.DataFrame({"metric": list(data), "value": values})
    return pd.DataFrame(list(data))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "item"


@dataclass
class _Asset:
    """An image stored once, written as a file for Markdown and inlined for HTML."""

    name: str
    data: bytes
    mime: str


@dataclass
class _Heading:
    text: str
    level: int
    anchor: str

    def markdown(self) -> str:
        return f"{'#' * self.level} {escape_markdown_cell(self.text)}"

    def html(self) -> str:
        tag = f"h{self.level}"
        return f'<{tag} id="{self.anchor}">{html.escape(self.text)}</{tag}>'


@dataclass
class _Paragraph:
    text: str

    def markdown(self) -> str:
        """The subset is all a paragraph may use, so raw HTML is shown, not interpreted."""
        return self.text.strip().replace("<", "&lt;").replace(">", "&gt;")

    def html(self) -> str:
        return markdown_to_html(self.text)


@dataclass
class _Table:
    table: pd.DataFrame
    caption: str | None

    def markdown(self) -> str:
        caption = f"**{escape_markdown_cell(self.caption)}**\n\n" if self.caption else ""
        return caption + markdown_table(self.table)

    def html(self) -> str:
        return html_table(self.table, self.caption)


@dataclass
class _Figure:
    asset: _Asset
    caption: str

    def markdown(self) -> str:
        alt = escape_markdown_cell(self.caption).replace("[", "(").replace("]", ")")
        text = f"![{alt}]({ASSETS_DIR}/{self.asset.name})"
        return text + (f"\n\n*{escape_markdown_cell(self.caption)}*" if self.caption else "")

    def html(self) -> str:
        caption = f"<figcaption>{html.escape(self.caption)}</figcaption>" if self.caption else ""
        alt = html.escape(self.caption or self.asset.name)
        src = data_uri(self.asset.data, self.asset.mime)
        return f'<figure><img src="{src}" alt="{alt}">{caption}</figure>'


@dataclass
class _Examples:
    """Posts as rows: a thumbnail (or why there is none), then the chosen columns."""

    rows: list[dict[str, Any]]
    columns: list[str]
    thumbnails: list[_Asset | str]
    text_column: str | None
    caption: str | None

    def markdown(self) -> str:
        header = [escape_markdown_cell(c) for c in ["image", *self.columns]]
        lines = [
            "| " + " | ".join(header) + " |",
            "| " + " | ".join("---" for _ in header) + " |",
        ]
        for row, thumb in zip(self.rows, self.thumbnails, strict=True):
            image = (
                f"![thumbnail]({ASSETS_DIR}/{thumb.name})"
                if isinstance(thumb, _Asset)
                else f"({thumb})"
            )
            cells = [image] + [escape_markdown_cell(format_value(row[c])) for c in self.columns]
            lines.append("| " + " | ".join(cells) + " |")
        caption = f"**{escape_markdown_cell(self.caption)}**\n\n" if self.caption else ""
        return caption + "\n".join(lines)

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in ["image", *self.columns])
        body = []
        for row, thumb in zip(self.rows, self.thumbnails, strict=True):
            if isinstance(thumb, _Asset):
                image = f'<img class="thumb" src="{data_uri(thumb.data, thumb.mime)}" alt="">'
            else:
                image = f'<span class="placeholder">{html.escape(thumb)}</span>'
            cells = [f"<td>{image}</td>"]
            for column in self.columns:
                value = row[column]
                css = "num" if _is_number(value) else "text" if column == self.text_column else ""
                attr = f' class="{css}"' if css else ""
                cells.append(f"<td{attr}>{html.escape(format_value(value))}</td>")
            body.append(f"<tr>{''.join(cells)}</tr>")
        cap = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


@dataclass
class Report:
    """Build a report block by block, then :meth:`write` it as Markdown and HTML."""

    title: str
    blocks: list[_Heading | _Paragraph | _Table | _Figure | _Examples] = field(default_factory=list)
    assets: list[_Asset] = field(default_factory=list)

    def _asset(self, stem: str, data: bytes, mime: str, suffix: str) -> _Asset:
        asset = _Asset(f"{len(self.assets) + 1:03d}-{slug(stem)}.{suffix}", data, mime)
        self.assets.append(asset)
        return asset

    def add_section(self, title: str, level: int = 2) -> Report:
        anchor = f"s{len(self.blocks)}-{slug(title)}"
        self.blocks.append(_Heading(title, level, anchor))
        return self

    def add_markdown(self, text: str) -> Report:
        self.blocks.append(_Paragraph(text))
        return self

    def add_config(
        self, config: Mapping[str, Any] | Config, caption: str | None = "Configuration"
    ) -> Report:
        flat = flatten_config(config)
        values = [format_value(v) for v in flat.values()]
        table = pd.DataFrame({"setting": list(flat), "value": values})
        self.blocks.append(_Table(table, caption))
        return self

    def add_table(
        self,
        data: pd.DataFrame | Mapping[str, Any] | Sequence[Mapping[str, Any]],
        caption: str | None = None,
    ) -> Report:
        self.blocks.append(_Table(as_table(data), caption))
        return self

    def add_figure(self, figure: Figure | bytes, name: str, caption: str = "") -> Report:
        """A matplotlib figure (or PNG bytes), stored as PNG."""
        png = figure if isinstance(figure, bytes) else figure_to_png(figure)
        self.blocks.append(_Figure(self._asset(name, png, "image/png", "png"), caption))
        return self

    def add_examples(
        self,
        rows: pd.DataFrame | Iterable[Mapping[str, Any]],
        columns: Sequence[str],
        image_column: str = "image",
        text_column: str | None = "text",
        caption: str | None = None,
        max_rows: int = 30,
        pictures: Mapping[str, bytes] | None = None,
    ) -> Report:
        """A table of posts with a thumbnail each; unreadable images show why instead.
        ``pictures`` (post id -> PNG) replace a post's thumbnail (an explanation's heatmap)."""
        records = (
            rows.to_dict(orient="records") if isinstance(rows, pd.DataFrame) else list(rows)
        )[:max_rows]
        thumbnails: list[_Asset | str] = []
        for record in records:
            name = f"thumb-{record.get('id', '')}"
            png = (pictures or {}).get(str(record.get("id", "")))
            if png is not None:
                thumbnails.append(self._asset(name, png, "image/png", "png"))
                continue
            try:
                jpeg = image_thumbnail(record.get(image_column))
                thumbnails.append(self._asset(name, jpeg, "image/jpeg", "jpg"))
            except RecordError as exc:
                thumbnails.append(str(exc))
        self.blocks.append(
            _Examples([dict(r) for r in records], list(columns), thumbnails, text_column, caption)
        )
        return self

    def to_markdown(self) -> str:
        parts = [f"# {escape_markdown_cell(self.title)}", *(b.markdown() for b in self.blocks)]
        return "\n\n".join(parts) + "\n"

    def to_html(self) -> str:
        headings = [b for b in self.blocks if isinstance(b, _Heading) and b.level == 2]
        nav = ""
        if len(headings) > 1:
            items = "".join(
                f'<li><a href="#{h.anchor}">{html.escape(h.text)}</a></li>' for h in headings
            )
            nav = f"<nav><strong>Contents</strong><ul>{items}</ul></nav>"
        body = "\n".join(block.html() for block in self.blocks)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{CSS}</style>\n</head>\n"
            f"<body>\n<main>\n<h1>{html.escape(self.title)}</h1>\n{nav}\n{body}\n</main>\n"
            "</body>\n</html>\n"
        )

    def write(self, directory: str | Path) -> ReportPaths:
        """``report.md`` + ``report_files/`` (pictures) and a self-contained ``report.html``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.assets:
            assets = directory / ASSETS_DIR
            assets.mkdir(exist_ok=True)
            for asset in self.assets:
                (assets / asset.name).write_bytes(asset.data)
        paths = ReportPaths(directory / "report.md", directory / "report.html")
        paths.markdown.write_text(self.to_markdown(), encoding="utf-8")
        paths.html.write_text(self.to_html(), encoding="utf-8")
        return paths
