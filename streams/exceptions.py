"""Exceptions of the Kafka contract. ``VitrineError`` is the root of every vitrine error."""

from __future__ import annotations


class VitrineError(Exception):
    """Root of every error vitrine raises on purpose."""


class InvalidEvent(VitrineError):
    """A catalogue event does not follow the schema.

    Raised by ``parse_event``. The ingest worker sends the original bytes to the
    dead-letter topic with ``reason`` and ``field``; nothing to retry.
    """

    def __init__(self, reason: str, message: str, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class InvalidQuery(VitrineError):
    """A search request does not follow the schema; the caller gets an error reply naming the field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class QueryTimeout(VitrineError):
    """No reply arrived for a request within its deadline (``QueryClient.search``). Safe to retry."""


class PublishError(VitrineError):
    """The broker did not acknowledge a catalogue event (after the producer's own retries)."""
