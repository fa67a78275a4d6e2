"""The Helm chart installed, upgraded, rolled back and uninstalled on a real Kubernetes API server.

One local control plane for the module (libs/pitchin_testing/kubernetes.py: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler v1.34 and kwok faking one node, built once per machine by
deploy/kubernetes/install.sh), with the operators' CRDs generated from the chart's vendored
schemas. No operator runs: Strimzi, CloudNativePG, KEDA and the Prometheus Operator objects are
only stored and validated (their own admission and defaults are not there, deploy/kubernetes.md).

What the server is asked, and what it must answer:
- every rendered object, default and production values, under strict field validation (dry run)
  in a namespace enforcing the `restricted` Pod Security level: accepted, without a warning;
- `helm install --wait` (default values; production values with two publishers): the migration
  hook Job completes, every Deployment is Available, the PodDisruptionBudgets, HPA and KEDA
  ScaledObjects, NetworkPolicies and ServiceAccounts are stored; the services' ServiceAccounts may
  do nothing in the API (RBAC); the stored KafkaUsers' ACLs are pitchin_core.kafka_auth's, and
  each Deployment logs in as its KafkaUser with the SCRAM Secret of that name;
- `helm upgrade` with a new image tag rolls every Deployment (and runs the migrations again);
  `helm rollback` brings the old image back; `helm uninstall` removes the workloads and keeps
  the KafkaTopics (helm.sh/resource-policy: keep);
- a misspelt value fails with values.schema.json's message; a broken template fails with the
  API server's. A misspelt field in a template is not refused by `helm install`: helm sends no
  `fieldValidation=Strict`, so the server drops the field with a warning (pinned below). Hence
  every helm step here fails on any server warning, and the strict dry run is the real check.

The tests run in file order: the default release is installed, upgraded, rolled back and then
uninstalled by module fixtures, each step after the one before.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pitchin_core.kafka_auth import publisher_grants, publisher_username, service_grants
from pitchin_testing.kubernetes import (
    ApiError,
    ControlPlane,
    custom_resource_definitions,
    install_kubernetes_tools,
    namespace,
)
from tests.chart.test_chart import (
    CHART,
    PRODUCTION_VALUES,
    RELEASE,
    Tools,
    helm_template,
    load_yaml_documents,
    service_fullname,
)
from tests.chart.test_chart import tools as tools  # the session fixture, shared

pytestmark = pytest.mark.chart

Obj = dict[str, Any]

# Namespaces at the strictest Pod Security level: a pod that violates it is refused, a workload
# that would is warned about.
RESTRICTED = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
DEFAULT_NS = "pitchin"
PRODUCTION_NS = "pitchin-production"
# Where the releases that must fail are tried: whatever they leave behind stays out of the others' way.
REFUSALS_NS = "pitchin-refusals"
PUBLISHERS = ("/crm/unite-west-midlands", "urn:crm:Acme.B")
NEW_TAG = "0.1.1-test"
HELM_TIMEOUT = "240s"
MIGRATION_JOB = f"{RELEASE}-migrate"
# What the server keeps of a Strimzi KafkaTopic and CNPG Cluster after `helm uninstall`.
KEPT_KINDS = {"KafkaTopic": "kafka.strimzi.io/v1/kafkatopics", "Cluster": "postgresql.cnpg.io/v1/clusters"}


@dataclass
class Cluster:
    plane: ControlPlane
    tools: Tools
    started_in: float

    def helm(self, *args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.tools.helm), *(str(a) for a in args)],
            env=self.plane.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def get(self, path: str, **params: str) -> Obj:
        return self.plane.api.get(path, **params)

    def items(self, path: str, **params: str) -> list[Obj]:
        return self.plane.api.items(path, **params)


@pytest.fixture(scope="module")
def cluster(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    kubernetes = install_kubernetes_tools()
    plane = ControlPlane(tmp_path_factory.mktemp("kubernetes"), kubernetes)
    started = time.monotonic()
    plane.start()
    try:
        plane.apply_crds(custom_resource_definitions())
        for name in (DEFAULT_NS, PRODUCTION_NS, REFUSALS_NS):
            plane.api.create("/api/v1/namespaces", namespace(name, RESTRICTED))
        yield Cluster(plane, tools, time.monotonic() - started)
    finally:
        plane.stop()


def values_args(label: str) -> list[str | Path]:
    if label == "default":
        return []
    args: list[str | Path] = ["--values", PRODUCTION_VALUES]
    for i, source in enumerate(PUBLISHERS):
        args += ["--set-string", f"kafka.users.publishers[{i}].source={source}"]
    return args


def deployments(cluster: Cluster, ns: str) -> dict[str, Obj]:
    return {d["metadata"]["name"]: d for d in cluster.items(f"/apis/apps/v1/namespaces/{ns}/deployments")}


def events_of(cluster: Cluster, ns: str, kind: str, name: str) -> list[Obj]:
    return [
        e
        for e in cluster.items(f"/api/v1/namespaces/{ns}/events")
        if e["involvedObject"]["kind"] == kind and e["involvedObject"]["name"] == name
    ]


def warnings_in(helm_stderr: str) -> list[str]:
    """The server's warnings helm printed (it logs them as `W... warnings.go:...] <text>`)."""
    return [line for line in helm_stderr.splitlines() if "warnings.go" in line or line.startswith("Warning")]


