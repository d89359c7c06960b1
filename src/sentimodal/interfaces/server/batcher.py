"""Micro-batching: concurrent requests share forward passes, off the event loop.

Requests wait in a bounded queue (full: the caller is told at once, never unbounded memory).
One collector task takes the first waiting request, waits up to a short window for more (up to
a maximum number of posts), and hands them as one batch to a single model thread, so that the
event loop keeps accepting and answering while the model computes, and under load each forward
pass carries many posts (throughput near the batch rate).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


class QueueFull(Exception):
    """The queue of waiting requests is at its bound."""


@dataclass
class _Job:
    payload: Any
    size: int
    key: Hashable
    future: asyncio.Future


class MicroBatcher:
    """Collect jobs into batches and run ``run(key, payloads) -> results`` in one thread.

    Jobs are only batched with jobs of the same ``key`` (e.g. the same free label list);
    ``run`` returns one result per payload, in order.
    """

    def __init__(
        self,
        run: Callable[[Hashable, list[Any]], list[Any]],
        *,
        max_batch: int = 32,
        window_s: float = 0.004,
        queue_size: int = 64,
    ) -> None:
        self.run = run
        self.max_batch = max_batch
        self.window_s = window_s
        self.queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=queue_size)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.task: asyncio.Task | None = None
        #: posts in the batch run last
        self.last_batch_size = 0

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._collect())

    async def stop(self) -> None:
        """Finish every queued job, then stop the collector and the model thread."""
        if self.task is not None:
            await self.queue.put(None)
            await self.task
        self.executor.shutdown(wait=True)

    async def submit(self, payload: Any, *, size: int = 1, key: Hashable = None) -> Any:
        """Queue one job and wait for ``(result, posts in the batch it ran in)``; raises
        QueueFull at once when the queue is at its bound."""
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait(_Job(payload, size, key, future))
        except asyncio.QueueFull:
            raise QueueFull from None
        return await future

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        carry: _Job | None = None
        stopping = False
        while not stopping:
            first = carry or await self.queue.get()
            carry = None
            if first is None:
                break
            jobs, size = [first], first.size
            deadline = loop.time() + self.window_s
            while size < self.max_batch:
                try:
                    job = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(self.queue.get(), left)
                    except TimeoutError:
                        break
                if job is None:
                    stopping = True
                    break
                if job.key != first.key or size + job.size > self.max_batch:
                    carry = job
                    break
                jobs.append(job)
                size += job.size
            jobs = [job for job in jobs if not job.future.cancelled()]  # timed out meanwhile
            if jobs:
                await self._run(loop, jobs)
        # drain what arrived after the stop signal was queued behind it
        while not self.queue.empty():
            job = self.queue.get_nowait()
            if job is not None and not job.future.done():
                await self._run(loop, [job])
        if carry is not None and not carry.future.done():
            await self._run(loop, [carry])

    async def _run(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]) -> None:
        self.last_batch_size = sum(job.size for job in jobs)
        try:
            results = await loop.run_in_executor(
                self.executor, self.run, jobs[0].key, [job.payload for job in jobs]
            )
        except Exception as exc:  # the whole batch failed: every waiting request hears why
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        for job, result in zip(jobs, results, strict=True):
            if not job.future.done():
                job.future.set_result((result, self.last_batch_size))
