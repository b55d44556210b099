"""The index process: ``writer`` (batches enriched records into version-guarded Milvus writes, with
retries and flushes) and ``app`` (its Faust wiring: ``index.enriched`` -> Milvus / ``catalog.dlq``)."""

from __future__ import annotations

__all__: list[str] = []