# --- the control plane and the CRDs -----------------------------------------------------------


def test_control_plane_serves_the_generated_crds(cluster: Cluster) -> None:
    version = cluster.get("/version")
    assert (version["major"], version["minor"]) == ("1", "34"), version
    generated = {crd["metadata"]["name"] for crd in custom_resource_definitions()}
    assert generated == {
        "kafkatopics.kafka.strimzi.io",
        "kafkausers.kafka.strimzi.io",
        "clusters.postgresql.cnpg.io",
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
        "scaledobjects.keda.sh",
    }
    for name in generated:
        conditions = {
            c["type"]: c["status"]
            for c in cluster.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")["status"][
                "conditions"
            ]
        }
        # A non-structural schema would be served without pruning or strict decoding.
        assert conditions.get("Established") == "True" and "NonStructuralSchema" not in conditions, (name, conditions)
    print(f"\ncontrol plane and CRDs up in {cluster.started_in:.1f} s")


def test_restricted_namespace_refuses_an_unhardened_pod(cluster: Cluster) -> None:
    """The Pod Security labels bite: the chart's pods passing in these namespaces means something."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unhardened"},
        # No securityContext: may run as root, keeps its capabilities, no seccomp profile.
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    with pytest.raises(ApiError) as refused:
        cluster.plane.api.create(f"/api/v1/namespaces/{DEFAULT_NS}/pods", pod, dryRun="All")
    assert refused.value.code == 403
    assert 'violates PodSecurity "restricted:latest"' in refused.value.status["message"]
    # A workload with such a pod is stored, with a warning: what the dry runs below must not get.
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "unhardened"},
        "spec": {
            "selector": {"matchLabels": {"app": "unhardened"}},
            "template": {"metadata": {"labels": {"app": "unhardened"}}, "spec": pod["spec"]},
        },
    }
    answer = cluster.plane.api.create(f"/apis/apps/v1/namespaces/{DEFAULT_NS}/deployments", deployment, dryRun="All")
    assert [w for w in answer.warnings if 'would violate PodSecurity "restricted:latest"' in w], answer.warnings


# --- every rendered object, under strict field validation -------------------------------------


def collection_path(obj: Obj, ns: str) -> str:
    group_version = obj["apiVersion"]
    prefix = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    plural = {"NetworkPolicy": "networkpolicies", "Ingress": "ingresses"}.get(obj["kind"], obj["kind"].lower() + "s")
    return f"{prefix}/namespaces/{ns}/{plural}"


@pytest.mark.parametrize("label", ["default", "production"])
def test_every_rendered_object_is_accepted_strictly_without_warnings(
    cluster: Cluster, tools: Tools, label: str
) -> None:
    ns = DEFAULT_NS if label == "default" else PRODUCTION_NS
    rendered = helm_template(tools, "--namespace", ns, *values_args(label))
    assert rendered.returncode == 0, rendered.stderr
    objects = load_yaml_documents(rendered.stdout)
    assert objects
    problems: list[str] = []
    for obj in objects:
        try:
            answer = cluster.plane.api.create(collection_path(obj, ns), obj, dryRun="All", fieldValidation="Strict")
        except ApiError as exc:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: refused: {exc}")
            continue
        if answer.warnings:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: warnings: {answer.warnings}")
        # What the server would store is what was sent (nothing pruned, nothing renamed).
        assert answer.body["metadata"]["name"] == obj["metadata"]["name"]
    assert not problems, "\n".join(problems)


def test_strict_validation_refuses_a_misspelt_field_in_each_kind(cluster: Cluster, tools: Tools) -> None:
    """The dry runs above can fail: a misspelt field in a built-in kind and in each CRD kind is
    refused with the server's strict-decoding message."""
    rendered = helm_template(tools, "--namespace", PRODUCTION_NS, *values_args("production"))
    assert rendered.returncode == 0, rendered.stderr
    objects = load_yaml_documents(rendered.stdout)
    seen: set[str] = set()
    for obj in objects:
        if obj["kind"] in seen or obj["kind"] not in {
            "Deployment",
            "KafkaTopic",
            "KafkaUser",
            "Cluster",
            "ScaledObject",
            "ServiceMonitor",
            "PrometheusRule",
        }:
            continue
        seen.add(obj["kind"])
        broken = dict(obj, spec=dict(obj["spec"], replicaz=2))
        with pytest.raises(ApiError) as refused:
            cluster.plane.api.create(
                collection_path(obj, PRODUCTION_NS), broken, dryRun="All", fieldValidation="Strict"
            )
        assert refused.value.code == 400, refused.value.status
        assert 'unknown field "spec.replicaz"' in refused.value.status["message"], refused.value.status
    assert len(seen) == 7, seen


