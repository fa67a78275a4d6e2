"""A local Kubernetes control plane for the chart tests, without Docker or a cluster.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (which plays the kubelet
of one fake node, so pods "run" and Jobs complete without containers), all on 127.0.0.1 with free
ports, their own certificates and a kubeconfig. The binaries come from deploy/kubernetes/install.sh
(built once per machine into ~/.cache/pitchin/bin). The operators' CRDs (Strimzi, CloudNativePG,
Prometheus Operator, KEDA) are generated from the schemas the chart vendors for kubeconform
(helm/pitchin/ci/crd-schemas): one source for the offline check and for the API server.

From a test::

    plane = ControlPlane(tmp_dir, install_kubernetes_tools())
    plane.start()
    plane.api.get("/api/v1/namespaces")
    plane.stop()

By hand (prints the kubeconfig to use; Ctrl-C stops everything)::

    .venv/bin/python -m pitchin_testing.kubernetes [--dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import ipaddress
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pitchin_testing.install import repo_root
from pitchin_testing.lifecycle import POLL_INTERVAL, ServerError, running_servers, stop_processes, tail
from pitchin_testing.ports import free_ports

Obj = dict[str, Any]

INSTALL_SCRIPT = Path("deploy") / "kubernetes" / "install.sh"
CRD_SCHEMAS = Path("helm") / "pitchin" / "ci" / "crd-schemas"
# The fake node kwok manages; the annotation is how kwok tells its nodes from real ones.
NODE_NAME = "kwok-node-0"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_CIDR = "10.96.0.0/16"
# The first address of SERVICE_CIDR: the `kubernetes` Service, which the server certificate names.
SERVICE_IP = "10.96.0.1"
ADMIN_USER = "pitchin-admin"


@dataclass(frozen=True)
class KubernetesTools:
    etcd: Path
    kube_bin: Path  # kube-apiserver, kube-controller-manager, kube-scheduler
    kwok: Path
    kwok_stages: Path


def install_kubernetes_tools(repo: Path | None = None) -> KubernetesTools:
    """Runs deploy/kubernetes/install.sh (idempotent: builds on the first run, then only reports)."""
    repo = repo or repo_root()
    result = subprocess.run(["bash", str(repo / INSTALL_SCRIPT)], cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServerError(f"{INSTALL_SCRIPT} failed:\n{result.stderr[-4000:]}")
    found = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    tools = KubernetesTools(
        etcd=Path(found["etcd"]),
        kube_bin=Path(found["kube_bin"]),
        kwok=Path(found["kwok"]),
        kwok_stages=Path(found["kwok_stages"]),
    )
    for binary in (tools.etcd, tools.kwok, *(tools.kube_bin / n for n in _KUBE_BINARIES)):
        if not os.access(binary, os.X_OK):
            raise ServerError(f"{binary} is missing after {INSTALL_SCRIPT}")
    return tools


_KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


# --- CRDs from the vendored schemas -----------------------------------------------------------


def _structural(node: Any, *, root: bool = False) -> Any:
    """A kubeconform (strict JSON Schema) schema turned back into a CRD's structural schema: the
    reverse of kubeconform's openapi2jsonschema, as far as it can be reversed."""
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: Obj = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _structural(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value)
        else:
            out[key] = copy.deepcopy(value)
    # A structural schema may not combine `properties` with `additionalProperties`: unknown fields
    # are the server's business (pruned, or refused under strict field validation).
    if out.get("additionalProperties") is False:
        del out["additionalProperties"]
    any_of = out.get("anyOf")
    if any_of is not None and sorted(json.dumps(a, sort_keys=True) for a in any_of) == [
        '{"type": "integer"}',
        '{"type": "string"}',
    ]:
        del out["anyOf"]
        out.pop("type", None)
        out["x-kubernetes-int-or-string"] = True
    kind = out.get("type")
    if isinstance(kind, list):
        others = [t for t in kind if t != "null"]
        if len(others) != 1:
            raise ValueError(f"cannot express the type {kind} in a structural schema")
        out["type"] = others[0]
        if "null" in kind:
            out["nullable"] = True
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    if root:
        # apiVersion and kind are the server's own; metadata is validated by the server (a CRD may
        # only say `type: object` there); `required` of those three is meaningless to a CRD.
        props = out["properties"]
        props["apiVersion"] = {"type": "string"}
        props["kind"] = {"type": "string"}
        props["metadata"] = {"type": "object"}
        props["status"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        out.pop("required", None)
    return out


def custom_resource_definitions(schema_dir: Path | None = None) -> list[Obj]:
    """One CRD per group and kind found in ``schema_dir`` (``<group>/<kind>_<version>.json``), with
    every version found; the newest (v1 where there is one) is stored."""
    schema_dir = schema_dir or repo_root() / CRD_SCHEMAS
    by_kind: dict[tuple[str, str], list[tuple[str, Obj]]] = {}
    for path in sorted(schema_dir.glob("*/*_*.json")):
        group = path.parent.name
        version = path.stem.rsplit("_", 1)[1]
        schema = json.loads(path.read_text(encoding="utf-8"))
        (kind,) = schema["properties"]["kind"]["enum"]
        by_kind.setdefault((group, kind), []).append((version, schema))
    crds: list[Obj] = []
    for (group, kind), versions in sorted(by_kind.items()):
        plural = kind.lower() + "s"
        stored = "v1" if any(v == "v1" for v, _ in versions) else sorted(v for v, _ in versions)[-1]
        crds.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {
                    "name": f"{plural}.{group}",
                    "annotations": {"pitchin.org/generated-from": f"{CRD_SCHEMAS}/{group}"},
                },
                "spec": {
                    "group": group,
                    "scope": "Namespaced",
                    "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                    "versions": [
                        {
                            "name": version,
                            "served": True,
                            "storage": version == stored,
                            "schema": {"openAPIV3Schema": _structural(schema, root=True)},
                            "subresources": {"status": {}},
                        }
                        for version, schema in sorted(versions)
                    ],
                },
            }
        )
    return crds


