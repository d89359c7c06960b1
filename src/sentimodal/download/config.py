"""Settings of one ``sentimodal download`` run (written to stats.json)."""

from __future__ import annotations

from pydantic import Field, field_validator

from sentimodal.config import Config
from sentimodal.net import MAX_BYTES, FetchPolicy
from sentimodal.preparation.splits import parse_split
from sentimodal.sources.pixels import PixelBudget


class DownloadConfig(Config):
    """Where the URLs are, how hard to pull, and what to keep.

    ``workers`` threads fetch at once, at most ``per_host`` of them from one host, and at most
    ``host_rate`` requests per second start per host (None: no rate limit). Each image obeys
    the fetch policy (timeouts, deadline, retries, ``max_bytes``); the run stops fetching once
    ``max_total_bytes`` have arrived (the rest stay retryable for a later run).
    """

    # the table's columns (a prepared dataset always has id / text / image / label)
    image_column: str = "image"
    id_column: str | None = None
    text_columns: list[str] = Field(default_factory=list)
    label_column: str | None = None
    split: str | None = None
    # concurrency and politeness
    workers: int = Field(32, ge=1, le=512)
    per_host: int = Field(8, ge=1)
    host_rate: float | None = Field(None, gt=0)
    # what one fetch may do
    timeout: float = Field(10.0, gt=0)
    deadline: float = Field(30.0, gt=0)
    retries: int = Field(2, ge=0, le=10)
    #: first retry wait in seconds (doubling, with jitter; Retry-After wins when given)
    backoff: float = Field(0.5, ge=0)
    max_bytes: int = Field(MAX_BYTES, ge=1)
    max_total_bytes: int | None = Field(None, ge=1)
    allow_private_addresses: bool = False
    #: what each downloaded image may decode to (checked from its header), see PixelBudget
    max_image_pixels: int = Field(PixelBudget().max_image_pixels, ge=1)
    # what is kept: the original bytes, or a JPEG whose shorter side is at most `resize`
    resize: int | None = Field(None, ge=8, le=8192)
    shard_size: int = Field(1000, ge=1)

    @field_validator("split")
    @classmethod
    def _check_split(cls, value: str | None) -> str | None:
        parse_split(value)  # raises ValueError with the reason
        return value

    def pixel_budget(self) -> PixelBudget:
        return PixelBudget(max_image_pixels=self.max_image_pixels)

    def fetch_policy(self) -> FetchPolicy:
        return FetchPolicy(
            allow_private=self.allow_private_addresses,
            timeout=self.timeout,
            deadline=self.deadline,
            retries=self.retries,
            backoff=self.backoff,
            max_bytes=self.max_bytes,
        )
