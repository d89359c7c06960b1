"""Connections under bounds: how many may be open, and how long one may take to send its
request's headers; and the uvicorn config that applies them (``serve`` and the tests use it).

uvicorn accepts every connection and waits for its headers for ever: a thousand idle or
slowly-writing clients take every file descriptor, after which the server can neither accept
nor answer (not even /health). Here a connection over ``max_connections`` (kept below the
process's file limit) is answered 503 and closed at once, and one that has not sent a whole
request head ``header_timeout_s`` after connecting, or after its previous answer, is closed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import resource
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from sentimodal.interfaces.server.settings import ServerSettings

#: file descriptors kept for everything but client connections (model files, the listening
#: socket, thread pools, logs)
FD_RESERVE = 64
_BUSY_BODY = b'{"error":{"code":"too_many_connections","message":"retry shortly"}}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 1\r\nconnection: close\r\ncontent-length: "
    + str(len(_BUSY_BODY)).encode()
    + b"\r\n\r\n"
    + _BUSY_BODY
)


_OUT_OF_FILES = (errno.EMFILE, errno.ENFILE)


def quiet_file_limit(loop: asyncio.AbstractEventLoop) -> None:
    """Make the file limit a wait, not a flood of tracebacks: when an accept finds every file
    descriptor taken (a burst of clients faster than the loop closes over-cap ones: asyncio
    accepts ``backlog`` sockets per wake-up, and more wake-ups may come before their closes
    run), asyncio already stops accepting for a second and retries; this logs that as one
    line, at most once a minute, and leaves every other loop error to the usual handler."""
    last = -math.inf
    log = logging.getLogger("sentimodal.server")

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        nonlocal last
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_FILES:
            if loop.time() - last >= 60:
                last = loop.time()
                limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
                log.warning(
                    "connections: the file limit (%s) is reached; new connections wait a "
                    "second (raise it with ulimit -n, or lower max_connections)",
                    limit,
                )
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


def connection_limit(wanted: int, backlog: int) -> int:
    """``wanted``, lowered to what the file limit (RLIMIT_NOFILE) leaves after the reserve and
    the backlog: asyncio accepts up to ``backlog`` sockets in one wake-up before any of them
    is seen (and an over-cap one closed), so that many may be open above the cap at once."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FD_RESERVE - backlog))


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap and a deadline for request heads (the
    subclass made by :func:`bounded_protocol` sets both)."""

    max_connections = 512
    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:
            transport.write(_BUSY)
            transport.close()
            return
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        """Close the connection unless a new request's head has arrived by the deadline."""
        if self._head_timer is not None:
            self._head_timer.cancel()
        waiting_after = self.cycle
        self._head_timer = self.loop.call_later(
            self.header_timeout_s, self._head_deadline, waiting_after
        )

    def _head_deadline(self, waiting_after: Any) -> None:
        self._head_timer = None
        idle = self.cycle is waiting_after and (self.cycle is None or self.cycle.response_complete)
        if idle and not self.transport.is_closing():
            self.transport.close()


def bounded_protocol(max_connections: int, header_timeout_s: float) -> type[H11Protocol]:
    """The protocol class for uvicorn's ``http`` setting, with these bounds."""
    return type(
        "BoundedH11Protocol",
        (BoundedH11Protocol,),
        {"max_connections": max_connections, "header_timeout_s": header_timeout_s},
    )


def uvicorn_config(app: Any, host: str, port: int, settings: ServerSettings) -> uvicorn.Config:
    """How the app is served: bounded connections and head time, the backlog, the shutdown
    grace; no uvicorn access log (the app writes its own)."""
    protocol = bounded_protocol(
        connection_limit(settings.max_connections, settings.backlog), settings.header_timeout_s
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        backlog=settings.backlog,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
    )
