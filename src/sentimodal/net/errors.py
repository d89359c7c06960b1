"""The one error a fetch raises: a record-level failure with a reason and a category."""

from __future__ import annotations

from sentimodal.errors import RecordError


class FetchError(RecordError):
    """A fetch that failed: ``str(exc)`` is the reason a person reads ("HTTP 404", "timed out
    after 10 s", "refused: private address 10.0.0.1"); ``category`` groups failures for
    statistics ("HTTP 404", "timeout", "refused address"); ``retryable`` says whether trying
    again later can succeed (timeouts, connection errors, truncated bodies, 429, 5xx)."""

    def __init__(
        self,
        message: str,
        category: str,
        *,
        retryable: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.category = category
        self.retryable = retryable
        #: the HTTP status when the server answered
        self.status = status
        #: seconds the server asked to wait (Retry-After), when it did
        self.retry_after = retry_after
