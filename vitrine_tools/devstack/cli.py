"""``vitrine up`` and ``vitrine demo``: the embedded stack for a person at a terminal.

``up`` starts tansu, the Milvus Lite server and the three workers and prints where each listens,
the query URL and what ``file://`` image URIs may read. Settings the user exported (``VITRINE_*``)
win over the stack's defaults: ``VITRINE_FETCH_ALLOW_FILE=true VITRINE_FETCH_FILE_ROOT=<folder>``
lets the workers read that folder instead of the bundled sample. Ports are picked afresh unless given.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = ["register", "stack_env"]


def stack_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The stack's defaults for the workers, less what the user already set in ``environ``: file://
    images under the bundled sample folder unless the user chose their own fetch settings."""
    from vitrine_tools.devstack.demo import SAMPLE_DIR

    defaults = {"VITRINE_FETCH_ALLOW_FILE": "true", "VITRINE_FETCH_FILE_ROOT": str(SAMPLE_DIR)}
    if any(k in environ for k in defaults):
        return {}
    return defaults


def cmd_up(args: argparse.Namespace) -> None:
    from vitrine_tools.devstack.stack import LocalStack

    env = stack_env(os.environ)
    ports = None if args.http_port is None else {"ingest": args.http_port, "index": args.http_port + 1,
                                                 "query": args.http_port + 2}
    stack = LocalStack(Path(args.data_dir), env=env, kafka_port=args.kafka_port, milvus_port=args.milvus_port,
                       worker_ports=ports)
    with stack:
        merged = {**os.environ, **env}
        allow = merged.get("VITRINE_FETCH_ALLOW_FILE", "false").lower() in ("1", "true", "yes", "on")
        print(f"vitrine is up: kafka {stack.kafka_bootstrap}, milvus {stack.milvus_uri}")
        for kind, w in stack.workers.items():
            print(f"  {kind:6s} {w.http}/metrics  (pid {w.process.pid}, log {w.log_path})")
        print(f"  search: POST {stack.workers['query'].http}/search"
              if "query" in stack.workers else "")
        print(f"  file:// images: {'allowed under ' + merged.get('VITRINE_FETCH_FILE_ROOT', '?') if allow else 'not allowed'}")
        print("Ctrl-C to stop.")
        stop = {"now": False}
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        try:
            while not stop["now"]:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


def cmd_demo(args: argparse.Namespace) -> int:
    from vitrine_tools.devstack.demo import SAMPLE_DIR, run_demo

    # the demo publishes the bundled sample's files: it always reads them from their own folder
    env = {"VITRINE_FETCH_ALLOW_FILE": "true", "VITRINE_FETCH_FILE_ROOT": str(SAMPLE_DIR)}
    return run_demo(Path(args.data_dir), limit=args.limit, json_path=args.json, env=env)


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="start the embedded stack until Ctrl-C", description=__doc__,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    up.add_argument("--data-dir", default=".vitrine/stack")
    up.add_argument("--kafka-port", type=int, default=None, help="tansu's port (default: a free one)")
    up.add_argument("--milvus-port", type=int, default=None, help="the Milvus Lite server's port (default: a free one)")
    up.add_argument("--http-port", type=int, default=None,
                    help="the ingest worker's HTTP port; index and query take the next two (default: free ones)")
    up.set_defaults(func=cmd_up)
    demo = sub.add_parser("demo", help="start the embedded stack, index the sample, run queries")
    demo.add_argument("--data-dir", default=".vitrine/demo")
    demo.add_argument("--limit", type=int, default=0, help="publish only this many sample products (0 = all)")
    demo.add_argument("--json", default=None, help="also write the final figures to this file")
    demo.set_defaults(func=cmd_demo)
