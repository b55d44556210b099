"""``vitrine``: run a worker, the embedded stack, the demo, or a query.

    vitrine worker {ingest,index,query}   one worker process (settings from VITRINE_* variables)
    vitrine up                            tansu + Milvus Lite server + the three workers, until Ctrl-C
    vitrine demo                          up + publish the bundled sample + queries + figures
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workers.settings import Settings


#: Set across an in-place restart (``os.execv``): "<restarts> <start time>" of this worker process.
_RESTARTS_ENV = "VITRINE_WORKER_KAFKA_RESTARTS"


def run_worker(kind: str) -> None:
    """One worker process. Kafka not reachable is waited out, not a crash (see ``_restart_in_place``)."""
    from workers.settings import Settings

    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from streams.admin import ensure_topics, wait_for_broker
    from workers.apps import build_index_app, build_ingest_app, build_query_app, layout_for
    from workers.vision.pipeline import VisionPipeline

    started = time.time()
    vision = VisionPipeline.real(device=settings.device, dtype=settings.model_dtype,
                                 text_cache=settings.text_cache_size)
    logging.getLogger("vitrine").info("%s worker: models on %s in %s", kind, settings.device, vision.dtype)
    layout = layout_for(settings, vision)
    wait_for_broker(settings.kafka_bootstrap, settings.kafka_wait_s, client_options=settings.kafka_options())
    ensure_topics(settings.kafka_bootstrap, settings.topics, client_options=settings.kafka_options())
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

    from workers.memory import freeze_startup_heap

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


def cmd_up(args: argparse.Namespace) -> None:
    from workers.stack import LocalStack

    stack = LocalStack(Path(args.data_dir), env=_demo_env())
    with stack:
        print(f"vitrine is up: kafka {stack.kafka_bootstrap}, milvus {stack.milvus_uri}")
        for kind, w in stack.workers.items():
            print(f"  {kind:6s} {w.http}/metrics  (pid {w.process.pid}, log {w.log_path})")
        print("Ctrl-C to stop.")
        stop = {"now": False}
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        try:
            while not stop["now"]:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


def _demo_env() -> dict[str, str]:
    from workers.demo import SAMPLE_DIR

    return {"VITRINE_FETCH_ALLOW_FILE": "true", "VITRINE_FETCH_FILE_ROOT": str(SAMPLE_DIR)}


#: Modules that add subcommands: each defines ``register(subparsers)`` (parsers set ``func``).
COMMAND_MODULES = ("workers.train_cli", "workers.eval_cli", "workers.bench_cli", "workers.chaos_cli")


def main(argv: list[str] | None = None) -> None:
    import importlib

    from workers.memory import keep_freed_memory

    keep_freed_memory()  # before any thread starts: see workers.memory

    parser = argparse.ArgumentParser(prog="vitrine", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker", help="run one worker process")
    w.add_argument("kind", choices=["ingest", "index", "query"])
    w.set_defaults(func=lambda a: run_worker(a.kind))
    up = sub.add_parser("up", help="start the embedded stack until Ctrl-C")
    up.add_argument("--data-dir", default=".vitrine/stack")
    up.set_defaults(func=cmd_up)
    demo = sub.add_parser("demo", help="start the embedded stack, index the sample, run queries")
    demo.add_argument("--data-dir", default=".vitrine/demo")
    demo.add_argument("--limit", type=int, default=0, help="publish only this many sample products (0 = all)")
    demo.add_argument("--json", default=None, help="also write the final figures to this file")
    demo.set_defaults(func=cmd_demo)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    args = parser.parse_args(argv)
    if args.cmd != "worker":  # SIGTERM unwinds like Ctrl-C, so stacks stop the processes they started
        signal.signal(signal.SIGTERM, _raise_exit)
    result = args.func(args)
    if isinstance(result, int):
        sys.exit(result)


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def cmd_demo(args: argparse.Namespace) -> int:
    from workers.demo import run_demo

    return run_demo(Path(args.data_dir), limit=args.limit, json_path=args.json, env=_demo_env())


if __name__ == "__main__":
    main()
