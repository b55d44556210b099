"""Search quality through the real query path: ``vitrine eval text`` (Myntra's MRR, MAP, NDCG, P@50,
R@50 for hybrid text search against BM25 alone and dense alone) and ``vitrine eval modifier``
(DeepStyle-style photo + text modifier against image only and text only).

``gallery`` indexes a catalogue CSV into a Milvus Lite server with the workers' own record
builder and ``ProductIndex``; ``metrics`` holds the graded-relevance measures; the suites call
``workers.query.service.QueryService``, the code the query worker runs.
"""

from __future__ import annotations

__all__: list[str] = []
