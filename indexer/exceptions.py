"""Errors of the index layer."""

from __future__ import annotations

from streams.exceptions import VitrineError


class IndexUnavailable(VitrineError):
    """Milvus did not answer or refused a write. Transient: the index agent retries with backoff and
    commits no offset meanwhile, so nothing is lost (the events are consumed again after a crash)."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ModelMismatch(VitrineError):
    """The collection behind the alias was built by another model version than the querying worker's:
    its query vectors would be meaningless there. Deploy the matching worker or swap the alias."""


class NoStyleVectors(VitrineError):
    """The served collection has no ``style_vec`` field: its model has no style (compatibility) head,
    so no look can be completed from it. Every other query works on it."""
