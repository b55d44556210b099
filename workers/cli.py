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


def run_worker(kind: str) -> None:
    from workers.settings import Settings

    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from streams.admin import ensure_topics
    from workers.apps import build_index_app, build_ingest_app, build_query_app, layout_for
    from workers.vision.pipeline import VisionPipeline

    vision = VisionPipeline.real(device=settings.device)
    layout = layout_for(settings, vision)
    ensure_topics(settings.kafka_bootstrap, settings.topics, client_options=settings.kafka_options())
    if kind == "ingest":
        vision.load()
        app = build_ingest_app(settings, vision)
    elif kind == "index":
        app = build_index_app(settings, layout)
    else:
        vision.load()
        app = build_query_app(settings, vision, layout)
    from faust import Worker

    Worker(app, loglevel=settings.log_level, quiet=True, override_logging=False).execute_from_commandline()


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
