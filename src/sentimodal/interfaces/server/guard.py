"""The middleware in front of every request: a request id, the ``Host`` check, the body's size
and time bounds, security headers on every answer, and one JSON access-log line per request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sentimodal.interfaces.server.errors import error_response
from sentimodal.interfaces.server.hosts import HostCheck

access_log = logging.getLogger("sentimodal.server.access")
#: an oversized body is read and dropped up to this many times the bound (see Guard)
_DRAIN_FACTOR = 4
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: every answer: no MIME sniffing, no framing (clickjacking); JSON loads nothing
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
]
#: every answer but the pages: JSON, assets and errors load nothing
_CSP_NONE = b"default-src 'none'; frame-ancestors 'none'"


class Guard:
    """Pure ASGI middleware: request id, Host check, body bounds, security headers, one JSON
    access-log line per request.

    The body is read here up to ``max_bytes`` within ``body_timeout_s`` (a larger declared or
    streamed body is refused with 413, a slower one with 408, before the app sees any of it),
    then replayed to the app. ``page_csps``: the Content-Security-Policy of each HTML page, by
    path (the try-it page at /, the API docs); every other answer gets one that allows nothing.
    """

    def __init__(
        self,
        app: Any,
        max_bytes: int,
        body_timeout_s: float,
        hosts: HostCheck,
        page_csps: Mapping[str, bytes],
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout_s = body_timeout_s
        self.hosts = hosts
        self.page_csps = dict(page_csps)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        note: dict[str, Any] = {"batch_size": None}
        scope["sentimodal"] = note
        status = 500
        csp = self.page_csps.get(scope.get("path", ""), _CSP_NONE)

        async def send_logged(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                    *_SECURITY_HEADERS,
                    (b"content-security-policy", csp),
                ]
            await send(message)

        try:
            host = headers.get(b"host", b"").decode("latin-1")
            if not self.hosts.allows(host):
                response = error_response(
                    400,
                    "host_not_allowed",
                    "this server does not answer requests for that Host (see allowed_hosts)",
                )
                await response(scope, receive, send_logged)
                return
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    body = await self._read_body(headers, receive)
            except TimeoutError:
                response = error_response(
                    408,
                    "body_timeout",
                    f"the request body did not arrive within {self.body_timeout_s:g} s",
                    headers={"connection": "close"},
                )
                await response(scope, receive, send_logged)
                return
            if body is None:
                response = error_response(
                    413,
                    "body_too_large",
                    f"request body over {self.max_bytes:,} bytes",
                    headers={"connection": "close"},
                )
                await response(scope, receive, send_logged)
                return
            replayed = False

            async def replay() -> dict:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_logged)
        finally:
            access_log.info(
                json.dumps(
                    {
                        "id": request_id,
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status,
                        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                        "batch_size": note["batch_size"],
                    }
                )
            )

    async def _read_body(self, headers: dict[bytes, bytes], receive: Callable) -> bytes | None:
        """The body, or None when it is over the bound. An oversized body is still read (and
        dropped) up to a few times the bound, so that the client, still sending, receives the
        413 rather than a reset connection; beyond that the connection is just closed."""
        declared = headers.get(b"content-length")
        drain_limit = _DRAIN_FACTOR * self.max_bytes
        with contextlib.suppress(ValueError):
            if declared is not None and int(declared) > drain_limit:
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= self.max_bytes:
                chunks.append(chunk)
            elif size > drain_limit:
                return None
            if not message.get("more_body", False):
                break
        return b"".join(chunks) if size <= self.max_bytes else None
