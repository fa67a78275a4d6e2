# Sourced (not run) by the install scripts under deploy/, with the tag for their log lines:
#   source "$(dirname "${BASH_SOURCE[0]}")/../install-common.sh" <tag>
# What they share:
#   REPO_ROOT    the clone;
#   CACHE_ROOT   the download cache outside the clone, shared by every clone:
#                ${PITCHIN_CACHE:-$HOME/.cache/pitchin}, with one directory per tool and version;
#   SUDO         "sudo" unless already root;
#   log          a line on stderr, tagged;
#   apt_install  Debian packages, refreshing the package lists once per script run.

LOG_TAG="${1:?the tag for the log lines}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${PITCHIN_CACHE:-${HOME}/.cache/pitchin}"

log() { printf '[%s] %s\n' "${LOG_TAG}" "$*" >&2; }

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  SUDO="sudo"
fi

APT_UPDATED=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    log "apt-get not available; please install: $*"
    exit 1
  fi
  if [[ "${APT_UPDATED}" -eq 0 ]]; then
    ${SUDO} apt-get update
    APT_UPDATED=1
  fi
  ${SUDO} env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}
