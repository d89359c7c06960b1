"""Read one image (local path or http(s) URL) into an upright RGB PIL image.

Every image goes through here so that all encoders see the same pixels, and so that every way
an image can be bad (missing, not an image, truncated, unreachable) becomes one
:class:`~sentimodal.errors.RecordError` with a reason a person can act on (it lands in the
rejects list), never a crash of the batch.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sentimodal.errors import RecordError
from sentimodal.net import FetchError, FetchPolicy, fetch
from sentimodal.net import is_url as _is_url
from sentimodal.sources.image_checks import check_jpeg_data

#: Transparent pixels are shown over white, as a browser would display the post.
_BACKGROUND = (255, 255, 255)


def is_url(source: str | Path) -> bool:
    return _is_url(source)


def load_image(
    source: str | Path, *, draft: int | None = None, policy: FetchPolicy | None = None
) -> Image.Image:
    """Decode ``source`` fully into an RGB image, upright according to its EXIF orientation.

    ``draft`` (pixels) lets JPEG decoding skip detail an encoder would throw away: the decoder
    scales by 1/2, 1/4 or 1/8 while keeping both sides >= ``draft``. This is the cheapest
    resize there is, so encoders pass the smallest side their transform needs. URLs are
    fetched under ``policy`` (default: public addresses only, see :mod:`sentimodal.net`).
    Raises :class:`RecordError` for anything that prevents getting the pixels.
    """
    if is_url(source):
        where = str(source)
        opener: io.BytesIO | Path = io.BytesIO(download_image(where, policy))
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


class ImageTooLarge(RecordError):
    """An image with more pixels than allowed, refused from its header before any decoding
    (a tiny PNG can declare gigapixels)."""


def decode_image(
    data: bytes, where: str, draft: int | None = None, max_pixels: int | None = None
) -> Image.Image:
    """Decode bytes (a download, an upload) under the same rules as a file; ``max_pixels``
    bounds the image's size (:class:`ImageTooLarge`) below PIL's own bomb limit."""
    return _decode(io.BytesIO(data), where, draft, max_pixels)


def _decode(
    opener: io.BytesIO | Path, where: str, draft: int | None, max_pixels: int | None = None
) -> Image.Image:
    try:
        with Image.open(opener) as img:
            width, height = img.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageTooLarge(
                    f"{where} has {width}x{height} pixels, more than the {max_pixels:,} allowed"
                )
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
        raise ImageTooLarge(f"image too large to decode safely: {where} ({exc})") from None
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


def download_image(url: str, policy: FetchPolicy | None = None) -> bytes:
    """The bytes at ``url``, fetched under ``policy`` (address rules, deadline, byte cap)."""
    try:
        response = fetch(url, policy or FetchPolicy())
    except FetchError as exc:
        raise RecordError(f"image download failed: {exc}: {url}") from None
    if not response.body:
        raise RecordError(f"image download returned no data: {url}")
    return response.body
