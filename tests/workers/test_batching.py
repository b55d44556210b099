from __future__ import annotations

import asyncio

from workers.runtime.batching import Batcher


def test_full_batch_returns_at_once_and_partial_after_wait():
    async def main():
        b: Batcher[int] = Batcher(4, max_wait_s=0.05, capacity=16)
        for i in range(6):
            await b.put(i)
        first = await b.take()
        second = await b.take()  # only two left: returns after max_wait with what it has
        return first, second

    first, second = asyncio.run(main())
    assert first == [0, 1, 2, 3] and second == [4, 5]


def test_put_blocks_when_full():
    async def main():
        b: Batcher[int] = Batcher(2, max_wait_s=0.01, capacity=2)
        await b.put(1)
        await b.put(2)
        blocked = asyncio.ensure_future(b.put(3))
        await asyncio.sleep(0.02)
        was_blocked = not blocked.done()
        await b.take()
        await asyncio.wait_for(blocked, 1)
        return was_blocked

    assert asyncio.run(main())
