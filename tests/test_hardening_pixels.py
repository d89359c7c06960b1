"""Memory bounded by what an image decodes to: one pixel budget on every decode path.

Cases of issue 25 item 2: a tiny PNG declaring 13300x13300 (download, features, prepare's
image check, report thumbnails), many images under the per-image cap in one request, the
decode bytes of wide modes, a decode that cannot start before the request timeout, decoding
no larger than the encoder needs, and Pillow's raw DecompressionBombWarning on stderr.
"""

from __future__ import annotations

import base64
import io
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from sentimodal.download.images import check_image
from sentimodal.errors import RecordError
from sentimodal.features.images import decode_image, load_image
from sentimodal.interfaces.server import ServerSettings
from sentimodal.interfaces.server.model import ImageRejected, decode_upload
from sentimodal.preparation.filters import check_local_image
from sentimodal.sources.pixels import (
    BatchPixels,
    DecodeDeadline,
    ImageTooLarge,
    PixelBudget,
    check_header,
    decoded_bytes,
    decoding,
)
from server_fixtures import ThreadServer, train_fusion

SRC = str(Path(__file__).resolve().parents[1] / "src")


def png_header_only(width: int, height: int, colour_type: int = 6) -> bytes:
    """A PNG of under 100 bytes whose header declares ``width`` x ``height`` (RGBA default)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def png(width: int, height: int, mode: str = "RGBA") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), (200, 30, 30, 255)[: len(mode)]).save(buffer, "PNG")
    return buffer.getvalue()


# --- the per-image bound, from the header, on every path ---------------------------------


def test_huge_header_png_is_refused_by_features_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(13300, 13300))
    with pytest.raises(ImageTooLarge, match="13300x13300 pixels, more than the 64,000,000"):
        load_image(path, draft=224)


def test_huge_header_png_is_a_download_reject(tmp_path: Path) -> None:
    with pytest.raises(ImageTooLarge, match="13300x13300"):
        check_image(png_header_only(13300, 13300), "http://x/a.png")
    with pytest.raises(ImageTooLarge, match="13300x13300"):
        check_image(png_header_only(13300, 13300), "http://x/a.png", resize=256)
    smaller = PixelBudget(max_image_pixels=1000)
    with pytest.raises(ImageTooLarge, match="more than the 1,000 allowed"):
        check_image(png(40, 40), "http://x/b.png", budget=smaller)


def test_download_keeps_the_stored_size_of_a_reduced_check() -> None:
    checked = check_image(png(900, 600), "http://x/a.png")
    assert (checked.suffix, checked.width, checked.height) == ("png", 900, 600)


def test_huge_header_png_is_refused_by_prepare_and_report(tmp_path: Path) -> None:
    from sentimodal.analysis.report import image_thumbnail

    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(13300, 13300))
    with pytest.raises(ImageTooLarge, match="13300x13300"):
        check_local_image(str(path))
    with pytest.raises(RecordError, match="image unreadable.*13300x13300"):
        image_thumbnail(path)


def test_decode_bytes_count_the_mode() -> None:
    """Bytes the decode allocates: 4 per RGBA/RGB pixel, 2 for 16-bit grey, 1 for L/P."""
    assert decoded_bytes("RGBA", 100, 100) == decoded_bytes("RGB", 100, 100) == 40_000
    assert decoded_bytes("I;16", 100, 100) == 20_000
    assert decoded_bytes("L", 100, 100) == decoded_bytes("P", 100, 100) == 10_000
    budget = PixelBudget(max_image_bytes=20_000)
    assert check_header(budget, "L", (100, 100), (100, 100), "a") == 10_000
    with pytest.raises(ImageTooLarge, match="40,000 bytes"):
        check_header(budget, "RGBA", (100, 100), (100, 100), "a")
    with pytest.raises(ImageTooLarge, match="bytes"):
        decode_image(png(100, 100), "b", budget=budget)
    decode_image(png(100, 100, "L"), "c", budget=budget)


def test_jpeg_bytes_are_counted_at_the_draft_scale() -> None:
    """A large JPEG decoded at 1/8 scale allocates 1/64 of its pixels: it fits where the full
    decode would not."""
    buffer = io.BytesIO()
    Image.new("RGB", (1600, 1600), (10, 120, 60)).save(buffer, "JPEG")
    budget = PixelBudget(max_image_bytes=4 * 300 * 300)
    assert decode_image(buffer.getvalue(), "a", draft=200, budget=budget).size == (200, 200)
    with pytest.raises(ImageTooLarge):
        decode_image(buffer.getvalue(), "a", budget=budget)


def test_no_raw_decompression_bomb_warning_on_stderr(tmp_path: Path) -> None:
    """100 Mpx is over Pillow's warning threshold (89 Mpx): the budget refuses with a reason
    and nothing of Pillow's reaches stderr, even with the budget raised past it."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(10000, 10000, colour_type=0))
    code = (
        "import sys; from sentimodal.features.images import load_image\n"
        "from sentimodal.sources.pixels import PixelBudget\n"
        "from sentimodal.errors import RecordError\n"
        "for budget in (None, PixelBudget(max_image_pixels=10**9, max_image_bytes=10**9)):\n"
        "    try: load_image(sys.argv[1], budget=budget)\n"
        "    except RecordError as exc: print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": SRC},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    first, second = done.stdout.splitlines()
    assert "10000x10000 pixels, more than the 64,000,000 allowed" in first
    assert "truncated" in second or "cannot decode" in second