# --- install, upgrade, rollback, uninstall (default values) -----------------------------------


@dataclass
class Step:
    result: subprocess.CompletedProcess[str]
    seconds: float


def timed(cluster: Cluster, *args: str | Path) -> Step:
    started = time.monotonic()
    result = cluster.helm(*args)
    return Step(result, time.monotonic() - started)


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Step:
    step = timed(cluster, "install", RELEASE, CHART, "--namespace", DEFAULT_NS, "--wait", "--timeout", HELM_TIMEOUT)
    print(f"\nhelm install --wait (default values): {step.seconds:.1f} s")
    return step


def rolled_out(d: Obj) -> bool:
    """What `kubectl rollout status` waits for: the new pods ready, the old ones gone."""
    status = d["status"]
    return bool(
        status.get("observedGeneration") == d["metadata"]["generation"]
        and status.get("readyReplicas") == status.get("replicas") == status.get("updatedReplicas")
    )


def assert_available(cluster: Cluster, ns: str, image_tag: str | None = None) -> dict[str, Obj]:
    # helm --wait returns once the new pods are ready; the old ones may still be terminating.
    found: dict[str, Obj] = cluster.plane.api.wait_for(
        f"every Deployment in {ns} rolled out",
        lambda: (ds := deployments(cluster, ns)) and all(rolled_out(d) for d in ds.values()) and ds,
        timeout=30,
    )
    for name, d in found.items():
        status = d["status"]
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        assert conditions.get("Available") == "True", (name, status)
        assert status.get("observedGeneration") == d["metadata"]["generation"], (name, status)
        assert status.get("readyReplicas") == status.get("replicas") == status.get("updatedReplicas"), (name, status)
        if image_tag is not None:
            (container,) = d["spec"]["template"]["spec"]["containers"]
            assert container["image"].endswith(f":{image_tag}"), (name, container["image"])
    return found


