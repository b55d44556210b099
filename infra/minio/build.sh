#!/usr/bin/env bash
# Build the real MinIO server from the Go module proxy into infra/minio/bin/minio (about 150 MB,
# 3-4 minutes on 2 cores). Idempotent: does nothing when the pinned version is already built.
# workers/services.py:start_s3 uses this binary when present (then `minio` on PATH, then
# $(go env GOPATH)/bin/minio) and falls back to moto's in-memory S3 server otherwise.
# Needs: go 1.24+. Usage: infra/minio/build.sh [--force]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# MinIO publishes no semver tags as Go modules; this pseudo-version is what @latest resolved to
# when the build was checked. Override with MINIO_VERSION=latest to take the newest.
version="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
bin="$here/bin"
stamp="$bin/.version"
if [[ "${1:-}" != "--force" && -x "$bin/minio" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
  echo "minio $version already built in $bin"
  exit 0
fi
command -v go >/dev/null || { echo "build.sh: go not found; start_s3 will use moto instead" >&2; exit 1; }
mkdir -p "$bin"
start=$(date +%s)
GOBIN="$bin" go install "github.com/minio/minio@$version"
echo "$version" > "$stamp"
echo "minio $version built in $bin in $(( $(date +%s) - start )) s"
