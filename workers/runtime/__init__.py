"""What the three worker processes share: the Faust app with its pages (``app``), reading a topic and
giving up with exit 75 (``reading``), the one back-off (``retry``), stage supervision (``stages``),
micro-batching (``batching``), malloc tuning (``memory``) and building clients from settings (``wiring``).

Imports ``streams``, ``indexer`` and ``workers`` modules outside the process packages; never
``workers.ingest``, ``workers.index`` or ``workers.query``.
"""

from __future__ import annotations

__all__: list[str] = []
