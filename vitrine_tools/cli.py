"""vitrine: the production worker and the tooling around it.

  worker {ingest,index,query}  one worker process (settings from VITRINE_* variables)
  up                           the embedded stack (tansu, Milvus Lite, the three workers) until Ctrl-C
  demo                         up + publish the bundled sample + queries + figures
  look-example                 the README's complete-the-look figure on the bundled sample
  train, eval                  train the heads on the shared data; evaluate on its held-out split
  bench                        benchmarks that print figures (ingest, query, consume, gpu)
  chaos, soak                  crashes, outages and hostile inputs judged by the oracle; a long run
  publish                      validate and publish a .jsonl or .csv catalogue file (backfills)
  schema events                the JSON Schema of the catalogue events
  topics ensure|describe       create or alter the topics to the settings (partitions, replication, compaction)
  dlq list|replay              look at the dead letters; re-drive them onto catalog.events after a fix
  reindex status               the collections behind the alias, the live one, and the lag feeding them

vitrine COMMAND --help says more about each.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys

#: Modules that add subcommands: each defines ``register(subparsers)`` (parsers set ``func``).
COMMAND_MODULES = ("workers.cli", "vitrine_tools.devstack.cli", "vitrine_tools.training.cli",
                   "vitrine_tools.training.eval_cli", "vitrine_tools.bench.cli", "vitrine_tools.chaos.cli",
                   "vitrine_tools.openapi_cli", "vitrine_tools.schema_cli", "vitrine_tools.publish_cli",
                   "vitrine_tools.topics_cli", "vitrine_tools.dlq_cli",
                   "vitrine_tools.reindex_cli", "vitrine_tools.devstack.look_example")


def main(argv: list[str] | None = None) -> None:
    import importlib

    from workers.runtime.memory import keep_freed_memory
    from workers.settings import SettingsError, load_settings

    try:
        keep = load_settings().keep_freed_memory
    except SettingsError:
        keep = True  # a worker reports the bad value itself; the tools keep the default
    if keep:
        keep_freed_memory()  # before any thread starts: see workers.runtime.memory

    parser = argparse.ArgumentParser(prog="vitrine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _plain_help(parser)
    args = parser.parse_args(argv)
    if args.cmd != "worker":  # SIGTERM unwinds like Ctrl-C, so stacks stop the processes they started
        signal.signal(signal.SIGTERM, _raise_exit)
    result = args.func(args)
    if isinstance(result, int):
        sys.exit(result)


def plain(text: str | None) -> str | None:
    """Docstring markup out of a help text: ``code`` and :role:`name` become code and name."""
    if text is None:
        return None
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """The module docstrings serve as help texts: show them without their markup, at every level."""
    parser.description = plain(parser.description)
    for action in parser._actions:
        action.help = plain(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = plain(choice.help)
            for sub in action.choices.values():
                _plain_help(sub)


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()