def test_install_waits_for_the_migrations_and_every_deployment(cluster: Cluster, installed: Step) -> None:
    assert installed.result.returncode == 0, installed.result.stderr
    assert not warnings_in(installed.result.stderr), installed.result.stderr
    status = cluster.helm("status", RELEASE, "--namespace", DEFAULT_NS, "--output", "json")
    assert '"status":"deployed"' in status.stdout.replace(" ", ""), status.stdout
    # The hook Job ran to completion, and was deleted on success (hook-delete-policy).
    completed = [e for e in events_of(cluster, DEFAULT_NS, "Job", MIGRATION_JOB) if e["reason"] == "Completed"]
    assert len(completed) == 1, events_of(cluster, DEFAULT_NS, "Job", MIGRATION_JOB)
    assert not cluster.plane.api.exists(f"/apis/batch/v1/namespaces/{DEFAULT_NS}/jobs/{MIGRATION_JOB}")
    found = assert_available(cluster, DEFAULT_NS)
    assert sorted(found) == sorted(
        service_fullname(s) for s in ("matching", "notifications", "scheduling", "signups", "web")
    )
    # Pods were admitted by PodSecurity "restricted" and run on the fake node.
    pods = cluster.items(f"/api/v1/namespaces/{DEFAULT_NS}/pods")
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert len(running) == len(found), [(p["metadata"]["name"], p["status"].get("phase")) for p in pods]


