"""The production processes of vitrine, and nothing else.

- ``ingest/``, ``index/``, ``query/``: one process each, its pure logic beside its Faust wiring (``app``).
- ``runtime/``: what they share (Faust app and pages, reading a topic, exit 75, retries, stages,
  batching, memory, clients built from settings).
- ``vision/``: the models, pure tensor code behind protocols: no Faust, Kafka or network code.
- ``fetch``, ``dlq``, ``settings``, ``metrics``, ``exceptions``, ``cli`` (``vitrine worker KIND``).

May import ``streams`` and ``indexer``; never ``vitrine_tools`` (the dev stack, training, bench and
chaos import ``workers``, not the other way). Nothing runs at import: each process builds one frozen
``Settings`` at its entry point and passes it down.
"""

from __future__ import annotations

__all__: list[str] = []
