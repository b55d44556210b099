"""Stores: the Milvus Lite server, an S3 server (MinIO, else moto), Prometheus."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from vitrine_tools.devstack.services.process import (
    LOOPBACK,
    MINIO_BINARY,
    S3Service,
    Service,
    _scratch_dir,
    _start,
    free_port,
)

# --------------------------------------------------------------------------------------------
# Milvus Lite (gRPC server mode)


def _milvus_answers(uri: str) -> bool:
    from indexer.store import connect

    client = connect(uri, timeout=2)
    try:
        client.list_collections()
        return True
    finally:
        client.close()


def start_milvus_lite(data_dir: Path, port: int | None = None, timeout: float = 60) -> Service:
    """Start ``milvus-lite server --data-dir D --host 127.0.0.1 --port P`` (this interpreter's).

    ``data_dir`` persists collections across restarts. Address: ``http://127.0.0.1:P``, the
    ``uri`` for ``pymilvus.MilvusClient``. Ready when ``list_collections()`` succeeds.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    uri = f"http://{LOOPBACK}:{port}"
    argv = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir / "db"),
            "--host", LOOPBACK, "--port", str(port)]
    return _start("milvus-lite", argv, uri, data_dir / "milvus-lite.log", lambda: _milvus_answers(uri),
                  timeout, "list_collections()", data_dir=data_dir)


# --------------------------------------------------------------------------------------------
# S3 (MinIO when its binary is present, else moto's server mode)


def find_minio_binary() -> Path | None:
    """A MinIO server binary, or None: ``infra/minio/bin/minio`` (built by ``infra/minio/build.sh``),
    else ``minio`` on PATH, else ``$(go env GOPATH)/bin/minio`` or ``~/go/bin/minio``."""
    if os.access(MINIO_BINARY, os.X_OK):
        return MINIO_BINARY
    found = shutil.which("minio")
    if found:
        return Path(found)
    candidates = [Path.home() / "go" / "bin" / "minio"]
    go = shutil.which("go")
    if go:
        try:
            gopath = subprocess.run([go, "env", "GOPATH"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            gopath = ""
        candidates[:0] = [Path(p) / "bin" / "minio" for p in gopath.strip().split(os.pathsep) if p]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _s3_answers(address: str, access_key: str, secret_key: str) -> bool:
    from minio import Minio

    Minio(address, access_key=access_key, secret_key=secret_key, secure=False).list_buckets()
    return True


def start_s3(
    data_dir: Path,
    port: int | None = None,
    access_key: str = "vitrine",
    secret_key: str = "vitrine-secret",
    timeout: float = 60,
    prefer: str = "minio",
) -> S3Service:
    """Start an S3-protocol server on ``127.0.0.1:port``.

    The real MinIO server (``minio server DATA --address 127.0.0.1:P``, objects on disk under
    ``data_dir``) when its binary is found and ``prefer == "minio"``; otherwise moto's server mode
    (``python -m moto.server``, objects in memory, any credentials accepted). Address:
    ``127.0.0.1:P``; ``kind`` says which one runs. Ready when ``list_buckets`` succeeds with the
    given credentials. MinIO needs a secret key of at least 8 characters.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    address = f"{LOOPBACK}:{port}"
    minio = find_minio_binary() if prefer == "minio" else None
    if minio is not None:
        kind = "minio"
        argv = [str(minio), "server", str(data_dir / "objects"), "--address", address, "--quiet"]
        env = {
            "MINIO_ROOT_USER": access_key,
            "MINIO_ROOT_PASSWORD": secret_key,
            "MINIO_BROWSER": "off",  # no console: it would open a second, random port
            "MINIO_UPDATE": "off",
            "MINIO_CI": "on",  # silences the 'running as root' and similar start-up advice
        }
    else:
        kind = "moto"
        argv = [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)]
        env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    service = _start(
        f"s3-{kind}", argv, address, data_dir / f"s3-{kind}.log",
        lambda: _s3_answers(address, access_key, secret_key), timeout, "list_buckets", env=env,
        data_dir=data_dir, cls=S3Service, access_key=access_key, secret_key=secret_key, kind=kind,
    )
    assert isinstance(service, S3Service)
    return service


# --------------------------------------------------------------------------------------------
# Prometheus (Debian's package, when installed)


def _http_ok(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(url, timeout=1) as response:
        return bool(response.status == 200)


def start_prometheus(
    config_path: Path, port: int | None = None, data_dir: Path | None = None, timeout: float = 30
) -> Service | None:
    """Start ``prometheus`` with ``config_path`` on ``127.0.0.1:port``, or return None when no
    ``prometheus`` binary is installed (Debian: ``apt-get install prometheus``).

    Address: ``http://127.0.0.1:P``. Ready when ``/-/ready`` answers 200. TSDB in ``data_dir``
    (a scratch directory when None). Rule files named in the config are resolved relative to it.
    """
    binary = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if binary is None:
        return None
    port = port or free_port()
    data_dir = Path(data_dir).resolve() if data_dir else _scratch_dir("prometheus")
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://{LOOPBACK}:{port}"
    argv = [
        binary,
        f"--config.file={Path(config_path).resolve()}",
        f"--web.listen-address={LOOPBACK}:{port}",
        f"--storage.tsdb.path={data_dir / 'tsdb'}",
        "--log.level=warn",
    ]
    return _start("prometheus", argv, url, data_dir / "prometheus.log", lambda: _http_ok(f"{url}/-/ready"),
                  timeout, "/-/ready", data_dir=data_dir)