# --- PKI and kubeconfig -----------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_pub: Path


def write_pki(directory: Path) -> Pki:
    """A CA, the API server's certificate, a cluster-admin client certificate (group
    system:masters) and the service-account signing key; ECDSA keys, valid for a week."""
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pitchin-test-ca")])
    ca = _certificate(ca_name, ca_key, None, ca=True)
    server_key = _key()
    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    server = _certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        server_key,
        (ca_name, ca_key),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        names=[x509.DNSName(d) for d in dns]
        + [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", SERVICE_IP)],
    )
    admin_key = _key()
    admin = _certificate(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_USER),
            ]
        ),
        admin_key,
        (ca_name, ca_key),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    sa_key = _key()
    pki = Pki(
        *(
            directory / n
            for n in (
                "ca.crt",
                "ca.key",
                "apiserver.crt",
                "apiserver.key",
                "admin.crt",
                "admin.key",
                "sa.key",
                "sa.pub",
            )
        )
    )
    pki.ca_cert.write_bytes(ca.public_bytes(pem))
    pki.server_cert.write_bytes(server.public_bytes(pem))
    pki.admin_cert.write_bytes(admin.public_bytes(pem))
    pki.service_account_pub.write_bytes(
        sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for path, key in (
        (pki.ca_key, ca_key),
        (pki.server_key, server_key),
        (pki.admin_key, admin_key),
        (pki.service_account_key, sa_key),
    ):
        path.write_bytes(_pem_key(key))
        path.chmod(0o600)
    return pki


def kubeconfig(server: str, pki: Pki) -> str:
    """A kubeconfig for the cluster admin (every component uses it: a test cluster)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "pitchin-test", "cluster": {"server": server, "certificate-authority": str(pki.ca_cert)}}
            ],
            "users": [
                {
                    "name": ADMIN_USER,
                    "user": {"client-certificate": str(pki.admin_cert), "client-key": str(pki.admin_key)},
                }
            ],
            "contexts": [{"name": "pitchin-test", "context": {"cluster": "pitchin-test", "user": ADMIN_USER}}],
            "current-context": "pitchin-test",
        },
        indent=2,
    )


# --- the API, as the tests read it ------------------------------------------------------------


class ApiError(RuntimeError):
    """The API server refused a request; ``status`` is its Status object."""

    def __init__(self, code: int, status: Obj) -> None:
        super().__init__(f"{code}: {status.get('message', status)}")
        self.code = code
        self.status = status


@dataclass
class Answer:
    """What the API server answered: the object (or Status) and the warnings it sent."""

    code: int
    body: Obj
    warnings: list[str]


class KubeApi:
    """A few REST calls to the API server as the cluster admin (client certificate)."""

    def __init__(self, server: str, pki: Pki) -> None:
        self.server = server
        # One SSL context with both the CA and the client certificate (with `cert=` and a CA path
        # the server saw system:anonymous here).
        tls = ssl.create_default_context(cafile=str(pki.ca_cert))
        tls.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self._client = httpx.Client(base_url=server, verify=tls, timeout=30)

    def close(self) -> None:
        self._client.close()

    def request(
        self, method: str, path: str, body: Obj | None = None, params: Mapping[str, str] | None = None
    ) -> Answer:
        answer = self._client.request(method, path, json=body, params=dict(params or {}))
        try:
            data: Obj = answer.json()
        except ValueError:
            data = {"message": answer.text}
        # `Warning: 299 - "<text>"`, the text a quoted-string (RFC 9110: backslash escapes).
        warnings = [re.sub(r"\\(.)", r"\1", w.split(" ", 2)[-1][1:-1]) for w in answer.headers.get_list("warning")]
        if answer.status_code >= 400:
            raise ApiError(answer.status_code, data)
        return Answer(answer.status_code, data, warnings)

    def get(self, path: str, **params: str) -> Obj:
        return self.request("GET", path, params=params).body

    def exists(self, path: str) -> bool:
        try:
            self.get(path)
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    def create(self, path: str, body: Obj, **params: str) -> Answer:
        return self.request("POST", path, body, params)

    def items(self, path: str, **params: str) -> list[Obj]:
        items: list[Obj] = self.get(path, **params)["items"]
        return items

    def wait_for(self, what: str, check: Any, timeout: float = 60) -> Any:
        """Poll ``check()`` until it returns something true; the last error or value in the
        TimeoutError."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                value = check()
            except (ApiError, httpx.HTTPError, KeyError) as exc:
                last = exc
            else:
                if value:
                    return value
                last = value
            time.sleep(POLL_INTERVAL * 2)
        raise TimeoutError(f"{what} not after {timeout}s (last: {last!r})")


# --- the control plane ------------------------------------------------------------------------


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok, in ``root``.

    Everything lives under ``root``: ``pki/``, ``kubeconfig``, ``etcd/`` (data) and
    ``logs/<component>.log``. ``start`` returns when the node is Ready and the default
    ServiceAccount exists (pods can be created); ``stop`` stops all five, newest first.
    """

    def __init__(self, root: Path, tools: KubernetesTools) -> None:
        self.root = root
        self.tools = tools
        self.kubeconfig = root / "kubeconfig"
        self.logs = root / "logs"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._api: KubeApi | None = None
        self.server = ""

    def __repr__(self) -> str:
        return f"ControlPlane({self.root}, {self.server or 'stopped'})"

    @property
    def api(self) -> KubeApi:
        if self._api is None:
            raise ServerError("the control plane is not started")
        return self._api

    def env(self) -> dict[str, str]:
        """The environment for helm or kubectl against this cluster (and no other)."""
        return dict(
            os.environ,
            KUBECONFIG=str(self.kubeconfig),
            HELM_CACHE_HOME=str(self.root / "helm" / "cache"),
            HELM_CONFIG_HOME=str(self.root / "helm" / "config"),
            HELM_DATA_HOME=str(self.root / "helm" / "data"),
        )

    def _spawn(self, name: str, args: list[str | Path]) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [str(a) for a in args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._processes[name] = process
        return process

    def _log_tail(self, name: str) -> str:
        return f"--- {name} ---\n{tail(self.logs / f'{name}.log')}"

    def start(self, timeout: float = 120) -> None:
        if self._processes:
            raise ServerError(f"{self!r} is already running")
        deadline = time.monotonic() + timeout
        running_servers.add(self)
        try:
            self._start(deadline)
        except BaseException:
            self.stop()
            raise

    def _start(self, deadline: float) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        pki = write_pki(self.root / "pki")
        etcd_client, etcd_peer, apiserver, controller_manager, scheduler, kwok_server = free_ports(6)
        self.server = f"https://127.0.0.1:{apiserver}"
        self.kubeconfig.write_text(kubeconfig(self.server, pki), encoding="utf-8")
        self.kubeconfig.chmod(0o600)
        etcd_url = f"http://127.0.0.1:{etcd_client}"
        peer_url = f"http://127.0.0.1:{etcd_peer}"
        shutil.rmtree(self.root / "etcd", ignore_errors=True)
        self._spawn(
            "etcd",
            [
                self.tools.etcd,
                "--name=pitchin-test",
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=pitchin-test={peer_url}",
                "--log-level=warn",
                "--logger=zap",
            ],
        )
        bin_dir = self.tools.kube_bin
        self._spawn(
            "kube-apiserver",
            [
                bin_dir / "kube-apiserver",
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={apiserver}",
                f"--cert-dir={self.root / 'pki'}",
                f"--tls-cert-file={pki.server_cert}",
                f"--tls-private-key-file={pki.server_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--service-account-key-file={pki.service_account_pub}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                # 127.0.0.1 is not a valid endpoint for the `kubernetes` Service: without this the
                # server complains about it every 10 s.
                "--endpoint-reconciler-type=none",
                "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,"
                "ResourceQuota,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,"
                "PodSecurity",
                "--profiling=false",
                # etcd 3.4.23 (Debian) is older than the server trusts for watch progress
                # notifications, so a watch-list stream (kwok's client-go 1.36 asks for one)
                # breaks after it started and the client backs off for many seconds, missing new
                # pods. Refused up front instead, clients fall back to a plain list and watch.
                "--feature-gates=WatchList=false",
            ],
        )
        self._api = KubeApi(self.server, pki)
        self._wait(
            deadline, "the API server /readyz", lambda: self.api.request("GET", "/readyz").code == 200, "kube-apiserver"
        )
        common = [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
        ]
        self._spawn(
            "kube-controller-manager",
            [
                bin_dir / "kube-controller-manager",
                *common,
                f"--secure-port={controller_manager}",
                f"--service-account-private-key-file={pki.service_account_key}",
                f"--root-ca-file={pki.ca_cert}",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                "--use-service-account-credentials=true",
                # No cloud and no pod network here.
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
            ],
        )
        self._spawn("kube-scheduler", [bin_dir / "kube-scheduler", *common, f"--secure-port={scheduler}"])
        self._spawn(
            "kwok",
            [
                self.tools.kwok,
                f"--kubeconfig={self.kubeconfig}",
                f"--config={self.tools.kwok_stages}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
                "--cidr=10.0.0.1/24",
                "--node-ip=10.0.0.1",
                f"--server-address=127.0.0.1:{kwok_server}",
            ],
        )
        self.api.create(
            "/api/v1/nodes",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": NODE_NAME,
                    "annotations": {KWOK_ANNOTATION: "fake"},
                    "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux", "type": "kwok"},
                },
                "status": {
                    "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                    "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                },
            },
        )

        def node_ready() -> bool:
            conditions = (self.api.get(f"/api/v1/nodes/{NODE_NAME}").get("status") or {}).get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        self._wait(deadline, f"node {NODE_NAME} Ready", node_ready, "kwok")
        # The controller-manager creates each namespace's `default` ServiceAccount; until then
        # the ServiceAccount admission refuses pods.
        self._wait(
            deadline,
            "serviceaccount default/default",
            lambda: self.api.exists("/api/v1/namespaces/default/serviceaccounts/default"),
            "kube-controller-manager",
        )

    def _wait(self, deadline: float, what: str, check: Any, component: str) -> None:
        last: object = None
        while time.monotonic() < deadline:
            for name, process in self._processes.items():
                if process.poll() is not None:
                    raise ServerError(
                        f"{name} exited with {process.returncode} while waiting for {what}:\n{self._log_tail(name)}"
                    )
            try:
                if check():
                    return
            except (ApiError, httpx.HTTPError) as exc:
                last = exc
            time.sleep(POLL_INTERVAL * 2)
        raise ServerError(f"{what}: not in time (last: {last!r})\n{self._log_tail(component)}")

    def apply_crds(self, crds: list[Obj], timeout: float = 60) -> None:
        """Creates the CRDs and waits until the server serves them (Established)."""
        for crd in crds:
            self.api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, fieldValidation="Strict")
        for crd in crds:
            name = crd["metadata"]["name"]

            def established(name: str = name) -> bool:
                got = self.api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                # A CRD read just after its creation may carry `status.conditions: null`.
                conditions = (got.get("status") or {}).get("conditions") or []
                return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

            self.api.wait_for(f"CRD {name} Established", established, timeout)

    def stop(self, timeout: float = 30) -> None:
        """Stops the components, the ones that depend on the API server first, etcd last."""
        if self._api is not None:
            self._api.close()
            self._api = None
        order = ["kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]
        clients = [self._processes[n] for n in order[:3] if n in self._processes]
        stop_processes(clients, timeout)
        for name in order[3:]:
            if name in self._processes:
                stop_processes([self._processes[name]], timeout)
        self._processes.clear()
        running_servers.discard(self)


@contextlib.contextmanager
def control_plane(root: Path, tools: KubernetesTools | None = None, *, crds: bool = True) -> Iterator[ControlPlane]:
    """A started control plane (with the operators' CRDs), stopped on exit."""
    plane = ControlPlane(root, tools or install_kubernetes_tools())
    plane.start()
    try:
        if crds:
            plane.apply_crds(custom_resource_definitions())
        yield plane
    finally:
        plane.stop()


def namespace(name: str, labels: Mapping[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(labels or {})}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, help="where state and logs go (default: a new temporary directory)")
    parser.add_argument("--no-crds", action="store_true", help="do not create the operators' CRDs")
    parser.add_argument(
        "--write-crds", type=Path, metavar="FILE", help="only write the generated CRDs (YAML-compatible JSON) and exit"
    )
    args = parser.parse_args(argv)
    if args.write_crds:
        args.write_crds.write_text(
            "".join("---\n" + json.dumps(crd, indent=2) + "\n" for crd in custom_resource_definitions()),
            encoding="utf-8",
        )
        return 0
    root = args.dir or Path(tempfile.mkdtemp(prefix="pitchin-kubernetes-"))
    started = time.monotonic()
    with control_plane(root, crds=not args.no_crds) as plane:
        print(f"control plane up in {time.monotonic() - started:.1f} s; logs in {plane.logs}", flush=True)
        print(f"export KUBECONFIG={plane.kubeconfig}", flush=True)
        print("Ctrl-C stops it", flush=True)
        stop = False

        def on_signal(signum: int, frame: object) -> None:
            nonlocal stop
            stop = True

        # Both set explicitly: a shell starts background jobs with SIGINT ignored.
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not stop:
            time.sleep(0.5)
        print("stopping", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
