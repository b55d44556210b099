"""Create the topic set on a broker (idempotent): used by the embedded stack, tests and deployments."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from streams.topics import TopicSet


def ensure_topics(bootstrap: str, topics: TopicSet, *, client_options: Mapping[str, Any] | None = None,
                  timeout: float = 60.0) -> list[str]:
    """Create every topic of ``topics`` that does not exist yet; return the names created."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, **dict(client_options or {}))
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        have = set(admin.list_topics())
        new = [NewTopic(s.name, s.partitions, 1) for s in topics.specs() if s.name not in have]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
        return [t.name for t in new]
    finally:
        admin.close()
