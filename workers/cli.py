"""``vitrine worker {ingest,index,query}``: one production worker process.

Settings come from ``VITRINE_*`` variables (``vitrine worker KIND --help`` lists them). A bad value
prints one line per problem and exits 2; a ``VITRINE_*`` variable that is no setting is reported
at WARNING. ``python -m workers.cli worker KIND`` is the same command without the tooling (the
``vitrine`` entry point is ``vitrine_tools.cli``, which adds ``up``, ``demo``, ``train``, ...).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workers.settings import Settings


#: Set across an in-place restart (``os.execv``): "<restarts> <start time>" of this worker process.
_RESTARTS_ENV = "VITRINE_WORKER_KAFKA_RESTARTS"


def run_worker(kind: str) -> None:
    """One worker process. Kafka not reachable is waited out, not a crash (see ``_restart_in_place``)."""
    from workers.settings import SettingsError, load_settings, unknown_variables

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"vitrine worker {kind}: bad settings:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log = logging.getLogger("vitrine")
    for name in unknown_variables(os.environ):
        log.warning("%s is not a vitrine setting: ignored (misspelt? `vitrine worker %s --help` lists them)",
                    name, kind)
    from workers.runtime.memory import keep_freed_memory

    if settings.keep_freed_memory:
        keep_freed_memory()  # before the models' threads start: see workers.runtime.memory
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from streams.admin import ensure_topics, wait_for_broker
    from workers.index.app import build_index_app
    from workers.ingest.app import build_ingest_app
    from workers.query.app import build_query_app
    from workers.runtime.wiring import layout_for, vision_for

    started = time.time()
    from workers.vision.exceptions import ModelWeightsMissing

    try:
        vision = vision_for(settings)
    except ModelWeightsMissing as exc:  # never the untrained models into the trained collection
        log.critical("%s worker refuses to start: %s", kind, exc)
        raise SystemExit(2) from None
    log.info("%s worker: models on %s in %s, model version %s", kind, settings.device, vision.dtype,
             vision.model_version)
    log.info("%s worker: file:// images %s", kind,
             f"allowed under {settings.fetch_file_root}" if settings.fetch_allow_file else "not allowed")
    layout = layout_for(settings, vision)
    wait_for_broker(settings.kafka_bootstrap, settings.kafka_wait_s, client_options=settings.kafka_options())
    topic_set = settings.topics.for_model(layout.model_key) if kind in ("ingest", "index") else settings.topics
    topics = ensure_topics(settings.kafka_bootstrap, topic_set, client_options=settings.kafka_options())
    for name, drift in topics.drift.items():  # a worker never alters topics: `vitrine topics ensure` does
        log.warning("topic %s differs from its spec: %s (vitrine topics ensure)", name, "; ".join(drift))
    if kind in ("ingest", "query"):
        from workers.metrics import watch_text_cache

        watch_text_cache(vision.text)
    if kind == "ingest":
        vision.load()
        app = build_ingest_app(settings, vision)
    elif kind == "index":
        app = build_index_app(settings, layout)
    else:
        vision.load()
        app = build_query_app(settings, vision, layout)
    from faust import Worker

    from workers.runtime.memory import freeze_startup_heap

    frozen = freeze_startup_heap()  # the models' objects: no longer walked by every full collection
    logging.getLogger("vitrine").info("%s worker: %d startup objects frozen", kind, frozen)

    try:
        Worker(app, loglevel=settings.log_level, quiet=True, override_logging=False).execute_from_commandline()
    except (Exception, SystemExit) as exc:  # Faust's runner turns a crash into SystemExit(1) from the error
        cause = None if isinstance(exc, SystemExit) and exc.code in (0, None) else _kafka_failure(exc)
        if cause is None:
            raise
        _restart_in_place(kind, settings, cause, started)


def _kafka_failure(exc: BaseException) -> BaseException | None:
    """The Kafka client error that ``exc`` is or came from (the broker, not this worker, failed), or None."""
    from aiokafka.errors import KafkaError as AioKafkaError
    from kafka.errors import KafkaError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AioKafkaError | KafkaError | ConnectionError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _restart_in_place(kind: str, settings: Settings, exc: BaseException, started: float) -> None:
    """Faust gives up when the broker fails while it starts (a broker restart answers NodeNotReady for a
    moment): wait for the broker, then start this worker afresh in the same process (``os.execv``), so
    a broker restart never crashes a worker. Nothing was acknowledged that was not written, so the new
    start simply resumes from the committed offsets. Bounded: ``kafka_wait_s`` of trying, then exit 1."""
    from streams.admin import wait_for_broker

    log = logging.getLogger("vitrine")
    restarts, first = 0, started
    if prev := os.environ.get(_RESTARTS_ENV):
        n, t = prev.split()
        if started - float(t) < settings.kafka_wait_s:
            restarts, first = int(n), float(t)
    if time.time() - first > settings.kafka_wait_s:
        log.critical("Kafka kept failing for %.0fs: giving up (%r)", time.time() - first, exc)
        raise SystemExit(1) from exc
    log.warning("Kafka failed under the starting %s worker (%r): waiting for the broker, then restarting "
                "in place (restart %d)", kind, exc, restarts + 1)
    wait_for_broker(settings.kafka_bootstrap, settings.kafka_wait_s,
                    client_options=settings.kafka_options())
    time.sleep(min(2.0 ** restarts, 10.0))
    os.environ[_RESTARTS_ENV] = f"{restarts + 1} {first}"
    logging.shutdown()
    os.execv(sys.executable, [sys.executable, "-m", "workers.cli", "worker", kind])


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``worker KIND`` to a ``vitrine`` parser."""
    from workers.settings import describe_settings

    w = sub.add_parser("worker", help="run one worker process (ingest, index or query)",
                       description="Run one worker process. Its settings, from the environment:\n"
                       + describe_settings(), formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("kind", choices=["ingest", "index", "query"])
    w.set_defaults(func=lambda a: run_worker(a.kind))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