# --- per request / batch, the process's decode room, the deadline --------------------------


def test_batch_pixels_refuse_past_the_total() -> None:
    pixels = BatchPixels(100)
    pixels.take(60, "a")
    with pytest.raises(ImageTooLarge, match="together exceed the 100 pixels"):
        pixels.take(60, "b")
    pixels.take(40, "c")


def test_a_decode_that_cannot_start_before_the_deadline_is_refused() -> None:
    budget = PixelBudget(max_decoding_bytes=1000)
    late = decoding(budget, 10, "late", deadline=time.monotonic() - 1)
    with pytest.raises(DecodeDeadline), late:
        pass
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with decoding(budget, 1000, "first"):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    started = time.monotonic()
    waiting = decoding(budget, 500, "second", deadline=started + 0.2)
    with pytest.raises(DecodeDeadline, match="no time left to decode second"), waiting:
        pass
    assert 0.15 < time.monotonic() - started < 2
    release.set()
    thread.join(5)
    with decoding(budget, 500, "third", deadline=time.monotonic() + 1):
        pass  # the room came back


def test_upload_past_its_deadline_is_late_not_decoded() -> None:
    with pytest.raises(ImageRejected) as caught:
        decode_upload(png(10, 10), PixelBudget(), deadline=time.monotonic() - 1)
    assert caught.value.late and not caught.value.too_large


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model_dir = train_fusion(tmp_path_factory.mktemp("pixels") / "fusion")
    settings = ServerSettings(max_image_pixels=1_000_000, max_request_pixels=2_500_000)
    with ThreadServer(model_dir, settings) as running:
        yield running.base


def test_server_request_pixels_are_bounded_together(small_server: str) -> None:
    """Each image is under the per-image cap; the request's images together are not: the
    posts past the total get an error, the others are predicted."""
    image = base64.b64encode(png(1000, 1000)).decode()
    posts = [{"id": str(i), "text": "fine", "image_base64": image} for i in range(4)]
    answer = httpx.post(f"{small_server}/v1/predict/batch", json={"posts": posts}, timeout=60)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    errors = [p["error"] for p in predictions if p["error"]]
    assert len(errors) == 2 and all("together exceed the 2,500,000" in e for e in errors)
    assert sum(p["label"] is not None for p in predictions) == 2
    one = httpx.post(f"{small_server}/v1/predict", json={"text": "x", "image_base64": image})
    assert one.status_code == 200, one.text  # the allowance is per request


# --- decode no larger than the encoder needs; memory given back ---------------------------


def test_non_jpeg_is_reduced_right_after_decoding() -> None:
    image = decode_image(png(2000, 1000), "a", draft=224)
    assert image.mode == "RGB" and image.size == (500, 250)  # factor 1000 // 224 = 4
    palette = Image.new("P", (1200, 1200))
    buffer = io.BytesIO()
    palette.save(buffer, "PNG")
    assert decode_image(buffer.getvalue(), "b", draft=300).size == (300, 300)
    assert decode_image(png(300, 200), "c", draft=224).size == (300, 200)


def test_held_memory_is_what_the_encoder_needs(tmp_path: Path) -> None:
    """Eight 4800x4800 RGBA PNGs (the issue's request) held after decoding: about the size
    of their reduced copies, not 8 x 92 MB, and the peak stays near one full decode."""
    path = tmp_path / "big.png"
    path.write_bytes(png(4800, 4800))
    code = (
        "import sys\n"
        "from sentimodal.features.images import load_image\n"
        "def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096\n"
        "load_image(sys.argv[1], draft=256)\n"  # warm: imports, allocator pools
        "before = rss()\n"
        "held = [load_image(sys.argv[1], draft=256) for _ in range(8)]\n"
        # VmHWM, not ru_maxrss: that one keeps the forking parent's peak across exec
        "peak = [int(line.split()[1]) * 1024 for line in open('/proc/self/status')\n"
        "        if line.startswith('VmHWM')][0]\n"
        "print((rss() - before) // 2**20, peak // 2**20, min(held[0].size))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": SRC},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    grown, peak, side = map(int, done.stdout.split())
    assert grown < 60, done.stdout  # the full-size copies would be 8 x 88 MiB
    assert peak < 400, done.stdout
    assert 256 <= side < 512
