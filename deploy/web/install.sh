#!/usr/bin/env bash
# Installs what the web front's browser tests need (idempotent; safe to run again):
#   - Chromium from Debian (/usr/bin/chromium), only when missing; Playwright drives it
#     through executable_path, so `playwright install` (a browser download) is never run;
#   - axe-core (pinned) from npm, into ${PITCHIN_CACHE:-$HOME/.cache/pitchin}/npm, outside
#     the clone, keyed by version; the tests inject node_modules/axe-core/axe.min.js;
#   - the Python packages of the web front and its tests into the project's .venv (pinned;
#     the same pins are in pyproject.toml once added there).
set -euo pipefail

AXE_CORE_VERSION="4.11.0"
PLAYWRIGHT_VERSION="1.65.2"
ITSDANGEROUS_VERSION="2.2.0"

# shellcheck source=../install-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../install-common.sh" web-install
NPM_DIR="${CACHE_ROOT}/npm/axe-core-${AXE_CORE_VERSION}"
VENV="${PITCHIN_VENV:-${REPO_ROOT}/.venv}"

# --- Chromium -----------------------------------------------------------------------------
if [[ -x /usr/bin/chromium ]]; then
  log "Chromium present: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
else
  log "installing Chromium from Debian"
  apt_install chromium
fi

# --- axe-core -----------------------------------------------------------------------------
if [[ -f "${NPM_DIR}/node_modules/axe-core/axe.min.js" ]]; then
  log "axe-core ${AXE_CORE_VERSION} present in ${NPM_DIR}"
else
  command -v npm >/dev/null 2>&1 || { log "npm is missing: apt-get install npm"; exit 1; }
  log "installing axe-core ${AXE_CORE_VERSION} into ${NPM_DIR}"
  mkdir -p "${NPM_DIR}"
  [[ -f "${NPM_DIR}/package.json" ]] || printf '{"name":"pitchin-web-test-tools","private":true}\n' >"${NPM_DIR}/package.json"
  npm install --prefix "${NPM_DIR}" --no-audit --no-fund --save-exact "axe-core@${AXE_CORE_VERSION}" >&2
fi

# --- Python packages ----------------------------------------------------------------------
if [[ -x "${VENV}/bin/python" ]]; then
  if "${VENV}/bin/python" - "${PLAYWRIGHT_VERSION}" "${ITSDANGEROUS_VERSION}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
wanted = {"playwright": sys.argv[1], "itsdangerous": sys.argv[2]}
try:
    sys.exit(0 if all(version(n) == v for n, v in wanted.items()) else 1)
except PackageNotFoundError:
    sys.exit(1)
PY
  then
    log "playwright ${PLAYWRIGHT_VERSION} and itsdangerous ${ITSDANGEROUS_VERSION} present"
  else
    "${VENV}/bin/pip" install --quiet "playwright==${PLAYWRIGHT_VERSION}" "itsdangerous==${ITSDANGEROUS_VERSION}"
  fi
else
  log "no virtualenv at ${VENV}: run 'make setup' first"
  exit 1
fi
log "done"
