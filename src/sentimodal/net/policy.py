"""The settings every network read obeys: which addresses, how long, how much, how often."""

from __future__ import annotations

from pydantic import Field

from sentimodal.config import Config

#: Larger downloads are refused: social-media photos are far smaller, and a bound keeps a
#: worker's memory predictable.
MAX_BYTES = 32 * 1024 * 1024


class FetchPolicy(Config):
    """How one fetch may behave (plain data: it travels to worker processes and Ray actors).

    ``timeout`` bounds each connect and each socket read; ``deadline`` bounds the whole fetch
    (every retry, redirect and byte of the body included), so a server that drips one byte
    at a time still fails on time. ``allow_private`` lets requests reach loopback, private,
    link-local and other non-public addresses (off by default: a URL from a dataset must not
    make this tool talk to the machine's own network or the cloud metadata service).
    """

    allow_private: bool = False
    timeout: float = Field(10.0, gt=0)
    deadline: float = Field(30.0, gt=0)
    max_bytes: int = Field(MAX_BYTES, ge=1)
    max_redirects: int = Field(5, ge=0, le=20)
    #: further attempts after a timeout, a connection error, HTTP 429 or 5xx
    retries: int = Field(2, ge=0, le=10)
    #: first backoff in seconds; doubles per attempt, with +-50 % jitter, up to backoff_max
    backoff: float = Field(0.5, ge=0)
    backoff_max: float = Field(8.0, ge=0)
    #: the longest Retry-After wait honoured; a longer request counts as a failure
    retry_after_max: float = Field(30.0, ge=0)
    user_agent: str = "sentimodal/0.1 (+https://github.com/sentimodal)"
