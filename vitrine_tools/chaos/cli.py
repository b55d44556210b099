"""``vitrine chaos`` and ``vitrine soak``: the crash/outage/hostile-input run and the long steady run.

Both start their own Kafka, Milvus Lite, MinIO and workers under ``--data-dir`` (removed first),
print progress, and end with ONE JSON line of figures. Exit status 0 only when the oracle found
nothing lost, stale, resurrected or duplicated and no worker crashed.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    c = subparsers.add_parser("chaos", help="kill workers, restart the broker, take Milvus and S3 away, judge the index")
    c.add_argument("--data-dir", default=".vitrine/chaos")
    c.add_argument("--kills", type=int, default=20, help="SIGKILLs per worker kind")
    c.add_argument("--broker-restarts", type=int, default=2)
    c.add_argument("--milvus-outage", type=float, default=30.0, help="seconds Milvus is away (0: none)")
    c.add_argument("--milvus-kill", action="store_true", help="SIGKILL Milvus for its outage (default: SIGTERM)")
    c.add_argument("--s3-outage", type=float, default=20.0, help="seconds the object store is away (0: none)")
    c.add_argument("--rate", type=float, default=6.0, help="catalogue events per second")
    c.add_argument("--products", type=int, default=150)
    c.add_argument("--seed", type=int, default=7)
    c.add_argument("--no-hostile", action="store_true", help="skip the hostile inputs")
    c.add_argument("--reindex-kills", type=int, default=10,
                   help="the reindex phase: SIGKILLs of `vitrine reindex build` under load (0: skip the phase)")
    c.add_argument("--json", default=None, help="also write the figures to this file")
    c.set_defaults(func=cmd_chaos)

    s = subparsers.add_parser("soak", help="a long steady load at a fraction of the measured maximum, with queries")
    s.add_argument("--data-dir", default=".vitrine/soak")
    s.add_argument("--minutes", type=float, default=30.0)
    s.add_argument("--fraction", type=float, default=0.5, help="of the measured maximum event rate")
    s.add_argument("--rate", type=float, default=0.0, help="events/s; 0 = measure the maximum first")
    s.add_argument("--query-rate", type=float, default=2.0)
    s.add_argument("--json", default=None)
    s.set_defaults(func=cmd_soak)


def _quiet() -> None:
    import signal

    # SIGTERM unwinds like Ctrl-C, so the run stops every process it started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    import pymilvus  # noqa: F401 - it configures its loggers on import: import it before quietening them

    for name in ("kafka", "pymilvus", "urllib3"):  # clients log every refused connection of a fault
        logging.getLogger(name).setLevel(logging.CRITICAL)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("kafka.", "pymilvus.")):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def _fresh(path: str) -> Path:
    d = Path(path)
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def _emit(result: dict[str, Any], json_path: str | None) -> None:
    line = json.dumps(result, separators=(", ", ": "))
    if json_path:
        Path(json_path).write_text(line + "\n")
    print(line, flush=True)


def cmd_chaos(args: argparse.Namespace) -> int:
    from vitrine_tools.chaos.runner import ChaosConfig, run_chaos

    _quiet()
    cfg = ChaosConfig(_fresh(args.data_dir), kills_per_kind=args.kills, broker_restarts=args.broker_restarts,
                      milvus_outage_s=args.milvus_outage, milvus_kill=args.milvus_kill, s3_outage_s=args.s3_outage, rate=args.rate,
                      products=args.products, seed=args.seed, hostile=not args.no_hostile,
                      reindex_kills=args.reindex_kills)
    result = run_chaos(cfg, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    if result.get("explain"):
        print(result["explain"], file=sys.stderr)
    head = ["kills", "broker_restarts", "milvus_outages", "events", "lost", "stale", "resurrected", "duplicates",
            "dlq_by_reason", "hostile_inputs", "worker_crashes"]
    ordered = {k: result[k] for k in head} | {k: v for k, v in result.items() if k not in head and k != "explain"}
    _emit(ordered, args.json)
    return 0 if result["verdict_ok"] else 1


def cmd_soak(args: argparse.Namespace) -> int:
    from vitrine_tools.chaos.soak import SoakConfig, run_soak

    _quiet()
    cfg = SoakConfig(_fresh(args.data_dir), minutes=args.minutes, fraction=args.fraction, rate=args.rate,
                     query_rate=args.query_rate)
    result = run_soak(cfg, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    _emit(result, args.json)
    return 0 if result["verdict_ok"] else 1
