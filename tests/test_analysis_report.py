"""The report: Markdown with linked pictures, self-contained HTML that renders and escapes."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sentimodal.analysis.plots import confusion_heatmap
from sentimodal.analysis.report import (
    Report,
    format_value,
    image_thumbnail,
    markdown_table,
    markdown_to_html,
)
from sentimodal.config import Config
from sentimodal.errors import RecordError

VOID_TAGS = {"meta", "img", "br", "hr", "link", "input", "col", "wbr", "source"}
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
HOSTILE = '<script>alert("x")</script> & | pipes'


class TagChecker(HTMLParser):
    """Every non-void tag closed in order; collects <img src> values."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.image_sources: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img" and values.get("src"):
            self.image_sources.append(values["src"] or "")
        for name in ("src", "href"):
            value = values.get(name) or ""
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)
        if tag not in VOID_TAGS:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID_TAGS:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def check_html(text: str) -> TagChecker:
    """Well-formed, no external resources, every embedded image decodes."""
    checker = TagChecker()
    checker.feed(text)
    checker.close()
    assert checker.errors == []
    assert checker.stack == []
    assert checker.external == []
    for source in checker.image_sources:
        match = re.fullmatch(r"data:image/(png|jpeg);base64,([A-Za-z0-9+/=]+)", source)
        assert match, source[:60]
        with Image.open(io.BytesIO(base64.b64decode(match.group(2)))) as picture:
            picture.load()
            assert picture.width > 8 and picture.height > 8
    return checker


def chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def screenshot(page: Path, tmp_path: Path, size: str = "1200,2000") -> Image.Image:
    """Render a page in headless Chromium and return the screenshot."""
    png = tmp_path / f"{page.stem}.png"
    result = chromium([f"--screenshot={png}", f"--window-size={size}", page.as_uri()], tmp_path)
    assert png.is_file(), result.stderr[-2000:]
    return Image.open(png).convert("RGB")


def assert_not_blank(picture: Image.Image) -> None:
    pixels = np.asarray(picture.convert("L"), dtype=float)
    assert pixels.std() > 10
    assert (pixels < 200).mean() > 0.01


class RunSettings(Config):
    model: str = "gated"
    epochs: int = 10
    learning_rate: float = 0.001
    encoders: dict[str, str] = {"image": "efficientnet_lite0", "text": "minilm"}


@pytest.fixture
def example_posts(mvsa_root: Path, tmp_path: Path) -> pd.DataFrame:
    """Real MVSA posts plus the broken cases a report must survive."""
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    ids = ["1", "3", "10"]
    rows = [
        {
            "id": i,
            "text": (mvsa_root / "data" / f"{i}.txt").read_bytes().decode("utf-8", "replace"),
            "image": str(mvsa_root / "data" / f"{i}.jpg"),
            "label": "positive",
        }
        for i in ids
    ]
    rows += [
        {"id": "missing", "text": HOSTILE, "image": str(tmp_path / "nope.jpg"), "label": "x"},
        {"id": "broken", "text": "broken image", "image": str(broken), "label": "x"},
        {"id": "remote", "text": "url", "image": "https://example.org/a.jpg", "label": "x"},
        {"id": "none", "text": "no image", "image": None, "label": "x"},
    ]
    return pd.DataFrame(rows)


def build_report(posts: pd.DataFrame) -> Report:
    report = Report(f"Run report {HOSTILE}")
    report.add_section("Configuration").add_config(RunSettings())
    report.add_section("Metrics")
    report.add_table({"accuracy": 0.7123, "macro_f1": 0.6, "posts": 12345})
    report.add_table(
        {"text only": {"accuracy": 0.65}, "fused": {"accuracy": 0.71}}, caption="Per model"
    )
    report.add_markdown(f"The **fused** model wins; *see* `report.html`.\n\n- one\n- {HOSTILE}")
    confusion = np.array([[50, 10, 5], [8, 20, 7], [3, 6, 90]])
    report.add_figure(
        confusion_heatmap(confusion, ["negative", "neutral", "positive"]),
        "confusion",
        "Confusion matrix on the test split",
    )
    report.add_examples(posts, columns=["id", "text", "label"], caption="Examples")
    return report


def test_thumbnail_of_real_image_is_small_jpeg(mvsa_root: Path) -> None:
    jpeg = image_thumbnail(mvsa_root / "data" / "1.jpg", side=64)
    with Image.open(io.BytesIO(jpeg)) as picture:
        assert picture.format == "JPEG"
        assert max(picture.size) == 64


@pytest.mark.parametrize(
    ("image", "reason"),
    [(None, "no image"), ("https://x.org/a.jpg", "remote image"), ("/no/such.jpg", "not found")],
)
def test_thumbnail_says_why_there_is_none(image: str | None, reason: str) -> None:
    with pytest.raises(RecordError, match=reason):
        image_thumbnail(image)


def test_markdown_report_links_every_picture(example_posts: pd.DataFrame, tmp_path: Path) -> None:
    paths = build_report(example_posts).write(tmp_path / "run")
    text = paths.markdown.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 1 + 3  # the confusion matrix and the three real thumbnails
    for link in links:
        assert not Path(link).is_absolute()
        with Image.open(paths.markdown.parent / link) as picture:
            picture.load()
    assert "| learning_rate | 0.001 |" in text
    assert "| encoders.image | efficientnet_lite0 |" in text
    assert "| accuracy | 0.712 |" in text and "| posts | 12,345 |" in text
    assert "(image not found)" in text and "(image unreadable" in text
    assert "(remote image)" in text and "(no image)" in text
    assert "&lt;script&gt;" in text and "<script>" not in text


def test_html_report_is_self_contained_and_escaped(
    example_posts: pd.DataFrame, tmp_path: Path
) -> None:
    paths = build_report(example_posts).write(tmp_path / "run")
    page = paths.html.read_text(encoding="utf-8")
    checker = check_html(page)
    assert len(checker.image_sources) == 1 + 3
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<strong>fused</strong>" in page and "<code>report.html</code>" in page
    assert "<em>see</em>" in page
    assert page.count("<tr>") >= 7 + 3 + 2


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_html_report_renders_in_chromium(example_posts: pd.DataFrame, tmp_path: Path) -> None:
    paths = build_report(example_posts).write(tmp_path / "run")
    assert_not_blank(screenshot(paths.html, tmp_path))


def test_markdown_table_escapes_and_aligns() -> None:
    table = pd.DataFrame({"name": ["a|b", "line\nbreak"], "score": [0.5, 1 / 3]})
    lines = markdown_table(table).splitlines()
    assert lines[1] == "| --- | ---: |"
    assert lines[2] == "| a\\|b | 0.500 |"
    assert lines[3] == "| line break | 0.333 |"


def test_markdown_subset_leaves_no_raw_markup() -> None:
    rendered = markdown_to_html("a <b>bold</b> **move** and 2*3*4 `x<y`")
    assert "<b>" not in rendered
    assert "<strong>move</strong>" in rendered
    assert "2*3*4" in rendered
    assert "<code>x&lt;y</code>" in rendered
    assert markdown_to_html("a `b") == "<p>a `b</p>"


def test_small_settings_keep_their_digits() -> None:
    assert format_value(5e-5) == "5e-05"
    assert format_value(0.1) == "0.100" and format_value(0.0) == "0.000"
    assert format_value(None) == "–" and format_value(True) == "yes"
