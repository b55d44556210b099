"""The dev stack: real local services as child processes (``services``: Kafka, tansu, Milvus Lite,
MinIO or moto, Prometheus), the embedded stack of those plus the three workers (``stack``), the
demo on the bundled CC0 sample (``demo``, ``sample/``) and their commands (``cli``: ``up``, ``demo``)."""

from __future__ import annotations

__all__: list[str] = []
