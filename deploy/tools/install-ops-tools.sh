#!/usr/bin/env bash
# Obtains the tools that render and validate the Helm chart without a cluster (idempotent):
#   - helm       built from its Go module with `go install` (version ldflags set, see below);
#   - kubeconform built from its Go module with `go install`;
#   - kubernetes-validate (PyPI) into the project venv: its package data holds the Kubernetes
#     JSON schemas (1.25 to 1.37), converted here into a local schema tree kubeconform reads;
#   - checkov (PyPI), the best-practice linter used instead of kube-linter (whose Go module the
#     module proxy here refuses), in a venv of its own: it pulls ~70 packages and would downgrade
#     `packaging` in the project venv, so it is kept out of it.
# Everything lands in ${PITCHIN_CACHE:-$HOME/.cache/pitchin}, keyed by version, outside the clone:
# several clones share one build, and a second run only prints where the tools are.
# Needs: Go (>= 1.24), the project venv (${VENV:-.venv}, made by the project's own setup).
set -euo pipefail

HELM_VERSION="v3.22.0"
KUBECONFORM_VERSION="v0.8.0"
KUBERNETES_VALIDATE_VERSION="1.37.0"
CHECKOV_VERSION="3.3.30"
# Kubernetes versions the chart is validated against: the oldest it supports (Chart.yaml
# kubeVersion) and the newest kubernetes-validate knows.
K8S_SCHEMA_VERSIONS="${PITCHIN_K8S_SCHEMA_VERSIONS:-1.30.0 1.37.0}"
# helm reports this as .Capabilities.KubeVersion by default and lints against it.
HELM_K8S_MAJOR=1
HELM_K8S_MINOR=37

