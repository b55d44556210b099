"""The Kafka contract of vitrine: what other systems publish and read.

Owns the event and query schemas (``schema``), the topic set (``topics``), the
wire codecs (``codecs``), and the clients other systems use: ``CatalogPublisher``
for catalogue systems and ``QueryClient`` for request/reply search over Kafka.

Imports nothing of ours (no ``indexer``, no ``workers``): any catalogue system can
vendor this package alone. Importing it opens no sockets and reads no environment.
"""

from __future__ import annotations

from streams.exceptions import InvalidEvent, InvalidQuery, QueryTimeout, VitrineError
from streams.publisher import CatalogPublisher
from streams.query_client import QueryClient
from streams.schema import (
    SCHEMA_VERSION,
    DeleteEvent,
    Event,
    PatchEvent,
    SearchRequest,
    UpsertEvent,
    parse_event,
    parse_search_request,
)
from streams.topics import TopicSet

__all__ = [
    "SCHEMA_VERSION",
    "CatalogPublisher",
    "DeleteEvent",
    "Event",
    "InvalidEvent",
    "InvalidQuery",
    "PatchEvent",
    "QueryClient",
    "QueryTimeout",
    "SearchRequest",
    "TopicSet",
    "UpsertEvent",
    "VitrineError",
    "parse_event",
    "parse_search_request",
]
