"""One chaos stack for the chaos tests: its own Kafka (restarted by the crash test), Milvus Lite
server (taken away by the outage), MinIO and the three workers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vitrine_tools.chaos.harness import ChaosStack


@pytest.fixture(scope="session")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    stack = ChaosStack(tmp_path_factory.mktemp("chaos"), prefix="tchaos").start()
    yield stack
    stack.stop()
