"""The ingest process: ``pipeline`` (pure: triage, batching through the models, the enriched record)
and ``app`` (its Faust wiring: ``catalog.events`` -> ``index.enriched`` / ``catalog.dlq``)."""

from __future__ import annotations

__all__: list[str] = []
