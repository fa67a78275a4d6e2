#!/usr/bin/env bash
# Installs promtool and the Prometheus server from Debian's `prometheus` package (2.42 on
# bookworm). Idempotent: does nothing when promtool is already on PATH; refreshes the
# package lists only when the package is not known yet.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    exit 0
fi
# shellcheck source=../install-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../install-common.sh" prometheus-install
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show prometheus >/dev/null 2>&1; then
    $SUDO apt-get update
fi
$SUDO apt-get install -y --no-install-recommends prometheus
# The package's own service is not wanted (it would listen on every interface, on 9090):
# run_prometheus.py and the tests start Prometheus themselves, on 127.0.0.1.
if [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v promtool >/dev/null 2>&1
