#!/usr/bin/env bash
# Obtains a local Kubernetes control plane for the chart tests (tests/chart/test_on_apiserver.py),
# without Docker or a cluster (idempotent; a second run only prints where things are):
#   - etcd from Debian's packages (etcd-server; its system service is not used);
#   - kube-apiserver, kube-controller-manager and kube-scheduler built from the Kubernetes module
#     source. `go install k8s.io/kubernetes/cmd/...@v` is refused (its go.mod replaces the staging
#     modules with ./staging, which the module zip lacks), so the source is copied out of the module
#     cache and each staging replace is pointed at the published staging module of the same release;
#   - kwok, which plays the kubelet of one fake node so that pods "run" and Jobs complete, with the
#     stage definitions it needs (they ship in its module, not in the binary).
# Everything lands in ${PITCHIN_CACHE:-$HOME/.cache/pitchin}/bin/<name>-<version>, outside the
# clone. Cold, this takes about 10 minutes on 2 cores (the apiserver alone about 4), once per machine.
# Needs: Go (>= 1.24), openssl at test time.
set -euo pipefail

KUBERNETES_VERSION="v1.34.4"
# The staging modules (k8s.io/api, apimachinery, ...) of the same release are tagged v0.<minor>.<patch>.
KUBERNETES_STAGING_VERSION="v0.34.4"
KWOK_VERSION="v0.8.0"

# shellcheck source=../install-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../install-common.sh" kubernetes

KUBE_DIR="${CACHE_ROOT}/bin/kubernetes-${KUBERNETES_VERSION}"
KWOK_DIR="${CACHE_ROOT}/bin/kwok-${KWOK_VERSION}"
KUBE_BINARIES="kube-apiserver kube-controller-manager kube-scheduler"

# Two cores are shared with the test suite and other work: build gently, one package at a time.
go_env() {
  env GOPATH="${CACHE_ROOT}/go" \
    GOMODCACHE="${CACHE_ROOT}/go/pkg/mod" \
    GOFLAGS="-mod=mod -modcacherw -buildvcs=false" \
    GOWORK=off \
    GOMAXPROCS="${GOMAXPROCS:-2}" \
    CGO_ENABLED=0 \
    nice -n 10 env "$@"
}

need_go() {
  if ! command -v go >/dev/null 2>&1; then
    log "Go is needed to build $1; install Go >= 1.24 and run again"
    exit 1
  fi
}

# --- etcd --------------------------------------------------------------------------------------
if ! command -v etcd >/dev/null 2>&1; then
  log "installing etcd-server (Debian); the tests start their own etcd, not the system service"
  apt_install etcd-server
fi

# --- kube-apiserver, kube-controller-manager, kube-scheduler ------------------------------------
complete=1
for name in ${KUBE_BINARIES}; do
  [[ -x "${KUBE_DIR}/${name}" ]] || complete=0
done
if [[ "${complete}" -eq 0 ]]; then
  need_go "Kubernetes ${KUBERNETES_VERSION}"
  started="$(date +%s)"
  log "building ${KUBE_BINARIES} ${KUBERNETES_VERSION} from the module source (about 6 minutes on 2 cores, once per machine)"
  source_dir="$(go_env go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" |
    sed -n -E 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')"
  if [[ -z "${source_dir}" || ! -d "${source_dir}" ]]; then
    log "could not download k8s.io/kubernetes@${KUBERNETES_VERSION} from the Go module proxy"
    exit 1
  fi
  work="${CACHE_ROOT}/build/kubernetes-${KUBERNETES_VERSION}.$$"
  tmp="${KUBE_DIR}.tmp.$$"
  trap 'rm -rf "${work}" "${tmp}"' EXIT
  rm -rf "${work}" "${tmp}"
  mkdir -p "$(dirname "${work}")" "${tmp}"
  cp -r "${source_dir}" "${work}"
  chmod -R u+w "${work}"
  rm -rf "${work}/vendor" "${work}/go.work" "${work}/go.work.sum"
  # `k8s.io/api => ./staging/src/k8s.io/api` becomes `k8s.io/api => k8s.io/api v0.34.4`.
  sed -i -E "s#^([[:space:]]*)(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+#\1\2 => \2 ${KUBERNETES_STAGING_VERSION}#" \
    "${work}/go.mod"
  # Without these the binaries report v0.0.0, and the chart's `kubeVersion: >=1.30.0-0` refuses them.
  minor="$(echo "${KUBERNETES_VERSION}" | cut -d. -f2)"
  v=k8s.io/component-base/version
  ldflags="-s -w -X ${v}.gitVersion=${KUBERNETES_VERSION} -X ${v}.gitMajor=1 -X ${v}.gitMinor=${minor}"
  ldflags+=" -X ${v}.gitTreeState=clean -X ${v}.buildDate=2026-01-01T00:00:00Z"
  for name in ${KUBE_BINARIES}; do
    (cd "${work}" && go_env go build -ldflags "${ldflags}" -o "${tmp}/${name}" "./cmd/${name}")
  done
  rm -rf "${KUBE_DIR}"
  mv "${tmp}" "${KUBE_DIR}"
  rm -rf "${work}"
  trap - EXIT
  log "built ${KUBE_BINARIES} in $(($(date +%s) - started)) s"
fi

# --- kwok ---------------------------------------------------------------------------------------
if [[ ! -x "${KWOK_DIR}/kwok" || ! -f "${KWOK_DIR}/stages.yaml" ]]; then
  need_go "kwok ${KWOK_VERSION}"
  started="$(date +%s)"
  log "building kwok ${KWOK_VERSION} with go install (about 2 minutes on 2 cores, once per machine)"
  tmp="${KWOK_DIR}.tmp.$$"
  trap 'rm -rf "${tmp}"' EXIT
  rm -rf "${tmp}"
  mkdir -p "${tmp}"
  go_env GOBIN="${tmp}" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
  # kwok exits with "no stages found" without them: a node that becomes Ready and keeps its lease,
  # pods that become Ready, Job pods that succeed, and deleted pods that go away.
  kwok_source="$(go_env go mod download -json "sigs.k8s.io/kwok@${KWOK_VERSION}" |
    sed -n -E 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')"
  stages="${kwok_source}/kustomize/stage"
  for stage in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    printf -- '---\n'
    cat "${stages}/${stage}"
  done >"${tmp}/stages.yaml"
  rm -rf "${KWOK_DIR}"
  mv "${tmp}" "${KWOK_DIR}"
  trap - EXIT
  log "built kwok in $(($(date +%s) - started)) s"
fi

cat <<EOF
etcd=$(command -v etcd)
kube_bin=${KUBE_DIR}
kwok=${KWOK_DIR}/kwok
kwok_stages=${KWOK_DIR}/stages.yaml
EOF
