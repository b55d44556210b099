"""Errors that steer the workers' streams.

``DeadLetter`` sends one event to ``catalog.dlq`` with its stage and reason; ``FetchError`` is a
``DeadLetter`` raised while fetching an image, ``transient`` when retrying may help (timeouts, 5xx,
an unavailable object store) and permanent otherwise (404, a forbidden address, bad content).
"""

from __future__ import annotations

from streams.exceptions import VitrineError


class DeadLetter(VitrineError):
    """Send this event to the dead-letter topic; the worker carries on with the next one."""

    def __init__(self, stage: str, reason: str, message: str) -> None:
        self.stage = stage
        self.reason = reason
        super().__init__(message)


class FetchError(DeadLetter):
    def __init__(self, reason: str, message: str, *, transient: bool = False) -> None:
        self.transient = transient
        super().__init__("fetch", reason, message)
