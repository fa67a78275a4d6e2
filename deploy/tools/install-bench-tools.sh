#!/usr/bin/env bash
# Obtains what `make bench` needs besides the project's Python packages (idempotent, quiet):
#   - wrk, the HTTP load generator (Debian package `wrk`), which runs in a process of its own
#     so that the load is not made on the services' cores by the benchmark's own event loop;
#   - pgbench comes with PostgreSQL 15's Debian package, which `make setup` installs.
# apt-get install is tried first against the package lists the machine has; the lists are
# refreshed (apt-get update) only if that fails.
set -euo pipefail

# shellcheck source=../install-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../install-common.sh" bench-tools

if command -v wrk >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  log "apt-get not available; please install wrk"
  exit 1
fi
log "installing wrk"
install_wrk() {
  ${SUDO} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
}
if ! install_wrk; then
  log "refreshing the package lists, then trying again"
  ${SUDO} apt-get update -qq >/dev/null
  install_wrk
fi
command -v wrk >/dev/null 2>&1 || { log "wrk is still missing after apt-get install"; exit 1; }
log "wrk installed: $(command -v wrk)"
