#!/usr/bin/env bash
# Installs what the local real-servers harness needs (idempotent; safe to run again):
#   - PostgreSQL 15 server binaries (Debian package postgresql-15), unless some initdb exists;
#   - Java 17+ and Maven, unless present;
#   - the Apache Kafka 4.1.1 jars, into ${PITCHIN_CACHE:-$HOME/.cache/pitchin}/kafka-4.1.1/libs.
# The cache lives outside the clone and is keyed by version, so several clones share it.
set -euo pipefail

KAFKA_VERSION="4.1.1"
SCALA_VERSION="2.13"
# shellcheck source=../install-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../install-common.sh" install
KAFKA_HOME="${CACHE_ROOT}/kafka-${KAFKA_VERSION}"
KAFKA_LIBS="${KAFKA_HOME}/libs"
KAFKA_MARKER_JAR="kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar"

# --- PostgreSQL ---------------------------------------------------------------------------
have_initdb() {
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
if have_initdb; then
  log "PostgreSQL server present: $(compgen -G '/usr/lib/postgresql/*/bin/initdb' | head -n1)"
else
  log "installing PostgreSQL 15"
  apt_install postgresql-15
fi

# --- Java 17+ -----------------------------------------------------------------------------
java_major() {
  # `java -version` prints e.g.: openjdk version "17.0.15" 2025-04-15  (or "1.8.0_392")
  local line version major
  line="$(java -version 2>&1 | head -n1)" || return 1
  version="$(printf '%s\n' "${line}" | sed -n 's/.*version "\([^"]*\)".*/\1/p')"
  [[ -n "${version}" ]] || return 1
  major="${version%%.*}"
  if [[ "${major}" == "1" ]]; then
    major="$(printf '%s' "${version}" | cut -d. -f2)"
  fi
  printf '%s\n' "${major}"
}
if command -v java >/dev/null 2>&1 && major="$(java_major)" && [[ "${major}" -ge 17 ]]; then
  log "Java ${major} present"
else
  log "installing Java 17 (openjdk-17-jre-headless)"
  apt_install openjdk-17-jre-headless
  major="$(java_major)"
  if [[ "${major}" -lt 17 ]]; then
    log "java on PATH is still version ${major}; Kafka ${KAFKA_VERSION} needs 17+"
    exit 1
  fi
fi

# --- Kafka jars ---------------------------------------------------------------------------
if [[ -f "${KAFKA_LIBS}/${KAFKA_MARKER_JAR}" ]]; then
  log "Kafka ${KAFKA_VERSION} jars present in ${KAFKA_LIBS}"
else
  if ! command -v mvn >/dev/null 2>&1; then
    log "installing Maven"
    apt_install maven
  fi
  mkdir -p "${KAFKA_HOME}"
  # Download into a temporary directory next to the final one, then rename: an interrupted
  # download never looks like a complete one.
  TMP_LIBS="$(mktemp -d "${KAFKA_HOME}/libs.tmp.XXXXXX")"
  trap 'rm -rf "${TMP_LIBS}"' EXIT
  log "fetching Kafka ${KAFKA_VERSION} jars with Maven"
  mvn -B -q -f "${REPO_ROOT}/deploy/local/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="${TMP_LIBS}"
  if [[ ! -f "${TMP_LIBS}/${KAFKA_MARKER_JAR}" ]]; then
    log "Maven finished but ${KAFKA_MARKER_JAR} is missing"
    exit 1
  fi
  chmod 755 "${TMP_LIBS}"
  rm -rf "${KAFKA_LIBS}"
  mv "${TMP_LIBS}" "${KAFKA_LIBS}"
  trap - EXIT
  log "Kafka ${KAFKA_VERSION}: $(find "${KAFKA_LIBS}" -name '*.jar' | wc -l) jars in ${KAFKA_LIBS}"
fi
