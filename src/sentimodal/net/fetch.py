"""``fetch(url, policy)``: the one way this package reads from the network.

Every image download (feature extraction, prediction, the downloader) and every reachability
check goes through here, so the rules hold everywhere: http(s) only; every address checked
before connecting and again after every redirect (see :mod:`sentimodal.net.addresses`); the
connection made to the checked address itself; a per-read socket timeout plus a watchdog that
cuts the connection at the fetch's wall-clock deadline (a server dripping one byte every few
seconds fails on time); a byte cap; bounded redirects; retries with exponential backoff and
jitter on timeouts, connection errors, 429 and 5xx, honouring Retry-After.
"""

from __future__ import annotations

import email.utils
import http.client
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import urljoin

from sentimodal.net.addresses import IPAddress, Target, parse_url, resolve
from sentimodal.net.errors import FetchError
from sentimodal.net.policy import FetchPolicy

_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 64 * 1024


@dataclass
class Response:
    """A successful (2xx) answer: the body is complete and within the byte cap."""

    url: str
    final_url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    attempts: int = 1
    seconds: float = 0.0
    redirects: list[str] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def fetch(
    url: str,
    policy: FetchPolicy | None = None,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Response:
    """GET (or HEAD) ``url`` under ``policy``; raises :class:`FetchError` with the reason.

    The whole call, retries included, ends by ``policy.deadline`` seconds.
    """
    policy = policy or FetchPolicy()
    started = time.monotonic()
    deadline = started + policy.deadline
    attempt = 0
    while True:
        try:
            response = _attempt(url, policy, method, headers or {}, deadline)
        except FetchError as exc:
            wait = _retry_wait(exc, attempt, policy)
            if wait is None or time.monotonic() + wait >= deadline:
                raise
            sleep(wait)
            attempt += 1
            continue
        response.attempts = attempt + 1
        response.seconds = time.monotonic() - started
        return response


def _retry_wait(exc: FetchError, attempt: int, policy: FetchPolicy) -> float | None:
    """Seconds to wait before the next attempt, or None when there is none."""
    if not exc.retryable or attempt >= policy.retries:
        return None
    if exc.retry_after is not None:
        return exc.retry_after if exc.retry_after <= policy.retry_after_max else None
    base = min(policy.backoff * 2**attempt, policy.backoff_max)
    return base * random.uniform(0.5, 1.5)


def _attempt(
    url: str, policy: FetchPolicy, method: str, headers: Mapping[str, str], deadline: float
) -> Response:
    current = url
    redirects: list[str] = []
    while True:
        target = parse_url(current)
        remaining = max(0.001, min(policy.timeout, deadline - time.monotonic()))
        addresses = resolve(target.host, target.port, policy.allow_private, timeout=remaining)
        status, answer, body = _request(target, addresses, policy, method, headers, deadline)
        location = answer.get("location")
        if status not in _REDIRECTS or not location:
            break
        if len(redirects) >= policy.max_redirects:
            raise FetchError(
                f"too many redirects (more than {policy.max_redirects})", "too many redirects"
            )
        current = urljoin(current, location.strip())
        redirects.append(current)
        if status == 303:
            method = "GET"
    if 200 <= status < 300:
        return Response(url, current, status, answer, body, redirects=redirects)
    retryable = status == 429 or status >= 500
    retry_after = _retry_after(answer.get("retry-after")) if retryable else None
    raise FetchError(
        f"HTTP {status}",
        f"HTTP {status}",
        retryable=retryable,
        status=status,
        retry_after=retry_after,
    )


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (a number or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _request(
    target: Target,
    addresses: list[IPAddress],
    policy: FetchPolicy,
    method: str,
    headers: Mapping[str, str],
    deadline: float,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP exchange with a checked address: (status, lower-cased headers, body)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _timeout(policy.deadline)
    watchdog = _Watchdog(remaining)
    timeout = min(policy.timeout, remaining)
    try:
        connection = _connect(target, addresses, timeout, watchdog)
        try:
            answer = _exchange(connection, target, policy, method, headers)
        finally:
            watchdog.stop()
            connection.close()
    except FetchError:
        if watchdog.fired:  # the cut connection looked like a short body
            raise _timeout(policy.deadline) from None
        raise
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise _classify(exc, watchdog, policy, timeout) from None
    finally:
        watchdog.stop()
    if watchdog.fired:
        raise _timeout(policy.deadline)
    return answer


def _classify(
    exc: BaseException, watchdog: _Watchdog, policy: FetchPolicy, timeout: float
) -> FetchError:
    if watchdog.fired:
        return _timeout(policy.deadline)
    if isinstance(exc, TimeoutError):
        return _timeout(timeout)
    if isinstance(exc, http.client.IncompleteRead):
        return FetchError("truncated body", "truncated body", retryable=True)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return FetchError(f"TLS certificate rejected ({exc.verify_message})", "TLS error")
    if isinstance(exc, http.client.InvalidURL):
        return FetchError(f"invalid URL ({exc})", "invalid URL")
    if isinstance(exc, ConnectionRefusedError):
        return FetchError("connection refused", "connection refused", retryable=True)
    if isinstance(exc, http.client.HTTPException | ConnectionError):
        detail = str(exc) or type(exc).__name__
        return FetchError(f"connection failed ({detail})", "connection failed", retryable=True)
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return FetchError(f"connection failed ({detail})", "connection failed", retryable=True)


def _timeout(seconds: float) -> FetchError:
    return FetchError(f"timed out after {seconds:g} s", "timeout", retryable=True)


def _exchange(
    connection: http.client.HTTPConnection,
    target: Target,
    policy: FetchPolicy,
    method: str,
    headers: Mapping[str, str],
) -> tuple[int, dict[str, str], bytes]:
    sent = {"User-Agent": policy.user_agent, "Accept": "image/*,*/*;q=0.5", **headers}
    connection.request(method, target.path, headers=sent)
    response = connection.getresponse()
    answer = {k.lower(): v for k, v in response.getheaders()}
    if method == "HEAD" or response.status in _REDIRECTS or response.status >= 400:
        return response.status, answer, b""
    length = _content_length(answer.get("content-length"))
    if length is not None and length > policy.max_bytes:
        raise _too_large(policy.max_bytes, f"Content-Length {length}")
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read(_CHUNK):
        size += len(chunk)
        if size > policy.max_bytes:
            raise _too_large(policy.max_bytes, "body")
        chunks.append(chunk)
    if length is not None and size < length:
        raise FetchError(
            f"truncated body ({size} of {length} bytes)", "truncated body", retryable=True
        )
    return response.status, answer, b"".join(chunks)


def _content_length(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def _too_large(cap: int, what: str) -> FetchError:
    return FetchError(f"larger than {cap} bytes ({what})", "too large")


class _Watchdog:
    """Cuts the connection when the fetch's deadline passes, whatever the socket is doing.

    Socket timeouts bound each read, not their sum: a server sending one byte per second
    never trips them. At the deadline this shuts the socket down (on a duplicate of its
    descriptor, so a TLS socket is cut the same way), and the blocked read returns at once.
    """

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._fd = sock.fileno()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            if self._fd is None:
                return
            try:
                duplicate = socket.socket(fileno=os.dup(self._fd))
            except OSError:
                return
            try:
                duplicate.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            finally:
                duplicate.close()

    def stop(self) -> None:
        """Before the socket is closed: its descriptor number may be reused after."""
        self._timer.cancel()
        with self._lock:
            self._fd = None


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a given, already checked address while naming the host in the request."""

    def __init__(self, host: str, port: int, address: str, timeout: float, watchdog: _Watchdog):
        super().__init__(host, port, timeout=timeout)
        self.address = address
        self.watchdog = watchdog

    def _open(self) -> socket.socket:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.watchdog.watch(sock)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def connect(self) -> None:
        self.sock = self._open()


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """The same over TLS: the certificate is verified against the host name (SNI too)."""

    def connect(self) -> None:
        self.sock = _tls_context().wrap_socket(self._open(), server_hostname=self.host)


@cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _connect(
    target: Target, addresses: list[IPAddress], timeout: float, watchdog: _Watchdog
) -> http.client.HTTPConnection:
    """A connection to the first checked address that accepts one."""
    kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    error: OSError | None = None
    for address in addresses:
        if watchdog.fired:
            break
        connection = kind(target.host, target.port, str(address), timeout, watchdog)
        try:
            connection.connect()
        except OSError as exc:
            connection.close()
            error = exc
            continue
        return connection
    raise error or TimeoutError()
