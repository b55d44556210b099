"""``keep_freed_memory``: the malloc settings take effect in a fresh process and can be switched off."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

_PROBE = "from workers.runtime.memory import keep_freed_memory; print(keep_freed_memory(), keep_freed_memory())"


def _run(env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", _PROBE], env={**os.environ, **env}, capture_output=True,
                          text=True, check=True, timeout=60).stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                    reason="mallopt is a glibc call")
def test_applies_once_on_glibc() -> None:
    assert _run({}) == "True True"


_CLI_PROBE = ("import sys; from unittest import mock; import vitrine_tools.cli as c; "
              "calls = []; import workers.runtime.memory as m; m.keep_freed_memory = lambda: calls.append(1); "
              "sys.argv = ['vitrine', '--help']\n"
              "try:\n    c.main()\nexcept SystemExit:\n    pass\nprint(len(calls))")


def test_the_setting_switches_it_off_at_the_entry_point() -> None:
    """``VITRINE_KEEP_FREED_MEMORY=false`` (a setting) keeps ``vitrine`` from calling it; on by default."""
    def calls(env: dict[str, str]) -> str:
        out = subprocess.run([sys.executable, "-c", _CLI_PROBE], env={**os.environ, **env}, capture_output=True,
                             text=True, check=True, timeout=60).stdout
        return out.strip().splitlines()[-1]

    assert calls({"VITRINE_KEEP_FREED_MEMORY": "false"}) == "0"
    assert calls({"VITRINE_KEEP_FREED_MEMORY": "true"}) == "1"


def test_freeze_startup_heap_moves_live_objects_out_of_collections() -> None:
    import gc

    from workers.runtime.memory import freeze_startup_heap

    try:
        frozen = freeze_startup_heap()
        # the interpreter, pytest and the imported libraries; frozen objects can still be freed by their
        # reference counts (other tests' threads drop some), so the count may only have fallen since
        assert frozen > 10_000 and 0.9 * frozen < gc.get_freeze_count() <= frozen
        assert len(gc.get_objects()) < frozen  # a full collection now walks only what came after
    finally:
        gc.unfreeze()
