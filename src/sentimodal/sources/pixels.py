"""One pixel budget for every image decode (download's check, features, predict, the server).

A PNG of a few hundred kilobytes can declare 13300 x 13300 pixels, and 64 uploads under a
per-image cap still decode to gigabytes together. So each decode is checked from the header
before any pixel is allocated: the image's pixels, the bytes the decode will allocate (Pillow's
storage per mode), the pixels a request or batch has decoded so far, and the bytes all decodes
of the process hold at once (a gate: a decode waits its turn, up to its deadline).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image
from pydantic import Field

from sentimodal.config import Config
from sentimodal.errors import RecordError

#: bytes per pixel of Pillow's in-memory storage: one byte for 1/L/P, two for 16-bit
#: greyscale, four for everything else (RGB is stored padded to four bytes)
_ONE_BYTE = {"1", "L", "P"}
_TWO_BYTES = {"I;16", "I;16B", "I;16L", "I;16N"}

# Pillow warns (on stderr) from 89 Mpx and refuses from 179 Mpx; every decode here checks the
# budget first and refuses with a reason, so its raw warning would only be noise (a budget
# raised above 89 Mpx is the operator's choice).
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageTooLarge(RecordError):
    """An image (or a request's images together) over the pixel budget, refused from the
    header before decoding (a tiny PNG can declare gigapixels)."""


class PixelBudget(Config):
    """Bounds on what images may decode to (defaults stated in docs/security.md)."""

    #: pixels an image's header may declare (width x height), any format
    max_image_pixels: int = Field(64_000_000, ge=1)
    #: bytes one decode may allocate (after JPEG draft scaling): width x height x bytes/pixel
    max_image_bytes: int = Field(256 * 1024 * 1024, ge=1)
    #: decoded pixels of one request (server) or one batch of posts, all images together
    max_batch_pixels: int = Field(128_000_000, ge=1)
    #: bytes all decodes of this process hold at once; a decode waits for room
    max_decoding_bytes: int = Field(1024 * 1024 * 1024, ge=1)


def decoded_bytes(mode: str, width: int, height: int) -> int:
    """Bytes Pillow allocates to hold a decoded ``mode`` image of this size."""
    per_pixel = 1 if mode in _ONE_BYTE else 2 if mode in _TWO_BYTES else 4
    return width * height * per_pixel


def check_header(
    budget: PixelBudget, mode: str, header: tuple[int, int], decoded: tuple[int, int], where: str
) -> int:
    """Refuse an image over the per-image bounds; returns the bytes its decode will take.

    ``header`` is the size the file declares, ``decoded`` the size the decoder will produce
    (smaller for a JPEG decoded at a reduced scale)."""
    width, height = header
    if width * height > budget.max_image_pixels:
        raise ImageTooLarge(
            f"{where} has {width}x{height} pixels, more than the {budget.max_image_pixels:,} "
            f"allowed"
        )
    cost = decoded_bytes(mode, *decoded)
    if cost > budget.max_image_bytes:
        raise ImageTooLarge(
            f"{where} would decode to {cost:,} bytes ({width}x{height} {mode}), more than "
            f"the {budget.max_image_bytes:,} allowed"
        )
    return cost


class BatchPixels:
    """The pixels a request or batch has left to decode; threads take from it in turn."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, pixels: int, where: str) -> None:
        with self._lock:
            if self.used + pixels > self.limit:
                raise ImageTooLarge(
                    f"{where}: the images of this request together exceed the "
                    f"{self.limit:,} pixels allowed"
                )
            self.used += pixels


class DecodeDeadline(RecordError):
    """No room to decode before the caller's deadline (the server's request timeout)."""


class _Gate:
    """Bytes held by decodes in flight, process-wide."""

    def __init__(self) -> None:
        self._held = 0
        self._free = threading.Condition()

    @contextmanager
    def hold(self, cost: int, limit: int, deadline: float | None, where: str) -> Iterator[None]:
        cost = min(cost, limit)  # one image under the per-image bound always gets its turn
        with self._free:
            while self._held + cost > limit:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise DecodeDeadline(f"no time left to decode {where}")
                self._free.wait(left)
            self._held += cost
        try:
            yield
        finally:
            with self._free:
                self._held -= cost
                self._free.notify_all()


_GATE = _Gate()


@contextmanager
def decoding(
    budget: PixelBudget, cost: int, where: str, deadline: float | None = None
) -> Iterator[None]:
    """Hold ``cost`` bytes of the process's decode room while decoding; past ``deadline``
    (``time.monotonic()``) a decode that has not started is refused."""
    if deadline is not None and time.monotonic() >= deadline:
        raise DecodeDeadline(f"no time left to decode {where}")
    with _GATE.hold(cost, budget.max_decoding_bytes, deadline, where):
        yield


#: decodes this large hand their freed pages back to the system as soon as they are dropped
TRIM_FROM = 32 * 1024 * 1024
_LIBC = ctypes.util.find_library("c")


def give_back_memory() -> None:
    """Return freed heap pages to the system (glibc's ``malloc_trim``; elsewhere nothing):
    without it a process that once decoded large images keeps their memory."""
    if _LIBC is None:
        return
    try:
        trim = ctypes.CDLL(_LIBC).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)
