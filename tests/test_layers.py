"""Imports go one way (streams <- indexer <- workers); workers/vision imports no Faust, Kafka or network code."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = {
    "streams": ["indexer", "workers", "faust"],
    "indexer": ["workers", "faust", "kafka", "aiokafka"],
    "workers.vision": ["faust", "kafka", "aiokafka", "pymilvus", "minio", "aiohttp", "indexer", "streams"],
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_in_their_layer(package):
    code = (
        f"import sys, {package}\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN[package]!r}]\n"
        f"bad = [m for m in bad if not m.startswith({package!r})]\n"
        "print(','.join(sorted(bad)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"{package} pulls in {out}"
