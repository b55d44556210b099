"""How the ingest and index workers read their topic, and how a worker gives up.

``read_topic`` joins the consumer group (retried for ``kafka_wait_s``: a broker restarting), marks
the worker ready, then runs ``BatchSource.read_loop`` under ``workers.runtime.stages.supervise``
until the worker stops; it then commits what was acknowledged and leaves the group.

A stage that gives up or dies calls ``exit_tempfail``: the process exits at once with status 75
(EX_TEMPFAIL). Nothing unwritten was acknowledged, so the restart replays it (guarantee 1).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from streams.source import BatchSource, Record
from workers.runtime.retry import retrying
from workers.runtime.stages import supervise
from workers.settings import Settings

__all__ = ["batch_source", "exit_tempfail", "read_topic", "retry_until_done"]

log = logging.getLogger("vitrine")


def batch_source(settings: Settings, topic: str, group: str, handle: Callable[[Record], Awaitable[None]],
                 **hooks: Any) -> BatchSource:
    """The worker's ``BatchSource``; ``hooks`` are its ``on_revoke`` / ``on_assign``."""
    return BatchSource(topic, settings.kafka_bootstrap, group, handle, session_timeout_s=settings.session_timeout_s,
                       commit_interval_s=settings.commit_interval_s, **hooks, **settings.kafka_options())


async def read_topic(app: Any, source: BatchSource, settings: Settings) -> None:
    """Join the group and read until the worker stops; then commit what was acknowledged and leave."""
    async def join() -> None:
        try:
            await source.start()
        except Exception:
            await source.stop()  # a half-started consumer holds a connection
            raise

    await retry_until_done(join, f"joining the {source.group} group on {source.topic}",
                           give_up_after_s=settings.kafka_wait_s)
    from workers.metrics import watch_source

    watch_source(source, app.conf.id)
    reader = supervise(source.read_loop, app.conf.id, exit_tempfail)
    app.vitrine_ready["ok"] = True
    try:
        await asyncio.Future()  # until the worker stops: Faust cancels its tasks, then waits for them
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await source.stop()


def exit_tempfail(exc: BaseException) -> None:
    """Exit at once with EX_TEMPFAIL (a stage gave up or died): nothing unwritten was acknowledged, so a
    restart replays it."""
    logging.shutdown()
    os._exit(75)


async def retry_until_done(attempt: Callable[[], Awaitable[None]], what: str, *,
                           retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
                           give_up_after_s: float | None = None) -> None:
    """Await ``attempt()`` until it succeeds, backing off from 0.5 s to 5 s; past ``give_up_after_s``
    (when given) the worker exits with status 75, EX_TEMPFAIL."""
    try:
        async for trying in retrying(what, retry_on=retry_on, budget_s=give_up_after_s):
            with trying:
                await attempt()
    except retry_on as exc:
        log.critical("%s: gave up after %.0fs: %r", what, give_up_after_s or 0.0, exc)
        exit_tempfail(exc)
