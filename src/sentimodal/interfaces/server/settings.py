"""The server's limits and knobs, one typed config (YAML/JSON round trip like every config)."""

from __future__ import annotations

from pydantic import Field

from sentimodal.config import Config
from sentimodal.sources.pixels import PixelBudget


class ServerSettings(Config):
    """Every bound a client can hit, with the status code it gets (see ``app.py``)."""

    #: whole request body (JSON or multipart), 413 beyond
    max_request_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    #: decoded image size, checked from the header before decoding (decompression bombs), 413
    max_image_pixels: int = Field(24_000_000, ge=1)
    #: decoded pixels of all images in one request together (after reduced-scale decoding), 413
    max_request_pixels: int = Field(96_000_000, ge=1)
    #: bytes all image decodes of the server hold at once; a decode waits for room until the
    #: request's deadline (504)
    max_decoding_bytes: int = Field(1024 * 1024 * 1024, ge=1)
    #: characters of one post's text, 413 beyond
    max_text_chars: int = Field(10_000, ge=1)
    #: posts in one /v1/predict/batch request, 413 beyond
    max_batch_posts: int = Field(64, ge=1)
    #: free labels in one request (embedding heads)
    max_labels: int = Field(32, ge=2)
    #: seconds from arrival to answer before a 504
    request_timeout_s: float = Field(10.0, gt=0)
    #: requests waiting for the model; a full queue answers 503 at once
    queue_size: int = Field(64, ge=1)
    #: micro-batching: how long the first waiting request waits for company, and the most
    #: posts run in one forward pass
    batch_window_ms: float = Field(4.0, ge=0)
    max_micro_batch: int = Field(32, ge=1)
    #: fetch ``image_url`` posts (through the project's fetcher); off unless the operator asks
    allow_image_urls: bool = False
    #: seconds uvicorn waits for in-flight requests on shutdown
    graceful_shutdown_s: float = Field(15.0, ge=0)

    def pixel_budget(self) -> PixelBudget:
        """The pixel budget every upload is decoded under (see :mod:`sentimodal.sources.pixels`)."""
        return PixelBudget(
            max_image_pixels=self.max_image_pixels,
            max_batch_pixels=self.max_request_pixels,
            max_decoding_bytes=self.max_decoding_bytes,
        )
