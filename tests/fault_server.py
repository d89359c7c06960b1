"""A fault-injecting HTTP server on 127.0.0.1 for the network tests and the download benchmark.

Each path gets a behaviour: a function ``(handler, n)`` where ``n`` counts the requests to that
path so far (1 for the first), so "500 then 200" or "429 once" are one line. The server logs
every request (method, path) so that tests can compare what the client did, request for
request, with what the server saw.
"""

from __future__ import annotations

import http.server
import io
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from PIL import Image

Behaviour = Callable[["FaultHandler", int], None]


def jpeg_bytes(
    width: int = 32, height: int = 24, colour: tuple[int, int, int] = (200, 60, 30)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    # a few rows of compressed zeros: the header alone decides the refusal
    rows = zlib.compress(b"\0" * (1 + 3 * min(width, 1000)) * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


class FaultHandler(http.server.BaseHTTPRequestHandler):
    server: FaultServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet tests
        pass

    def _serve(self) -> None:
        path = self.path.split("?", 1)[0]
        n = self.server.record(self.command, path)
        if self.server.latency:
            time.sleep(self.server.latency)
        behaviour = self.server.routes.get(path)
        if behaviour is None:
            self.send_status(404)
            return
        behaviour(self, n)

    do_GET = _serve
    do_HEAD = _serve

    # building blocks for behaviours
    def send_body(
        self, body: bytes, content_type: str = "image/jpeg", status: int = 200, **headers: str
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_status(self, status: int, **headers: str) -> None:
        self.send_body(b"", "text/plain", status, **headers)


class FaultServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FaultHandler)
        self.routes: dict[str, Behaviour] = {}
        self.log: list[tuple[str, str]] = []
        self.latency = 0.0
        self._lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that give up early (as they should) are not errors here

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def record(self, method: str, path: str) -> int:
        with self._lock:
            self.log.append((method, path))
            return sum(1 for _, p in self.log if p == path)

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(p for _, p in self.log)


@contextmanager
def running_server() -> Iterator[FaultServer]:
    server = FaultServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# behaviours
def ok(body: bytes, content_type: str = "image/jpeg") -> Behaviour:
    return lambda h, n: h.send_body(body, content_type)


def status(code: int, **headers: str) -> Behaviour:
    return lambda h, n: h.send_status(code, **headers)


def fail_then_ok(failures: int, code: int, body: bytes, **headers: str) -> Behaviour:
    """``failures`` answers of ``code`` (with ``headers``), then ``body``."""

    def behave(h: FaultHandler, n: int) -> None:
        if n <= failures:
            h.send_status(code, **headers)
        else:
            h.send_body(body)

    return behave


def redirect(location: str, code: int = 302) -> Behaviour:
    return lambda h, n: h.send_status(code, Location=location)


def drip(body: bytes, interval: float) -> Behaviour:
    """Headers at once, then the body one byte per ``interval`` seconds."""

    def behave(h: FaultHandler, n: int) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.flush()
        try:
            for i in range(len(body)):
                h.wfile.write(body[i : i + 1])
                h.wfile.flush()
                time.sleep(interval)
        except OSError:
            pass  # the client gave up, as it should

    return behave


def truncated(body: bytes) -> Behaviour:
    """Promises the whole body, sends half of it, and closes the connection."""

    def behave(h: FaultHandler, n: int) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body[: len(body) // 2])
        h.wfile.flush()
        h.close_connection = True
        h.connection.shutdown(socket.SHUT_RDWR)

    return behave


def unsized(body: bytes) -> Behaviour:
    """No Content-Length: the body runs until the connection closes."""

    def behave(h: FaultHandler, n: int) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Connection", "close")
        h.end_headers()
        with suppress(OSError):
            h.wfile.write(body)
        h.close_connection = True

    return behave
