"""Micro-batching for asyncio stages: collect items until ``max_size`` or ``max_wait`` after the first.

Adaptive by construction: a consumer that is busy (the model running) lets items pile up in the
bounded queue, so its next ``take`` returns a full batch at once; an idle consumer gets small
batches after ``max_wait``, which keeps freshness low at low load. The bounded queue is also the
backpressure: a producer awaiting ``put`` stops consuming from Kafka while the model is behind.
"""

from __future__ import annotations

import asyncio
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    def __init__(self, max_size: int, max_wait_s: float, capacity: int | None = None) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self._queue: asyncio.Queue[T] = asyncio.Queue(capacity or max_size * 4)

    async def put(self, item: T) -> None:
        await self._queue.put(item)

    def qsize(self) -> int:
        return self._queue.qsize()

    async def take(self) -> list[T]:
        """Wait for one item, then gather more until the batch is full or ``max_wait_s`` has passed."""
        batch = [await self._queue.get()]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_size:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except TimeoutError:
                break
        return batch
