"""The text-vector cache's metrics: read from the embedder at scrape time."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest

from workers.metrics import watch_text_cache


def test_text_cache_metrics_follow_the_embedder() -> None:
    registry = CollectorRegistry()
    embedder = SimpleNamespace(hits=0, misses=0, cached=0)
    watch_text_cache(embedder, registry)
    embedder.hits, embedder.misses, embedder.cached = 3, 2, 2
    text = generate_latest(registry).decode()
    assert 'vitrine_text_cache_lookups_total{result="hit"} 3.0' in text
    assert 'vitrine_text_cache_lookups_total{result="miss"} 2.0' in text
    assert "vitrine_text_cache_entries 2.0" in text
