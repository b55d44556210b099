"""The one back-off of the workers: capped exponential waits within a time budget (tenacity).

Every retry loop of the runtime (joining the consumer group, opening the collection, a Milvus
write, an image fetch) is ``retrying(...)``: waits double from ``first_s`` up to ``cap_s``; the
last failure is re-raised as it was once the next wait would end past ``budget_s`` (and, when
``min_tries`` is given, only after that many tries). ``budget_s=None`` retries for ever.
Each retry is logged at WARNING with ``what`` and counted by ``on_retry`` when given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    stop_never,
    wait_exponential,
)

__all__ = ["retrying"]

log = logging.getLogger("vitrine")


def retrying(what: str, *, retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
             when: Callable[[BaseException], bool] | None = None, first_s: float = 0.5, cap_s: float = 5.0,
             budget_s: float | None = None, min_tries: int = 1,
             on_retry: Callable[[BaseException], None] | None = None) -> AsyncRetrying:
    """An ``AsyncRetrying`` to use as ``async for attempt in retrying(...): with attempt: ...``.

    ``when`` narrows ``retry_on`` (for instance to transient errors only)."""
    if budget_s is None:
        stop = stop_never
    elif min_tries > 1:
        stop = stop_after_attempt(min_tries) & stop_before_delay(budget_s)
    else:
        stop = stop_before_delay(budget_s)
    retry = retry_if_exception_type(retry_on)
    if when is not None:
        retry = retry & retry_if_exception(when)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s failed (%r); retrying in %.1fs", what, exc, wait)
        if on_retry is not None and exc is not None:
            on_retry(exc)

    return AsyncRetrying(stop=stop, wait=wait_exponential(multiplier=first_s, min=first_s, max=cap_s),
                         retry=retry, before_sleep=before_sleep, reraise=True)
