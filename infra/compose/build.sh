#!/usr/bin/env bash
# Build the real Docker Compose CLI from the Go module proxy into .vitrine/bin/docker-compose, so
# tests/ops/test_compose_config.py can check docker-compose.yml with `docker-compose config` (which
# needs no Docker engine). Idempotent: does nothing when the pinned version is already built.
#
# Why not `go install github.com/docker/compose/v5/cmd@VERSION`: compose's go.mod carries `exclude`
# directives, and `go install pkg@version` refuses any module whose go.mod has them. So the module's
# source is taken from the proxy (`go mod download`), copied out of the read-only module cache, and
# built there as the main module, the way compose's own Makefile builds it (`go build ./cmd`), so its
# exclude and require lines apply exactly. v5.6.0 asks for go 1.26.8: the Go on these machines, so no
# GOTOOLCHAIN change is needed (newer v5 releases need a newer Go).
#
# Usage: infra/compose/build.sh [--force]    COMPOSE_VERSION=v5.6.0 (default) to pin another release
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
module="github.com/docker/compose/v5"
version="${COMPOSE_VERSION:-v5.6.0}"
bin="$root/.vitrine/bin"
out="$bin/docker-compose"
stamp="$bin/.docker-compose.version"
src="$root/.vitrine/build/compose-$version"

if [[ "${1:-}" != "--force" && -x "$out" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
  echo "docker-compose $version already built: $out"
  exit 0
fi
command -v go >/dev/null || { echo "build.sh: go not found (needs the Go that $module@$version names)" >&2; exit 1; }

# The Go on this machine builds it, or the build stops here: never a silent toolchain download.
export GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false"
start=$(date +%s)

dir="$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -n "$dir" && -f "$dir/go.mod" ]] || { echo "build.sh: go mod download $module@$version gave no source" >&2; exit 1; }
rm -rf "$src"
mkdir -p "$src" "$bin"
cp -R "$dir/." "$src/"
chmod -R u+w "$src"

(cd "$src" && go build -trimpath -ldflags "-s -w -X $module/internal.Version=$version" -o "$out.tmp" ./cmd)
mv -f "$out.tmp" "$out"
echo "$version" > "$stamp"
rm -rf "$src"
echo "docker-compose $version built in $(( $(date +%s) - start )) s: $out ($("$out" version --short 2>/dev/null || echo '?'))"
