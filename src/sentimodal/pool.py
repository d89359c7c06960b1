"""An ordered map over a process pool that holds a bounded number of chunks at a time.

``multiprocessing.Pool.imap`` reads its whole input ahead and keeps every finished result
until the consumer takes it, so over millions of files its memory grows with the input. Here
at most ``window`` chunks are queued, running or finished-but-not-taken at any time, and the
results come back in input order, so what the consumer sees does not depend on the number of
workers. Workers are spawned (never forked from a process that may run threads).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: default number of worker processes at most (the collecting process becomes the limit)
MAX_DEFAULT_WORKERS = 8


def available_cores() -> int:
    """CPU cores this process may use (respects affinity masks and container cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """The cores this process may run on, at most :data:`MAX_DEFAULT_WORKERS`."""
    return max(1, min(available_cores(), MAX_DEFAULT_WORKERS))


def ordered_map(
    func: Callable[[list[T]], list[R]],
    items: Iterable[T],
    workers: int,
    chunk_size: int = 128,
    window: int | None = None,
) -> Iterator[R]:
    """``func`` applied to consecutive chunks of ``items``, results flattened in input order.

    With ``workers`` <= 1 the chunks are mapped in this process; otherwise in that many
    spawned processes, so ``func`` must be a module-level function (pickled by name) and the
    items and results picklable. At most ``window`` chunks (default 4 per worker) are in
    flight. Closing the iterator early cancels what has not started and waits for the rest.
    """
    chunks = _chunks(items, chunk_size)
    if workers <= 1:
        for chunk in chunks:
            yield from func(chunk)
        return
    window = window or 4 * workers
    context = multiprocessing.get_context("spawn")
    pending: deque[Future[list[R]]] = deque()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        try:
            for chunk in chunks:
                pending.append(pool.submit(func, chunk))
                if len(pending) >= window:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        except BrokenProcessPool as exc:
            raise BrokenProcessPool(
                f"a worker process ended abruptly ({exc}): out of memory, killed, or a script "
                "that starts this work without `if __name__ == '__main__':` (spawned workers "
                "import the main script again)"
            ) from exc
        finally:
            for future in pending:
                future.cancel()


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
