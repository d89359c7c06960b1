"""The network: one fetcher with deadlines, address rules, retries and byte caps.

Everything that reads a URL uses :func:`fetch` with a :class:`FetchPolicy`; nothing else in the
package opens sockets or calls urllib.
"""

from sentimodal.net.addresses import check_address, parse_url, refusal, resolve
from sentimodal.net.errors import FetchError
from sentimodal.net.fetch import Response, fetch
from sentimodal.net.policy import MAX_BYTES, FetchPolicy

__all__ = [
    "MAX_BYTES",
    "FetchError",
    "FetchPolicy",
    "Response",
    "check_address",
    "fetch",
    "is_url",
    "parse_url",
    "refusal",
    "resolve",
]


def is_url(value: object) -> bool:
    """True for a string that starts like an http(s) URL (it may still be an invalid one)."""
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))
