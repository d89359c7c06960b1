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
    #: tokens of one post's text (the project's tokenizer: a word, a symbol or an emoji
    #: each), 413 beyond: what a text costs the encoders grows with tokens, not characters
    max_text_tokens: int = Field(512, ge=1)
    #: tokens of all the texts of one request (a batch), 413 beyond
    max_request_tokens: int = Field(8192, ge=1)
    #: nesting of a JSON body (brackets), 400 beyond, checked before parsing
    max_json_depth: int = Field(16, ge=2)
    #: posts in one /v1/predict/batch request, 413 beyond
    max_batch_posts: int = Field(64, ge=1)
    #: forward passes the explanations of one request may cost (a word, an image cell, a
    #: modality: one each), 413 beyond; 0 turns explanations off
    max_explain_passes: int = Field(400, ge=0)
    #: words of a text scored, and the image grid's side, in an explanation
    explain_max_words: int = Field(64, ge=0)
    explain_grid: int = Field(4, ge=1, le=16)
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
    #: open connections; more are closed on arrival. ``serve`` also keeps it below the
    #: process's file limit (RLIMIT_NOFILE) less a reserve for the model's own files
    max_connections: int = Field(512, ge=1)
    #: connections the kernel queues before the server accepts them
    backlog: int = Field(128, ge=1)
    #: seconds a connection has to send a request's headers (from connecting, or from the
    #: previous answer); then it is closed (slow-header clients)
    header_timeout_s: float = Field(10.0, gt=0)
    #: seconds a request has to send its whole body, 408 beyond (slow-body clients)
    body_timeout_s: float = Field(30.0, gt=0)
    #: ``Host`` names accepted besides localhost, 127.0.0.1, ::1 and the bound address (a
    #: foreign name is a DNS-rebinding page reaching a local server): ``["*"]`` accepts any
    allowed_hosts: list[str] = Field(default_factory=list)

    def pixel_budget(self) -> PixelBudget:
        """The pixel budget every upload is decoded under (see :mod:`sentimodal.sources.pixels`)."""
        return PixelBudget(
            max_image_pixels=self.max_image_pixels,
            max_batch_pixels=self.max_request_pixels,
            max_decoding_bytes=self.max_decoding_bytes,
        )