# shellcheck source=../install-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../install-common.sh" ops-tools
VENV_DIR="${VENV:-${REPO_ROOT}/.venv}"
case "${VENV_DIR}" in /*) ;; *) VENV_DIR="${REPO_ROOT}/${VENV_DIR}" ;; esac

HELM_DIR="${CACHE_ROOT}/bin/helm-${HELM_VERSION}"
KUBECONFORM_DIR="${CACHE_ROOT}/bin/kubeconform-${KUBECONFORM_VERSION}"
SCHEMA_DIR="${CACHE_ROOT}/kubernetes-schemas/kubernetes-validate-${KUBERNETES_VALIDATE_VERSION}"
CHECKOV_VENV="${CACHE_ROOT}/venvs/checkov-${CHECKOV_VERSION}"

if [[ ! -x "${VENV_DIR}/bin/python" ]]; then
  log "no Python venv at ${VENV_DIR} (set VENV=...); create it first (python3.11 -m venv .venv && .venv/bin/pip install -e '.[dev]')"
  exit 1
fi

# One Go environment for both tools, under the cache: the module cache is kept (writable, so the
# cache can be deleted) and GOFLAGS=-mod=mod lets the module's own go.mod drive resolution.
go_env() {
  env GOPATH="${CACHE_ROOT}/go" \
    GOMODCACHE="${CACHE_ROOT}/go/pkg/mod" \
    GOFLAGS="-mod=mod -modcacherw -buildvcs=false" \
    CGO_ENABLED=0 \
    "$@"
}

go_install() { # <bin dir> <binary name> <module path@version> [go install flags...]
  local bin_dir="$1" name="$2" target="$3"
  shift 3
  if [[ -x "${bin_dir}/${name}" ]]; then
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    log "Go is needed to build ${name}; install Go >= 1.24 and run again"
    exit 1
  fi
  local tmp="${bin_dir}.tmp.$$" started
  rm -rf "${tmp}"
  mkdir -p "${tmp}"
  started="$(date +%s)"
  log "building ${target} with go install (a few minutes on 2 cores, once per machine)"
  go_env GOBIN="${tmp}" go install "$@" "${target}"
  rm -rf "${bin_dir}"
  mv "${tmp}" "${bin_dir}"
  log "built ${name} in $(($(date +%s) - started)) s"
}

# --- helm --------------------------------------------------------------------------------------
# A plain `go install` reports version "v3.22" and Kubernetes v1.20 (.Capabilities.KubeVersion),
# which breaks `kubeVersion:` constraints in Chart.yaml: set both as a release build does.
HELM_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
HELM_LDFLAGS+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=${HELM_K8S_MAJOR}"
HELM_LDFLAGS+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${HELM_K8S_MINOR}"
HELM_LDFLAGS+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=${HELM_K8S_MAJOR}"
HELM_LDFLAGS+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${HELM_K8S_MINOR}"
go_install "${HELM_DIR}" helm "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" -ldflags "${HELM_LDFLAGS}"

# --- kubeconform -------------------------------------------------------------------------------
go_install "${KUBECONFORM_DIR}" kubeconform \
  "github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}" -ldflags "-s -w"

# --- kubernetes-validate (schemas) into the project venv ----------------------------------------
if [[ "$("${VENV_DIR}/bin/python" -c 'import importlib.metadata as m
try:
    print(m.version("kubernetes-validate"))
except m.PackageNotFoundError:
    print("")')" != "${KUBERNETES_VALIDATE_VERSION}" ]]; then
  log "installing kubernetes-validate==${KUBERNETES_VALIDATE_VERSION} into ${VENV_DIR}"
  "${VENV_DIR}/bin/pip" install --quiet "kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}"
fi

# kubeconform cannot download its schemas here. kubernetes-validate ships the same OpenAPI-derived
# schemas; two changes make them resolvable from disk: drop each file's `$id` (an https URL that
# would become the base for every `$ref`) and point `/api/_definitions.json` refs at the sibling
# file. One directory per version, `v<version>-local[-strict]/<kind>-<group>-<version>.json`.
for version in ${K8S_SCHEMA_VERSIONS}; do
  for flavour in local local-strict; do
    dest="${SCHEMA_DIR}/v${version}-${flavour}"
    [[ -f "${dest}/.complete" ]] && continue
    log "converting Kubernetes ${version} ${flavour} schemas for kubeconform"
    "${VENV_DIR}/bin/python" - "${version}" "${flavour}" "${dest}" <<'PY'
import json
import shutil
import sys
from importlib.resources import files
from pathlib import Path

version, flavour, dest = sys.argv[1], sys.argv[2], Path(sys.argv[3])
source = files("kubernetes_validate") / "kubernetes-json-schema" / f"v{version}-{flavour}"
if not source.is_dir():
    sys.exit(f"kubernetes-validate has no schemas for Kubernetes {version} ({flavour})")
tmp = dest.with_name(dest.name + ".tmp")
shutil.rmtree(tmp, ignore_errors=True)
tmp.mkdir(parents=True)


def fix(node: object) -> object:
    if isinstance(node, dict):
        return {
            k: (v.replace("/api/_definitions.json", "_definitions.json") if k == "$ref" and isinstance(v, str) else fix(v))
            for k, v in node.items()
            if k != "$id"
        }
    if isinstance(node, list):
        return [fix(v) for v in node]
    return node


count = 0
for entry in source.iterdir():
    if entry.name.endswith(".json"):
        (tmp / entry.name).write_text(json.dumps(fix(json.loads(entry.read_text(encoding="utf-8")))), encoding="utf-8")
        count += 1
(tmp / ".complete").write_text(f"{count}\n", encoding="utf-8")
shutil.rmtree(dest, ignore_errors=True)
tmp.rename(dest)
PY
  done
done

# --- checkov, in its own venv ------------------------------------------------------------------
if [[ ! -x "${CHECKOV_VENV}/bin/checkov" ]]; then
  log "installing checkov==${CHECKOV_VERSION} into ${CHECKOV_VENV}"
  rm -rf "${CHECKOV_VENV}"
  "$(readlink -f "${VENV_DIR}/bin/python")" -m venv "${CHECKOV_VENV}"
  "${CHECKOV_VENV}/bin/pip" install --quiet --disable-pip-version-check "checkov==${CHECKOV_VERSION}"
fi

cat <<EOF
helm=${HELM_DIR}/helm
kubeconform=${KUBECONFORM_DIR}/kubeconform
kubernetes_schemas=${SCHEMA_DIR}
kubernetes_schema_versions=${K8S_SCHEMA_VERSIONS}
checkov=${CHECKOV_VENV}/bin/checkov
EOF
