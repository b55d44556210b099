"""Micro-batching for asyncio stages: collect items until ``max_size`` or ``max_wait`` after the first.

Adaptive by construction: a consumer that is busy (the model running) lets items pile up in the
bounded queue, so its next ``take`` returns a full batch at once; an idle consumer gets small
batches after ``max_wait``, which keeps freshness low at low load. The bounded queue is also the
backpressure: a producer awaiting ``put`` stops consuming from Kafka while the model is behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    """``weigh`` says how much of a batch an item uses (default 1): light items such as patches, which
    need no model work, can weigh little, so one batch carries many of them beside ``max_size`` images."""

    def __init__(self, max_size: int, max_wait_s: float, capacity: int | None = None,
                 weigh: Callable[[T], float] | None = None) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self._weigh = weigh or (lambda _: 1.0)
        self._queue: asyncio.Queue[T] = asyncio.Queue(capacity or max_size * 4)

    async def put(self, item: T) -> None:
        try:
            self._queue.put_nowait(item)  # the common case, without a coroutine of the queue's own
        except asyncio.QueueFull:
            await self._queue.put(item)

    def qsize(self) -> int:
        return self._queue.qsize()

    async def take(self) -> list[T]:
        """Wait for one item, then gather more until the batch is full or ``max_wait_s`` has passed."""
        first = await self._queue.get()
        batch, used = [first], self._weigh(first)
        deadline = time.monotonic() + self.max_wait_s
        while used < self.max_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), left)
                except TimeoutError:
                    break
            batch.append(item)
            used += self._weigh(item)
        return batch
