"""Milvus: the collection schema, the version-guarded writer, and search with filters.

Owns invariants 2 (convergence to the newest version, tombstones) and 3 (application primary
keys) of ARCHITECTURE.md "Guarantees". Imports ``streams`` schemas only: no Faust, no Kafka,
no models. Nothing connects at import; ``ProductIndex.start()`` does.
"""

from __future__ import annotations

from indexer.exceptions import IndexUnavailable, ModelMismatch
from indexer.filters import build_filter
from indexer.guard import Outcome, plan_writes
from indexer.schema import IndexLayout
from indexer.store import ProductIndex, SearchHit

__all__ = [
    "IndexLayout",
    "IndexUnavailable",
    "ModelMismatch",
    "Outcome",
    "ProductIndex",
    "SearchHit",
    "build_filter",
    "plan_writes",
]
