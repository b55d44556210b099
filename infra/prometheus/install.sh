#!/usr/bin/env bash
# Prometheus and promtool for the tests (a real Prometheus scrapes real workers): Debian's package.
# Skipped when both are on PATH already. Needs root (CI and the dev machines run as root) or sudo.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  echo "prometheus: $(prometheus --version 2>&1 | head -1)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: the package alone, no exporters; policy-rc.d keeps the service from starting
echo 'exit 101' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null && $SUDO chmod +x /usr/sbin/policy-rc.d
trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
echo "prometheus: $(prometheus --version 2>&1 | head -1)"
