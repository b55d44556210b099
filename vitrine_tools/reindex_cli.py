"""``vitrine reindex status|build|canary|swap|rollback|gc`` (``vitrine_tools.reindex`` has the design).

Settings come from ``VITRINE_*`` as for the workers; each command prints JSON (``build``: one line per
progress report, then its summary) and exits 0, or 1 with the reason when it refused.

A model or index rollout::

    vitrine reindex build --from features --index-type IVF_SQ8       # or: --from catalog --model baseline
    vitrine reindex canary  <new collection>                         # overlap, recall, latency, lag
    vitrine reindex swap    <new collection>                         # runs the canary, refuses if it fails
    vitrine reindex rollback                                         # the previous collection is live again
    vitrine reindex gc                                               # drop what is neither live nor previous
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reindex", help="build a new collection, check it, make it live, roll back (and status)")
    which = p.add_subparsers(dest="reindex_cmd", required=True, metavar="ACTION")
    s = which.add_parser("status", help="collections, the live and previous ones, model versions, sizes, lag")
    s.set_defaults(func=_status)

    b = which.add_parser("build", help="fill a new collection from the feature log or the catalogue topic")
    b.add_argument("--from", dest="source", choices=("features", "catalog"), required=True,
                   help="features: replay the live model's feature log (no models); catalog: replay "
                        "catalog.events through the ingest pipeline with the models of --model/--weights-dir")
    b.add_argument("--index-type", help="vector index of the new collection (default: VITRINE_INDEX_TYPE)")
    b.add_argument("--index-params", type=json.loads, help='its build parameters, JSON, e.g. \'{"M": 32}\'')
    b.add_argument("--model", choices=("trained", "baseline"), help="--from catalog: the models (default: VITRINE_MODEL)")
    b.add_argument("--weights-dir", help="--from catalog: trained heads to load (another model version)")
    b.add_argument("--expect-model", help="--from catalog: refuse unless the models' version is this one")
    b.add_argument("--follow", action="store_true",
                   help="keep writing live events once caught up (the new collection's writer) until stopped")
    b.add_argument("--catch-up-lag", type=int, default=0, help="caught up when the lag is at most this (default 0)")
    b.add_argument("--ingest-http-port", type=int, help="--from catalog: the ingest child's HTTP port "
                   "(default VITRINE_HTTP_PORT + 1)")
    b.set_defaults(func=_build)

    for name, helptext in (("canary", "probe the live and a new collection: overlap, recall, latency, lag"),
                           ("swap", "run the canary and point the alias at the new collection if it passes")):
        c = which.add_parser(name, help=helptext)
        c.add_argument("collection", help="the new collection (vitrine reindex status lists them)")
        c.add_argument("--probes", type=int, default=200, help="probe products (default 200)")
        c.add_argument("--min-overlap", type=float, default=0.7, help="mean overlap@10 with live (same model)")
        c.add_argument("--min-recall", type=float, default=0.9, help="recall@10 against exact search")
        c.add_argument("--max-p99-ratio", type=float, default=3.0, help="p99 new / live")
        c.add_argument("--max-missing", type=float, default=0.001, help="fraction of live products missing")
        c.add_argument("--max-lag", type=int, default=100, help="records not yet read by the new collection's groups")
        if name == "swap":
            c.add_argument("--force", action="store_true", help="swap although the canary failed")
        c.set_defaults(func=_canary if name == "canary" else _swap)

    r = which.add_parser("rollback", help="point the alias back at the previous collection")
    r.set_defaults(func=_rollback)
    g = which.add_parser("gc", help="drop collections that are neither live nor previous")
    g.add_argument("--previous", action="store_true", help="drop the previous collection too (no rollback after)")
    g.add_argument("--dry-run", action="store_true", help="say what would be dropped")
    g.set_defaults(func=_gc)


def _settings() -> Any:
    from workers.settings import load_settings

    return load_settings()


def _client(s: Any) -> Any:
    from indexer.store import connect
    from vitrine_tools.reindex import ReindexError

    try:
        return connect(s.milvus_uri, token=s.milvus_token.get_secret_value())
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a gRPC traceback
        raise ReindexError(f"Milvus at {s.milvus_uri} not reachable: {exc}"[:400]) from exc


def _print(doc: Any) -> None:
    print(json.dumps(doc, indent=1, default=str))


def _status(args: argparse.Namespace) -> int:
    from vitrine_tools.reindex import ReindexError, status

    s = _settings()
    try:
        _client(s).close()  # Milvus reachable, or one clear line
        _print(status(s.milvus_uri, s.collection_alias, s.kafka_bootstrap, s.topics,
                      token=s.milvus_token.get_secret_value(), client_options=s.kafka_options()))
    except ReindexError as exc:
        print(f"vitrine reindex status: {exc}", file=sys.stderr)
        return 1
    return 0


def _build(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from indexer.schema import IndexLayout
    from vitrine_tools.reindex import Builder, ReindexError, live_layout

    s = _settings()
    index_type = args.index_type.upper() if args.index_type else str(s.index_type)
    params = dict(args.index_params) if args.index_params is not None else dict(s.index_params)
    env: dict[str, str] = {}
    try:
        if args.source == "features":
            client = _client(s)
            try:
                base = live_layout(client, s)
            finally:
                client.close()
        else:
            from workers.runtime.wiring import layout_for, vision_for

            env = {"VITRINE_MODEL": args.model or str(s.model),
                   "VITRINE_HTTP_PORT": str(args.ingest_http_port or s.http_port + 1)}
            if args.weights_dir:
                env["VITRINE_WEIGHTS_DIR"] = args.weights_dir
            os.environ.update(env)
            s = _settings()
            base = layout_for(s, vision_for(s))
            if args.expect_model and base.model_version != args.expect_model:
                raise ReindexError(f"the models are {base.model_version!r}, not {args.expect_model!r}")
        layout = IndexLayout(base.model_version, base.dims, alias=s.collection_alias, index_type=index_type,
                             index_params=params, lexical=base.lexical, search_overrides=dict(s.search_params))
        client = _client(s)
        try:
            from vitrine_tools.reindex import alias_target

            if alias_target(client, s.collection_alias) == layout.collection and not args.follow:
                raise ReindexError(f"{layout.collection} is the live collection: choose another index type, "
                                   "parameters or model")
        finally:
            client.close()
        report = Builder(s, dataclasses.replace(layout), from_catalog=args.source == "catalog", follow=args.follow,
                         catch_up_lag=args.catch_up_lag, ingest_env=env).run()
    except (ReindexError, ValueError) as exc:
        print(f"vitrine reindex build: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"step": "done", **asdict(report)}), flush=True)
    return 0


def _thresholds(args: argparse.Namespace) -> Any:
    from vitrine_tools.reindex import Thresholds

    return Thresholds(min_overlap=args.min_overlap, min_recall=args.min_recall, max_p99_ratio=args.max_p99_ratio,
                      max_missing=args.max_missing, max_lag=args.max_lag)


def _run_canary(args: argparse.Namespace, s: Any, client: Any) -> dict[str, Any]:
    from vitrine_tools.reindex import canary, lag_of

    lag = lag_of(s.kafka_bootstrap, args.collection, s.collection_alias, s.topics, client_options=s.kafka_options())
    return canary(client, s.collection_alias, args.collection, probes=args.probes, thresholds=_thresholds(args),
                  lag=lag)


def _against_milvus(command: str, step: Any) -> int:
    """Run ``step(settings, client)`` on a Milvus client; print its report, or the refusal and exit 1.
    ``step`` returns (report, exit status)."""
    from vitrine_tools.reindex import ReindexError

    s = _settings()
    try:
        client = _client(s)
    except ReindexError as exc:
        print(f"vitrine reindex {command}: {exc}", file=sys.stderr)
        return 1
    try:
        report, code = step(s, client)
    except ReindexError as exc:
        print(f"vitrine reindex {command}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    _print(report)
    return int(code)


def _canary(args: argparse.Namespace) -> int:
    def step(s: Any, client: Any) -> tuple[dict[str, Any], int]:
        report = _run_canary(args, s, client)
        return report, 0 if report["passed"] else 1

    return _against_milvus("canary", step)


def _swap(args: argparse.Namespace) -> int:
    from vitrine_tools.reindex import alias_target, finish_pending, swap

    def step(s: Any, client: Any) -> tuple[dict[str, Any], int]:
        finish_pending(client, s.collection_alias)
        live = alias_target(client, s.collection_alias) == args.collection
        return swap(client, s.collection_alias, args.collection, None if live else _run_canary(args, s, client),
                    force=args.force), 0

    return _against_milvus("swap", step)


def _rollback(args: argparse.Namespace) -> int:
    from vitrine_tools.reindex import rollback

    return _against_milvus("rollback", lambda s, client: (rollback(client, s.collection_alias), 0))


def _gc(args: argparse.Namespace) -> int:
    from vitrine_tools.reindex import gc

    def step(s: Any, client: Any) -> tuple[dict[str, Any], int]:
        report = gc(client, s.collection_alias, s.kafka_bootstrap, drop_previous=args.previous, dry_run=args.dry_run,
                    client_options=s.kafka_options())
        return report, 1 if report["refused"] else 0

    return _against_milvus("gc", step)
