"""A stage loop that dies takes the worker down (``on_failure``) instead of stalling it silently."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.workers.pipeline_run import run_pipeline
from workers.runtime.stages import supervise
from workers.vision.fakes import fake_pipeline


def test_a_loop_that_raises_or_returns_is_reported_and_a_cancelled_one_is_not() -> None:
    failures: list[BaseException] = []

    async def raises() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    async def returns() -> None:
        return None

    async def forever() -> None:
        await asyncio.sleep(3600)

    async def main() -> None:
        tasks = [supervise(loop, "test", failures.append) for loop in (raises, returns, forever)]
        await asyncio.wait(tasks[:2])  # their done callbacks were registered first, so they run first
        tasks[2].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)

    asyncio.run(main())
    assert sorted(type(e).__name__ for e in failures) == ["RuntimeError", "ValueError"]
    assert any("returned" in str(e) for e in failures)


def test_an_emit_that_fails_stops_the_ingest_worker_with_nothing_acknowledged(tmp_path: Path) -> None:
    failures: list[BaseException] = []

    async def emit(out: Any) -> None:
        raise ConnectionError("the producer gave up")

    patch = {"schema_version": 1, "occurred_at": 1.0, "type": "patch", "product_id": "a", "version": 2,
             "fields": {"price": 2.0}}
    acked = run_pipeline(tmp_path, [patch], emit, vision=fake_pipeline(), until=lambda: bool(failures),
                         max_batch=2, max_wait_s=0.005, on_failure=failures.append)
    assert len(failures) == 1 and isinstance(failures[0], ConnectionError)
    assert acked == []
