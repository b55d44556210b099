"""Stage loops that fail loudly: a loop that dies takes the worker down instead of stalling it.

A pipeline stage is an endless asyncio task. Were one to end with an exception (a bug, a client
error nobody expected), the stages after it would wait forever: nothing acknowledged, the batcher
full, the agent blocked on ``put``, and ``/healthz`` still green. ``supervise`` starts the loop and,
should it ever end other than by cancellation, logs it and calls ``on_failure`` (the workers exit
with status 75, EX_TEMPFAIL, so the restart replays everything unacknowledged: nothing is lost).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from workers import metrics as m

__all__ = ["supervise"]

log = logging.getLogger("vitrine")


def supervise(loop: Callable[[], Coroutine[Any, Any, None]], worker: str,
              on_failure: Callable[[BaseException], Any] | None) -> asyncio.Task[None]:
    """Run ``loop()`` as a task; if it ends (an exception, or a return), report it to ``on_failure``."""
    name = getattr(loop, "__name__", "stage").strip("_")
    task = asyncio.ensure_future(loop())

    def ended(t: asyncio.Task[None]) -> None:
        if t.cancelled():
            return
        exc = t.exception() or RuntimeError(f"stage {name} returned; it must run until cancelled")
        log.critical("%s: stage %s died: %r", worker, name, exc, exc_info=exc)
        m.ERRORS.labels(worker, f"stage_{name}").inc()
        if on_failure is not None:
            on_failure(exc)

    task.add_done_callback(ended)
    return task
