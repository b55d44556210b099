#!/usr/bin/env bash
# A real Milvus server (2.3.5, embedded in the `milvus` PyPI wheel) on loopback, for benchmarks:
# installs the wheel into its own virtualenv (.vitrine/milvus-venv), then runs it in the foreground.
# Usage: infra/milvus-server/run.sh [PORT] [DATA_DIR]   (default 19531, .vitrine/milvus-server)
# Milvus 2.3.5 takes one vector field per collection: `vitrine bench query` uses one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
port="${1:-19531}"
data="${2:-$root/.vitrine/milvus-server}"
venv="$root/.vitrine/milvus-venv"
if [[ ! -x "$venv/bin/milvus-server" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "milvus==2.3.5"
fi
exec "$venv/bin/python" - "$port" "$data" <<'PY'
import signal, sys, time
from milvus import MilvusServer
server = MilvusServer()
server.set_base_dir(sys.argv[2])
server.listen_port = int(sys.argv[1])
server.start()
print(f"milvus 2.3.5 listening on 127.0.0.1:{server.listen_port}", flush=True)
signal.signal(signal.SIGTERM, lambda *_: (server.stop(), sys.exit(0)))
while True:
    time.sleep(1)
PY
