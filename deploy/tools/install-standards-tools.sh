#!/usr/bin/env bash
# Installs the third-party judges tests/standards runs with node (idempotent; safe to run again):
#   - @asyncapi/cli (pinned), which validates docs/contracts/asyncapi.json;
#   - ical.js (pinned), the iCalendar parser of Thunderbird and many web calendars;
# from npm into ${PITCHIN_CACHE:-$HOME/.cache/pitchin}/npm/standards-<versions>, outside the
# clone, keyed by version. Prints that directory on stdout; the tests find it through
# PITCHIN_STANDARDS_NPM (or the same default) and skip, saying why, when it is missing.
set -euo pipefail

ASYNCAPI_CLI_VERSION="6.2.0"
ICAL_JS_VERSION="2.2.1"

# shellcheck source=../install-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../install-common.sh" standards-tools
NPM_DIR="${CACHE_ROOT}/npm/standards-asyncapi-${ASYNCAPI_CLI_VERSION}-icaljs-${ICAL_JS_VERSION}"

if [[ -x "${NPM_DIR}/node_modules/.bin/asyncapi" && -f "${NPM_DIR}/node_modules/ical.js/package.json" ]]; then
  log "@asyncapi/cli ${ASYNCAPI_CLI_VERSION} and ical.js ${ICAL_JS_VERSION} present in ${NPM_DIR}"
else
  command -v npm >/dev/null 2>&1 || { log "npm is missing: apt-get install npm"; exit 1; }
  log "installing @asyncapi/cli ${ASYNCAPI_CLI_VERSION} and ical.js ${ICAL_JS_VERSION} into ${NPM_DIR}"
  mkdir -p "${NPM_DIR}"
  [[ -f "${NPM_DIR}/package.json" ]] || printf '{"name":"pitchin-standards-tools","private":true}\n' >"${NPM_DIR}/package.json"
  npm install --prefix "${NPM_DIR}" --no-audit --no-fund --save-exact \
    "@asyncapi/cli@${ASYNCAPI_CLI_VERSION}" "ical.js@${ICAL_JS_VERSION}" >&2
fi
# The CLI sends usage metrics unless its config file says no: the tests point
# ASYNCAPI_METRICS_CONFIG_PATH at this one, so nothing calls home (and ~/ is not written).
printf '{"analyticsEnabled":"false","infoMessageShown":"true","userID":"pitchin-tests"}\n' >"${NPM_DIR}/asyncapi-analytics.json"
echo "${NPM_DIR}"
