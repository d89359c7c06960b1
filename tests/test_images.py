"""Image loading: every bad image becomes a RecordError with a reason, every good one RGB."""

from __future__ import annotations

import http.server
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sentimodal.errors import RecordError
from sentimodal.features.images import load_image, to_rgb
from sentimodal.net import FetchPolicy

#: the test server listens on 127.0.0.1, which the default policy refuses
LOCAL = FetchPolicy(allow_private=True, timeout=5, deadline=5, retries=0)


def _photo(width: int = 64, height: int = 48) -> Image.Image:
    """A smooth colour gradient: compresses like a photo, and every pixel is predictable."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1).astype(np.uint8), "RGB")


def test_jpeg_loads_as_rgb(tmp_path: Path) -> None:
    path = tmp_path / "ok.jpg"
    _photo().save(path, quality=95)
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (64, 48)
    assert np.abs(np.asarray(img, np.int16) - np.asarray(_photo(), np.int16)).mean() < 3


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="image file not found: .*nope.jpg"):
        load_image(tmp_path / "nope.jpg")


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="not a file"):
        load_image(tmp_path)


def test_truncated_jpeg(tmp_path: Path) -> None:
    full = io.BytesIO()
    _photo(256, 256).save(full, "JPEG", quality=95)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    with pytest.raises(RecordError, match="truncated image file: .*cut.jpg"):
        load_image(cut)


def test_non_image_bytes(tmp_path: Path) -> None:
    path = tmp_path / "page.jpg"
    path.write_text("<html><body>404 not found</body></html>")
    with pytest.raises(RecordError, match="not an image .*page.jpg"):
        load_image(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(RecordError, match="not an image"):
        load_image(path)


def test_greyscale_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    _photo().convert("L").save(path)
    img = load_image(path)
    assert img.mode == "RGB"
    r, g, b = (np.asarray(img)[..., c] for c in range(3))
    assert np.array_equal(r, g) and np.array_equal(g, b)


def test_png_alpha_is_flattened_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    rgba.paste((0, 0, 255, 0), (0, 0, 4, 8))  # left half fully transparent
    path = tmp_path / "alpha.png"
    rgba.save(path)
    pixels = np.asarray(load_image(path))
    assert pixels[0, 0].tolist() == [255, 255, 255]
    assert pixels[0, 7].tolist() == [255, 0, 0]


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    img.paste(0, (0, 0, 1, 4))  # first column: the transparent index
    path = tmp_path / "pal.gif"
    img.save(path, transparency=0)
    pixels = np.asarray(load_image(path))
    assert pixels[0, 0].tolist() == [255, 255, 255]
    assert pixels[0, 3].tolist() == [0, 255, 0]


def test_cmyk_and_16bit_convert() -> None:
    cmyk = Image.new("CMYK", (2, 2), (0, 255, 255, 0))  # pure red in CMYK
    assert to_rgb(cmyk).getpixel((0, 0)) == (255, 0, 0)
    deep = Image.fromarray(np.full((2, 2), 32768, dtype=np.uint16))
    assert to_rgb(deep).getpixel((0, 0)) == (128, 128, 128)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed rotated 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    _photo(64, 48).save(path, exif=exif)
    assert load_image(path).size == (48, 64)


def test_draft_decodes_large_jpeg_smaller_but_not_below_request(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    _photo(1200, 900).save(path)
    img = load_image(path, draft=256)
    assert min(img.size) >= 256 and img.size[0] < 1200
    assert load_image(path).size == (1200, 900)


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        if self.path == "/slow.jpg":
            time.sleep(2)
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    # Do not wait for the deliberately slow handler when the test is over.
    daemon_threads = True
    block_on_close = False


@pytest.fixture()
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server over tmp_path: exercises the URL path without a network."""
    server = _Server(("127.0.0.1", 0), lambda *a: _Handler(*a, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


def test_url_loads(http_root: tuple[str, Path]) -> None:
    base, root = http_root
    _photo().save(root / "a.jpg")
    assert load_image(f"{base}/a.jpg", policy=LOCAL).size == (64, 48)


def test_url_not_found(http_root: tuple[str, Path]) -> None:
    base, _ = http_root
    with pytest.raises(RecordError, match="HTTP 404"):
        load_image(f"{base}/missing.jpg", policy=LOCAL)


def test_url_timeout_is_bounded(http_root: tuple[str, Path]) -> None:
    base, root = http_root
    _photo().save(root / "slow.jpg")
    start = time.monotonic()
    with pytest.raises(RecordError, match="timed out"):
        load_image(f"{base}/slow.jpg", policy=FetchPolicy(allow_private=True, deadline=0.3))
    assert time.monotonic() - start < 1.5


def test_real_mvsa_images_decode(mvsa_root: Path) -> None:
    paths = sorted((mvsa_root / "data").glob("*.jpg"))[:5]
    assert paths, f"no images under {mvsa_root / 'data'}"
    for path in paths:
        img = load_image(path, draft=256)
        assert img.mode == "RGB" and min(img.size) > 0
