"""Drive an ``IngestPipeline`` with raw events in offset order, until every one is acknowledged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from streams.codecs import SourceRef
from workers.fetch import FetchPolicy, ImageFetcher
from workers.ingest.pipeline import IngestPipeline, Work, triage


def run_pipeline(root: Path, raws: list[Any], emit: Callable[[Any], Awaitable[None]], *, vision: Any,
                 versions: MutableMapping[str, int] | None = None, until: Callable[[], bool] | None = None,
                 timeout_s: float = 5.0, **options: Any) -> list[int]:
    """Put ``raws`` (dicts as JSON, strings as they are) at offsets 0.. of one partition through a
    pipeline (``options``: ``IngestPipeline`` keywords), wait until all are acknowledged or ``until()``,
    stop it, and return the acknowledged offsets in acknowledgement order."""
    acked: list[int] = []
    done = until or (lambda: len(acked) == len(raws))

    async def main() -> None:
        fetcher = ImageFetcher(FetchPolicy(allow_file=True, file_root=root))
        await fetcher.start()
        pipeline = IngestPipeline(vision, fetcher, emit, **options)
        pipeline.start()
        try:
            for offset, doc in enumerate(raws):
                raw = doc.encode() if isinstance(doc, str) else json.dumps(doc).encode()
                work = Work(raw, SourceRef("events", 0, offset), None, lambda o=offset: acked.append(o))
                await pipeline.put(triage(work, {} if versions is None else versions))
            for _ in range(int(timeout_s / 0.01)):
                if done():
                    break
                await asyncio.sleep(0.01)
        finally:
            await pipeline.stop()
            await fetcher.close()

    asyncio.run(main())
    return acked
