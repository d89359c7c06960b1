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
from PIL import ExifTags, Image, UnidentifiedImageError

from sentimodal.errors import RecordError
from sentimodal.net import FetchError, FetchPolicy, fetch
from sentimodal.net import is_url as _is_url
from sentimodal.sources.image_checks import check_jpeg_data
from sentimodal.sources.pixels import (
    TRIM_FROM,
    BatchPixels,
    ImageTooLarge,
    PixelBudget,
    check_header,
    decoding,
    give_back_memory,
)

#: Transparent pixels are shown over white, as a browser would display the post.
_BACKGROUND = (255, 255, 255)


def is_url(source: str | Path) -> bool:
    return _is_url(source)


def load_image(
    source: str | Path,
    *,
    draft: int | None = None,
    policy: FetchPolicy | None = None,
    budget: PixelBudget | None = None,
    batch: BatchPixels | None = None,
) -> Image.Image:
    """Decode ``source`` into an RGB image, upright according to its EXIF orientation.

    ``draft`` (pixels) is the smallest side the encoder needs: JPEGs decode at 1/2, 1/4 or 1/8
    scale and other formats are reduced right after decoding, keeping both sides >= ``draft``,
    so no full-size copy outlives the decode. ``budget`` bounds what the decode may allocate
    (checked from the header, see :mod:`sentimodal.sources.pixels`), ``batch`` the pixels of
    the batch it belongs to. URLs are fetched under ``policy`` (default: public addresses only,
    see :mod:`sentimodal.net`). Raises :class:`RecordError` for anything that prevents getting
    the pixels.
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
    return _decode(opener, where, draft, budget or PixelBudget(), batch)


def _byte_size(opener: io.BytesIO | Path) -> int:
    return opener.getbuffer().nbytes if isinstance(opener, io.BytesIO) else opener.stat().st_size


def decode_image(
    data: bytes,
    where: str,
    draft: int | None = None,
    budget: PixelBudget | None = None,
    batch: BatchPixels | None = None,
    deadline: float | None = None,
) -> Image.Image:
    """Decode bytes (a download, an upload) under the same rules as a file; ``deadline``
    (``time.monotonic()``) refuses a decode that could not start in time."""
    return _decode(io.BytesIO(data), where, draft, budget or PixelBudget(), batch, deadline)


def _decode(
    opener: io.BytesIO | Path,
    where: str,
    draft: int | None,
    budget: PixelBudget,
    batch: BatchPixels | None = None,
    deadline: float | None = None,
) -> Image.Image:
    try:
        with Image.open(opener) as img:
            header = img.size
            check_jpeg_data(img, _byte_size(opener), where)
            if draft is not None and img.format == "JPEG":
                img.draft("RGB", (draft, draft))
            cost = check_header(budget, img.mode, header, img.size, where)
            if batch is not None:
                batch.take(img.width * img.height, where)
            with decoding(budget, cost, where, deadline):
                # load() is what actually decodes: open() only reads the header, so a
                # truncated or corrupt body is detected here, not later in a worker.
                img.load()
                out = _shrunk(img, draft)
        if out is not img:
            img.close()  # the full-size pixels go now, not whenever the caller drops them
            del img
            if cost >= TRIM_FROM:
                give_back_memory()
        return out
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


def _shrunk(img: Image.Image, draft: int | None) -> Image.Image:
    """The decoded image upright, in RGB, reduced by a whole factor so that its shorter side
    stays >= ``draft`` (the encoder's transform resizes the rest of the way)."""
    turn = _TURNS.get(img.getexif().get(ExifTags.Base.Orientation, 1))
    factor = min(img.size) // draft if draft else 1
    out = img
    if factor >= 2 and img.mode not in _NO_REDUCE:
        out, factor = img.reduce(factor), 1
    if turn is not None:
        out = out.transpose(turn)
    out = to_rgb(out)
    return out.reduce(factor) if factor >= 2 else out


#: modes Image.reduce cannot take (they are reduced after the conversion to RGB)
_NO_REDUCE = {"1", "P", "I;16", "I;16B", "I;16L", "I;16N"}
#: EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose)
_TURNS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


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
    values = np.asarray(img, dtype=np.float32)
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
