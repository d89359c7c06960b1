"""The downloader's image check: the bytes decode under the feature extractor's rules, and
optionally become a smaller JPEG."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from sentimodal.errors import RecordError
from sentimodal.features.images import decode_image
from sentimodal.sources.pixels import PixelBudget

#: file suffixes of the formats kept as downloaded
SUFFIXES = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp"}
JPEG_QUALITY = 90


@dataclass
class CheckedImage:
    data: bytes
    suffix: str
    width: int
    height: int


def check_image(
    data: bytes, where: str, resize: int | None = None, budget: PixelBudget | None = None
) -> CheckedImage:
    """Bytes that decode to the end (the same rules, pixel budget and reasons as
    ``load_image``): kept as they came, or with ``resize`` re-encoded as a JPEG whose shorter
    side is at most that."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt, stored = probe.format or "", probe.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        fmt, stored = "", (0, 0)  # decode_image below names the reason
    # a reduced decode still reads every byte, so truncation is caught at little cost
    image = decode_image(data, where, draft=resize or 1, budget=budget)
    if resize is None:
        suffix = SUFFIXES.get(fmt)
        if suffix is None:
            raise RecordError(f"unsupported image format {fmt or 'unknown'}: {where}")
        return CheckedImage(data, suffix, *stored)  # the decode was reduced: the stored size
    width, height = image.size
    scale = resize / min(width, height)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return CheckedImage(buffer.getvalue(), "jpg", *image.size)
