"""Per-host politeness: at most N requests in flight to one host, and a start rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class HostLimiter:
    """``with limiter.slot(host):`` waits for one of the host's ``per_host`` slots and for its
    turn under ``rate`` starts per second (None: no rate limit)."""

    def __init__(self, per_host: int, rate: float | None = None) -> None:
        self.per_host = per_host
        self.interval = 1.0 / rate if rate else 0.0
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._next_start: dict[str, float] = {}

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        with self._lock:
            semaphore = self._slots.get(host)
            if semaphore is None:
                semaphore = self._slots[host] = threading.BoundedSemaphore(self.per_host)
        with semaphore:
            if self.interval:
                with self._lock:
                    now = time.monotonic()
                    start = max(now, self._next_start.get(host, now))
                    self._next_start[host] = start + self.interval
                time.sleep(max(0.0, start - now))
            yield
