"""The Faust app every worker runs: its web server with ``GET /metrics`` and ``GET /healthz``, and the
Kafka credentials for the configured security protocol.

``/healthz`` answers 503 until the worker sets ``app.vitrine_ready["ok"]`` (its reader joined the
group, or the query worker opened the collection), then 200.
"""

from __future__ import annotations

import ssl
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.admin import quiet_client_debug_logs
from workers.runtime.faust_app import make_app
from workers.settings import SecurityProtocol, Settings

__all__ = ["credentials", "worker_app"]


def worker_app(settings: Settings, name: str, *, consume: bool = False) -> Any:
    """The Faust app ``vitrine-<name>`` with the two pages; ``consume`` for a worker with Faust agents."""
    quiet_client_debug_logs()  # aiokafka's DEBUG records carry the SASL password
    app = make_app(
        f"vitrine-{name}", settings.kafka_bootstrap, web_host=settings.http_host, web_port=settings.http_port,
        data_dir=settings.data_dir, partitions=settings.partitions, replication=settings.replication_factor,
        session_timeout_s=settings.session_timeout_s,
        credentials=credentials(settings), consume=consume,
    )
    ready = {"ok": False}

    @app.page("/metrics")
    async def metrics(self: Any, request: Any) -> Any:
        return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(self: Any, request: Any) -> Any:
        return self.json({"worker": name, "ready": ready["ok"]}, status=200 if ready["ok"] else 503)

    app.vitrine_ready = ready
    return app


def credentials(settings: Settings) -> Any:
    """Faust's credentials for the security protocol that ``settings.kafka_options()`` gives kafka-python.

    The protocol decides, not the mechanism; Faust's ``SASLCredentials`` means SASL_SSL only when
    given an SSL context (without one it is SASL_PLAINTEXT: a SASL_SSL setting would go out in clear).
    """
    protocol = SecurityProtocol(settings.kafka_security_protocol)
    if protocol is SecurityProtocol.PLAINTEXT:
        return None
    import faust

    uses_ssl = protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile) if uses_ssl else None
    if protocol is SecurityProtocol.SSL:
        return faust.SSLCredentials(context)
    password = settings.kafka_password.get_secret_value() if settings.kafka_password else ""
    return faust.SASLCredentials(username=settings.kafka_username, password=password,
                                 mechanism=settings.kafka_sasl_mechanism, ssl_context=context)
