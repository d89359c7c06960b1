"""The middleware in front of every request: a request id, the body size bound, and one JSON
access-log line per request."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from sentimodal.interfaces.server.errors import error_response

access_log = logging.getLogger("sentimodal.server.access")
#: an oversized body is read and dropped up to this many times the bound (see Guard)
_DRAIN_FACTOR = 4
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Guard:
    """Pure ASGI middleware: request id, body size bound, one JSON access-log line per request.

    The body is read here up to ``max_bytes`` (a larger declared or streamed body is refused
    with 413 before the app sees any of it), then replayed to the app.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

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

        async def send_logged(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            body = await self._read_body(headers, receive)
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
