"""The processes of vitrine: ingest, index and query agents, image fetching, metrics, settings, CLI.

May import everything (``streams``, ``indexer``). ``workers/vision`` is the exception inside it:
pure tensor code that imports no Faust, Kafka or network code. Nothing runs at import: each
process builds one frozen ``Settings`` at its entry point and passes it down.
"""

from __future__ import annotations

__all__: list[str] = []
