"""Checks on image files that every layer reading images shares (prepare's image check, the
feature store's decoder)."""

from __future__ import annotations

from PIL import Image

from sentimodal.errors import RecordError

#: at least one bit per 8x8 block: the most pixels one byte of JPEG data can describe
JPEG_PIXELS_PER_BYTE = 8 * 64


def check_jpeg_data(img: Image.Image, size: int, where: str) -> None:
    """Refuse a JPEG whose header claims more pixels than its bytes can hold.

    Every 8x8 luma block costs at least one bit of entropy-coded data (its DC code), so a file
    of ``size`` bytes holds at most ``size * 512`` pixels. A header edited to 12000x12000 over
    the data of a small photo would otherwise decode into a mostly grey picture, silently.
    """
    if img.format == "JPEG" and img.width * img.height > size * JPEG_PIXELS_PER_BYTE:
        raise RecordError(
            f"cannot decode image: {where} (the JPEG header claims {img.width}x{img.height} "
            f"pixels, more than its {size:,} bytes can hold)"
        )
