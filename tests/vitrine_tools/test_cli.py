"""The ``vitrine`` command: every command is listed, and help texts carry no docstring markup."""

from __future__ import annotations

import subprocess
import sys

import pytest

COMMANDS = ("worker", "up", "demo", "train", "eval", "bench", "chaos", "soak", "openapi", "schema", "publish", "topics", "dlq", "reindex")


def _help(*argv: str) -> str:
    run = subprocess.run([sys.executable, "-m", "vitrine_tools.cli", *argv, "--help"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_the_top_level_help_lists_every_command() -> None:
    text = _help()
    for command in COMMANDS:
        assert f"    {command} " in text, command


@pytest.mark.parametrize("command", COMMANDS)
def test_no_rst_markup_in_help(command: str) -> None:
    text = _help(command)
    assert "``" not in text and ":class:" not in text


def test_worker_help_lists_the_settings() -> None:
    text = _help("worker")
    assert "VITRINE_KAFKA_BOOTSTRAP" in text and "VITRINE_FETCH_FILE_ROOT" in text
