"""Read one image (local path or http(s) URL) into an upright RGB PIL image.

Every image goes through here so that all encoders see the same pixels, and so that every way
an image can be bad (missing, not an image, truncated, unreachable) becomes one
:class:`~sentimodal.errors.RecordError` with a reason a person can act on (it lands in the
rejects list), never a crash of the batch.
"""

from __future__ import annotations

import io
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sentimodal.errors import RecordError
from sentimodal.sources.image_checks import check_jpeg_data

#: Seconds allowed for a URL: connecting, and the whole download (checked between chunks).
DEFAULT_TIMEOUT = 10.0
#: Larger downloads are refused: social-media photos are far smaller, and a bound keeps a
#: worker's memory predictable.
MAX_DOWNLOAD_BYTES = 32 * 1024 * 1024
_CHUNK = 256 * 1024
_USER_AGENT = "sentimodal/0.1 (image fetch)"
#: Transparent pixels are shown over white, as a browser would display the post.
_BACKGROUND = (255, 255, 255)


def is_url(source: str | Path) -> bool:
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


def load_image(
    source: str | Path, *, draft: int | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Image.Image:
    """Decode ``source`` fully into an RGB image, upright according to its EXIF orientation.

    ``draft`` (pixels) lets JPEG decoding skip detail an encoder would throw away: the decoder
    scales by 1/2, 1/4 or 1/8 while keeping both sides >= ``draft``. This is the cheapest
    resize there is, so encoders pass the smallest side their transform needs.
    Raises :class:`RecordError` for anything that prevents getting the pixels.
    """
    if is_url(source):
        data = _download(str(source), timeout)
        where = str(source)
        opener: io.BytesIO | Path = io.BytesIO(data)
    else:
        path = Path(source)
        where = str(path)
        if not path.exists():
            raise RecordError(f"image file not found: {where}")
        if not path.is_file():
            raise RecordError(f"image path is not a file: {where}")
        opener = path
    return _decode(opener, where, draft)


def _byte_size(opener: io.BytesIO | Path) -> int:
    return opener.getbuffer().nbytes if isinstance(opener, io.BytesIO) else opener.stat().st_size


def _decode(opener: io.BytesIO | Path, where: str, draft: int | None) -> Image.Image:
    try:
        with Image.open(opener) as img:
            check_jpeg_data(img, _byte_size(opener), where)
            if draft is not None and img.format == "JPEG":
                img.draft("RGB", (draft, draft))
            # load() is what actually decodes: open() only reads the header, so a truncated
            # or corrupt body is detected here, not later in a worker's transform.
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
            return to_rgb(img)
    except UnidentifiedImageError:
        raise RecordError(f"not an image (unknown or unsupported format): {where}") from None
    except Image.DecompressionBombError as exc:
        raise RecordError(f"image too large to decode safely: {where} ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        message = str(exc)
        if "truncated" in message.lower() or isinstance(exc, EOFError):
            raise RecordError(f"truncated image file: {where}") from None
        raise RecordError(
            f"cannot decode image: {where} ({message or type(exc).__name__})"
        ) from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB, flattening transparency onto white.

    Palette, greyscale, CMYK and high-bit-depth images all occur in crawled posts; encoders
    only ever see 3-channel 8-bit pixels.
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        img = _high_depth_to_l(img)
    if img.mode == "P" or "A" in img.mode or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, _BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """16-bit / 32-bit greyscale -> 8-bit by scaling the value range, since a plain convert
    would clip almost everything to white."""
    values = np.asarray(img, dtype=np.float64)
    top = 65535.0 if img.mode.startswith("I;16") else max(float(values.max()), 1e-12)
    scaled = np.clip(values / top * 255.0, 0, 255).round().astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def _download(url: str, timeout: float) -> bytes:
    """Fetch ``url`` within ``timeout`` seconds overall and :data:`MAX_DOWNLOAD_BYTES`."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            chunks: list[bytes] = []
            size = 0
            while chunk := response.read(_CHUNK):
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise RecordError(
                        f"image download larger than {MAX_DOWNLOAD_BYTES} bytes: {url}"
                    )
                if time.monotonic() > deadline:
                    raise RecordError(f"image download timed out after {timeout:g} s: {url}")
                chunks.append(chunk)
    except urllib.error.HTTPError as exc:
        raise RecordError(f"image download failed: HTTP {exc.code} for {url}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise RecordError(f"image download timed out after {timeout:g} s: {url}") from None
        raise RecordError(f"image download failed: {reason} for {url}") from None
    except TimeoutError:
        raise RecordError(f"image download timed out after {timeout:g} s: {url}") from None
    except OSError as exc:
        raise RecordError(f"image download failed: {exc} for {url}") from None
    data = b"".join(chunks)
    if not data:
        raise RecordError(f"image download returned no data: {url}")
    return data