def test_install_creates_service_accounts_without_api_access(cluster: Cluster, installed: Step) -> None:
    assert installed.result.returncode == 0, installed.result.stderr
    for name in deployments(cluster, DEFAULT_NS):
        account = cluster.get(f"/api/v1/namespaces/{DEFAULT_NS}/serviceaccounts/{name}")
        assert account["automountServiceAccountToken"] is False
        # No Role or RoleBinding names it: the API server's RBAC denies it even reading Secrets.
        for verb, resource in (("get", "secrets"), ("list", "pods"), ("create", "configmaps")):
            review = cluster.plane.api.create(
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                {
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SubjectAccessReview",
                    "spec": {
                        "user": f"system:serviceaccount:{DEFAULT_NS}:{name}",
                        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{DEFAULT_NS}"],
                        "resourceAttributes": {"namespace": DEFAULT_NS, "verb": verb, "resource": resource},
                    },
                },
            ).body
            assert review["status"]["allowed"] is False, (name, verb, resource, review["status"])
    assert not [
        b
        for b in cluster.items(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{DEFAULT_NS}/rolebindings")
        if b["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == RELEASE
    ]


def test_install_creates_network_policies_and_disruption_budgets(cluster: Cluster, installed: Step) -> None:
    assert installed.result.returncode == 0, installed.result.stderr
    names = set(deployments(cluster, DEFAULT_NS))
    policies = {
        p["metadata"]["name"]: p
        for p in cluster.items(f"/apis/networking.k8s.io/v1/namespaces/{DEFAULT_NS}/networkpolicies")
    }
    # One per service, and the migration Job's own (a hook, so it exists before the Job runs).
    assert names <= set(policies), (names, sorted(policies))
    assert f"{MIGRATION_JOB}" in policies, sorted(policies)
    for name in names:
        assert sorted(policies[name]["spec"]["policyTypes"]) == ["Egress", "Ingress"], policies[name]["spec"]
    budgets = {
        b["metadata"]["name"] for b in cluster.items(f"/apis/policy/v1/namespaces/{DEFAULT_NS}/poddisruptionbudgets")
    }
    assert budgets == names


@pytest.fixture(scope="module")
def upgraded(cluster: Cluster, installed: Step) -> tuple[Step, dict[str, Obj]]:
    assert installed.result.returncode == 0, installed.result.stderr
    before = deployments(cluster, DEFAULT_NS)
    step = timed(
        cluster,
        "upgrade",
        RELEASE,
        CHART,
        "--namespace",
        DEFAULT_NS,
        "--set",
        f"image.tag={NEW_TAG}",
        "--wait",
        "--timeout",
        HELM_TIMEOUT,
    )
    print(f"\nhelm upgrade --wait (new image tag): {step.seconds:.1f} s")
    return step, before


def test_upgrade_with_a_new_image_tag_rolls_every_deployment(
    cluster: Cluster, upgraded: tuple[Step, dict[str, Obj]]
) -> None:
    step, before = upgraded
    assert step.result.returncode == 0, step.result.stderr
    assert not warnings_in(step.result.stderr), step.result.stderr
    after = assert_available(cluster, DEFAULT_NS, NEW_TAG)
    for name, old in before.items():
        assert after[name]["metadata"]["generation"] > old["metadata"]["generation"], name
    # A new ReplicaSet per Deployment now holds the pods; the old one is scaled to 0.
    sets = cluster.items(f"/apis/apps/v1/namespaces/{DEFAULT_NS}/replicasets")
    for name in before:
        owned = [s for s in sets if s["metadata"]["ownerReferences"][0]["name"] == name]
        assert len(owned) == 2, (name, [s["metadata"]["name"] for s in owned])
        by_tag = {s["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[1]: s for s in owned}
        assert by_tag[NEW_TAG]["status"].get("readyReplicas", 0) >= 1, by_tag[NEW_TAG]["status"]
        assert [s["spec"]["replicas"] for t, s in by_tag.items() if t != NEW_TAG] == [0]
    # pre-upgrade: the migrations ran again before the Deployments changed.
    completed = [e for e in events_of(cluster, DEFAULT_NS, "Job", MIGRATION_JOB) if e["reason"] == "Completed"]
    assert sum(e.get("count", 1) for e in completed) == 2, completed


@pytest.fixture(scope="module")
def rolled_back(cluster: Cluster, upgraded: tuple[Step, dict[str, Obj]]) -> Step:
    assert upgraded[0].result.returncode == 0, upgraded[0].result.stderr
    step = timed(cluster, "rollback", RELEASE, "1", "--namespace", DEFAULT_NS, "--wait", "--timeout", HELM_TIMEOUT)
    print(f"\nhelm rollback --wait: {step.seconds:.1f} s")
    return step


def test_rollback_brings_the_first_image_back(cluster: Cluster, rolled_back: Step, tools: Tools) -> None:
    assert rolled_back.result.returncode == 0, rolled_back.result.stderr
    first_tag = load_yaml_documents((CHART / "Chart.yaml").read_text(encoding="utf-8"))[0]["appVersion"]
    assert_available(cluster, DEFAULT_NS, str(first_tag))
    history = cluster.helm("history", RELEASE, "--namespace", DEFAULT_NS, "--output", "json")
    revisions: list[Obj] = json.loads(history.stdout)
    assert [(r["revision"], r["status"]) for r in revisions] == [(1, "superseded"), (2, "superseded"), (3, "deployed")]
    assert revisions[-1]["description"] == "Rollback to 1"
    # The migration hook is pre-install and pre-upgrade only: a roll-back does not migrate.
    completed = [e for e in events_of(cluster, DEFAULT_NS, "Job", MIGRATION_JOB) if e["reason"] == "Completed"]
    assert sum(e.get("count", 1) for e in completed) == 2, completed


@pytest.fixture(scope="module")
def uninstalled(cluster: Cluster, rolled_back: Step) -> tuple[Step, dict[str, set[str]]]:
    assert rolled_back.result.returncode == 0, rolled_back.result.stderr
    before = {
        kind: {
            o["metadata"]["name"]
            for o in cluster.items(f"/apis/{path.rsplit('/', 1)[0]}/namespaces/{DEFAULT_NS}/{path.rsplit('/', 1)[1]}")
        }
        for kind, path in KEPT_KINDS.items()
    }
    # Foreground: each Deployment goes only once its ReplicaSets and Pods have gone, so --wait
    # returns when the pods are gone too (in the background the garbage collector is still at it).
    step = timed(
        cluster,
        "uninstall",
        RELEASE,
        "--namespace",
        DEFAULT_NS,
        "--cascade",
        "foreground",
        "--wait",
        "--timeout",
        HELM_TIMEOUT,
    )
    return step, before


def test_uninstall_removes_the_workloads_and_keeps_the_topics(
    cluster: Cluster, uninstalled: tuple[Step, dict[str, set[str]]]
) -> None:
    step, before = uninstalled
    assert step.result.returncode == 0, step.result.stderr
    assert before["KafkaTopic"], "no KafkaTopics were installed"
    kept = {
        o["metadata"]["name"] for o in cluster.items(f"/apis/kafka.strimzi.io/v1/namespaces/{DEFAULT_NS}/kafkatopics")
    }
    assert kept == before["KafkaTopic"]
    assert "These resources were kept due to the resource policy" in step.result.stdout, step.result.stdout
    assert not deployments(cluster, DEFAULT_NS)
    assert not cluster.items(f"/api/v1/namespaces/{DEFAULT_NS}/services")
    leftover = [p["metadata"]["name"] for p in cluster.items(f"/api/v1/namespaces/{DEFAULT_NS}/pods")]
    assert not leftover, leftover


# --- production values ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def production(cluster: Cluster) -> Step:
    step = timed(
        cluster,
        "install",
        RELEASE,
        CHART,
        "--namespace",
        PRODUCTION_NS,
        *values_args("production"),
        "--wait",
        "--timeout",
        HELM_TIMEOUT,
    )
    print(f"\nhelm install --wait (production values): {step.seconds:.1f} s")
    return step


def test_production_install_stores_autoscalers_budgets_and_the_database_cluster(
    cluster: Cluster, production: Step
) -> None:
    assert production.result.returncode == 0, production.result.stderr
    assert not warnings_in(production.result.stderr), production.result.stderr
    found = assert_available(cluster, PRODUCTION_NS)
    ns = PRODUCTION_NS
    scaled = {o["metadata"]["name"]: o for o in cluster.items(f"/apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects")}
    hpas = {
        o["metadata"]["name"]: o
        for o in cluster.items(f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers")
    }
    # Each Deployment is scaled by exactly one of them (KEDA for consumers, an HPA on CPU else).
    assert sorted([*scaled, *hpas]) == sorted(found), (sorted(scaled), sorted(hpas))
    for name, obj in scaled.items():
        assert obj["spec"]["scaleTargetRef"]["name"] == name
        assert obj["spec"]["triggers"] and obj["spec"]["triggers"][0]["type"] == "kafka", obj["spec"]["triggers"]
    budgets = {b["metadata"]["name"] for b in cluster.items(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets")}
    assert budgets == set(found)
    (database,) = cluster.items(f"/apis/postgresql.cnpg.io/v1/namespaces/{ns}/clusters")
    assert database["spec"]["instances"] == 3
    assert cluster.items(f"/apis/monitoring.coreos.com/v1/namespaces/{ns}/servicemonitors")
    assert cluster.items(f"/apis/monitoring.coreos.com/v1/namespaces/{ns}/prometheusrules")


def stored_grants(user: Obj) -> set[tuple[str, str, str, str]]:
    """A stored KafkaUser's ACLs in pitchin_core.kafka_auth's terms. Strimzi's `prefix` is Kafka's
    PREFIXED; on a topic, Describe is what Kafka implies for Read and Write, so it must only come
    with them. On a group, Describe alone is a grant of its own (reading another group's offsets)."""
    grants: set[tuple[str, str, str, str]] = set()
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        pattern = {"literal": "literal", "prefix": "prefixed"}[resource["patternType"]]
        operations = set(acl["operations"])
        if resource["type"] == "group" and operations == {"Describe"}:
            grants.add((resource["type"], resource["name"], pattern, "Describe"))
            continue
        assert operations - {"Describe"}, acl
        grants |= {(resource["type"], resource["name"], pattern, op) for op in operations - {"Describe"}}
    return grants


def test_production_kafka_users_are_stored_with_the_local_acls(cluster: Cluster, production: Step) -> None:
    assert production.result.returncode == 0, production.result.stderr
    users = {
        u["metadata"]["name"]: u
        for u in cluster.items(f"/apis/kafka.strimzi.io/v1/namespaces/{PRODUCTION_NS}/kafkausers")
    }
    services = ("matching", "notifications", "scheduling", "signups")
    expected_names = {service_fullname(s) for s in services} | {
        publisher_username(p)[:63].rstrip("-") for p in PUBLISHERS
    }
    assert set(users) == expected_names
    for service in services:
        user = users[service_fullname(service)]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        expected = {(g.resource, g.name, g.pattern, g.operation) for g in service_grants(service)}
        assert stored_grants(user) == expected, service
        # The SCRAM credentials: Strimzi's User Operator logs the user in by the KafkaUser's name and
        # writes its password to a Secret of that name beside it, which the pods read.
        deployment = cluster.get(f"/apis/apps/v1/namespaces/{PRODUCTION_NS}/deployments/{service_fullname(service)}")
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["PITCHIN_KAFKA_USERNAME"]["value"] == user["metadata"]["name"]
        assert env["PITCHIN_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": user["metadata"]["name"],
            "key": "password",
        }
    for source in PUBLISHERS:
        user = users[publisher_username(source)[:63].rstrip("-")]
        expected = {(g.resource, g.name, g.pattern, g.operation) for g in publisher_grants(source)}
        assert stored_grants(user) == expected, source


# --- what is refused, and with whose message --------------------------------------------------


def test_a_misspelt_value_is_refused_by_the_values_schema(cluster: Cluster) -> None:
    result = cluster.helm(
        "install", "misspelt", CHART, "--namespace", REFUSALS_NS, "--set", "services.signups.replica=2", "--wait"
    )
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    assert "additional properties 'replica' not allowed" in result.stderr, result.stderr
    assert not [
        s for s in cluster.items(f"/api/v1/namespaces/{REFUSALS_NS}/secrets") if "misspelt" in s["metadata"]["name"]
    ], "helm recorded a release"


def broken_chart(tmp_path: Path, template: str, old: str, new: str) -> Path:
    chart = tmp_path / "pitchin"
    shutil.copytree(CHART, chart)
    path = chart / "templates" / template
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {template}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return chart


def test_a_broken_template_is_refused_with_the_servers_message(cluster: Cluster, tmp_path: Path) -> None:
    """An out-of-range port: valid YAML and valid against the OpenAPI types, refused only by the
    server's own validation (422 Invalid)."""
    chart = broken_chart(tmp_path, "_service-service.tpl", "port: 8000", "port: 80000")
    result = cluster.helm("install", "broken", chart, "--namespace", REFUSALS_NS, "--no-hooks", "--timeout", "60s")
    assert result.returncode != 0, result.stdout
    assert "is invalid" in result.stderr and "spec.ports[0].port: Invalid value: 80000" in result.stderr, result.stderr
    assert "must be between 1 and 65535" in result.stderr, result.stderr


def test_a_misspelt_field_in_a_template_is_only_warned_about_by_helm(cluster: Cluster, tmp_path: Path) -> None:
    """What strict field validation applies to: not to what helm sends. helm 3.22 skips its
    client-side schema check when the server can validate fields, but sends no
    `fieldValidation=Strict`, so the server takes its default, Warn: a misspelt Deployment field
    is dropped, the install succeeds and only a warning says so. That is why every install here
    fails on a warning, and why the strict dry run above is what refuses the typo."""
    chart = broken_chart(
        tmp_path, "_service-deployment.tpl", "  revisionHistoryLimit: 5", "  revisionHistoryLimit: 5\n  replica: 2"
    )
    # A namespace of its own: the failed install before left KafkaTopics (kept by policy) behind.
    ns = "pitchin-misspelt-field"
    cluster.plane.api.create("/api/v1/namespaces", namespace(ns, RESTRICTED))
    result = cluster.helm("install", "misspelt-field", chart, "--namespace", ns, "--no-hooks")
    assert result.returncode == 0, result.stderr
    assert 'Warning: unknown field \\"spec.replica\\"' in result.stderr, result.stderr
    assert warnings_in(result.stderr), "the warning is not recognised as one"
    stored = cluster.get(f"/apis/apps/v1/namespaces/{ns}/deployments/misspelt-field-pitchin-signups")
    assert "replica" not in stored["spec"] and stored["spec"]["revisionHistoryLimit"] == 5
    # The same render, sent as the strict dry run sends it, is refused.
    rendered = load_yaml_documents(cluster.helm("template", "misspelt-field", chart, "--namespace", ns).stdout)
    deployment = next(o for o in rendered if o["kind"] == "Deployment")
    with pytest.raises(ApiError) as refused:
        cluster.plane.api.create(collection_path(deployment, ns), deployment, dryRun="All", fieldValidation="Strict")
    assert 'unknown field "spec.replica"' in refused.value.status["message"], refused.value.status
