"""The Helm chart (helm/pitchin) and the image recipe (deploy/docker), checked without a cluster.

The tools come from deploy/tools/install-ops-tools.sh, which builds helm and kubeconform with
`go install` and installs kubernetes-validate and checkov from PyPI into a cache outside the
clone (once per machine; afterwards it only prints where they are). Nothing here is skipped:
a missing tool is installed, a failing install fails the tests.

What is checked, for the default values and for values-production.yaml:
- `helm lint --strict`; values.schema.json rejects typos and out-of-range values, clearly;
- every rendered object against its schema with kubeconform -strict: Kubernetes 1.30 (the
  chart's oldest) and 1.37 (kubernetes-validate's schemas), CRD kinds against the schemas
  vendored in helm/pitchin/ci/crd-schemas (no kind is skipped);
- the chart agrees with the code: a KafkaTopic for every topic of all_topic_names(), the
  Kafka clients, KEDA triggers and KafkaUser ACLs follow the topic table, every PITCHIN_*
  variable is a real setting (and parses), the Dockerfile's and Deployments' entry points exist;
- a service's entry is deep-merged over serviceDefaults (tests/chart/test_generated_files.py
  checks that the chart's generated files, topics and dashboards, are what the code makes);
- every service is hardened: probes on /healthz and /readyz, non-root, read-only root
  filesystem, resources, NetworkPolicy, PodDisruptionBudget, topology spread;
- the web front (no database, no Kafka) gets neither: no database Secret, migration container,
  KafkaUser, KEDA trigger or Kafka/PostgreSQL egress; it reaches the four services' pods by
  their Services' names, and only it (besides the ingress controller and Prometheus) may call them;
- the migration Job is a pre-install/pre-upgrade hook running `python -m pitchin_core.migrate`;
- checkov (best-practice lint, kube-linter's stand-in) passes, each skipped check justified.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

import pitchin_core.migrate
from pitchin_core.contracts.topics import INGEST, TOPICS, all_topic_names, consumed_by, dead_letter_topic
from pitchin_core.kafka_auth import INGEST_PUBLISHER_PREFIX, INGEST_TRIMMER
from pitchin_core.settings import ServiceSettings
from pitchin_testing.install import PREFERRED_PG_MAJOR

pytestmark = pytest.mark.chart

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "pitchin"
PRODUCTION_VALUES = CHART / "values-production.yaml"
CRD_SCHEMAS = CHART / "ci" / "crd-schemas"
CHECKOV_CONFIG = CHART / ".checkov.yaml"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
INSTALL_SCRIPT = REPO / "deploy" / "tools" / "install-ops-tools.sh"
RELEASE = "pitchin"
NAMESPACE = "pitchin"
HTTP_PORT = 8000
# The processes, as the code knows them (each has a package services/<name>/pitchin_<name>): the
# four services and the web front.
CODE_SERVICES = tuple(sorted(p.name for p in (REPO / "services").iterdir() if (p / f"pitchin_{p.name}").is_dir()))
# Those with a database: they ship migrations (services/<name>/pitchin_<name>/migrations).
CODE_DATABASE_SERVICES = tuple(
    name for name in CODE_SERVICES if (REPO / "services" / name / f"pitchin_{name}" / "migrations").is_dir()
)
# Those with Kafka: the topic table names them as a writer or a consumer.
CODE_KAFKA_SERVICES = tuple(
    name for name in CODE_SERVICES if any(spec.written_by(name) or name in spec.consumers for spec in TOPICS)
)
VALUE_FILES = {"default": (), "production": (PRODUCTION_VALUES,)}

Obj = dict[str, Any]


# --- tools ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    helm: Path
    kubeconform: Path
    kubernetes_schemas: Path
    kubernetes_versions: tuple[str, ...]
    checkov: Path


@pytest.fixture(scope="session")
def tools() -> Tools:
    """Runs install-ops-tools.sh (idempotent: builds on the first run, then only reports)."""
    env = dict(os.environ, VENV=sys.prefix)
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{INSTALL_SCRIPT} failed:\n{result.stderr[-4000:]}"
    found = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    located = Tools(
        helm=Path(found["helm"]),
        kubeconform=Path(found["kubeconform"]),
        kubernetes_schemas=Path(found["kubernetes_schemas"]),
        kubernetes_versions=tuple(found["kubernetes_schema_versions"].split()),
        checkov=Path(found["checkov"]),
    )
    for tool in (located.helm, located.kubeconform, located.checkov):
        assert os.access(tool, os.X_OK), f"{tool} is missing after {INSTALL_SCRIPT}"
    return located


def run(args: list[str | Path], *, stdin: str | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], input=stdin, cwd=cwd, capture_output=True, text=True, timeout=300)


def load_yaml_documents(text: str) -> list[Obj]:
    # PyYAML arrives with kubernetes-validate (install-ops-tools.sh); imported late, untyped.
    yaml = importlib.import_module("yaml")
    return [doc for doc in yaml.safe_load_all(text) if doc]


def load_yaml_file(path: Path) -> Obj:
    yaml = importlib.import_module("yaml")
    loaded: Obj = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


# --- rendering --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    text: str
    objects: list[Obj]
    values: Obj

    def kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def named(self, kind: str, name: str) -> Obj:
        matches = [o for o in self.kind(kind) if o["metadata"]["name"] == name]
        assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
        return matches[0]

    def enabled_services(self) -> list[str]:
        return sorted(name for name, cfg in self.values["services"].items() if cfg["enabled"])

    def database_services(self) -> list[str]:
        """Enabled services with a database (all but those with `database: false`)."""
        return [name for name in self.enabled_services() if has_database(self.values["services"][name])]

    def kafka_services(self) -> list[str]:
        """Enabled services the chart made Kafka clients (their settings name the bootstrap servers)."""
        return [
            name
            for name in self.enabled_services()
            if "PITCHIN_KAFKA_BOOTSTRAP" in self.named("ConfigMap", service_fullname(name))["data"]
        ]


def has_database(cfg: Obj) -> bool:
    return cfg.get("database") is not False


def has_kafka(service: str) -> bool:
    """The topic table names the service a writer or a consumer."""
    return service in CODE_KAFKA_SERVICES


def service_fullname(service: str) -> str:
    return f"{RELEASE}-{service}"  # the release name contains the chart name: no prefix doubling


def helm_template(tools: Tools, *extra: str | Path, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    return run([tools.helm, "template", RELEASE, chart, "--namespace", NAMESPACE, *extra])


def merge(base: Obj, over: Obj) -> Obj:
    """`over` deep-merged into `base`: maps merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def merged_values(files: tuple[Path, ...]) -> Obj:
    """values.yaml overlaid with the given files, as Helm does, and each service's entry over
    serviceDefaults, as the chart does: what the templates see."""
    values = load_yaml_file(CHART / "values.yaml")
    for path in files:
        values = merge(values, load_yaml_file(path))
    values["services"] = {name: merge(values["serviceDefaults"], own) for name, own in values["services"].items()}
    return values


@pytest.fixture(scope="session")
def renders(tools: Tools) -> dict[str, Rendered]:
    out: dict[str, Rendered] = {}
    for label, files in VALUE_FILES.items():
        args: list[str | Path] = []
        for path in files:
            args += ["--values", path]
        result = helm_template(tools, *args)
        assert result.returncode == 0, f"helm template ({label}) failed:\n{result.stderr}"
        out[label] = Rendered(result.stdout, load_yaml_documents(result.stdout), merged_values(files))
    return out


@pytest.fixture(params=sorted(VALUE_FILES))
def rendered(request: pytest.FixtureRequest, renders: dict[str, Rendered]) -> Rendered:
    return renders[str(request.param)]


# --- lint and schemas -------------------------------------------------------------------------


@pytest.mark.parametrize("label", sorted(VALUE_FILES))
def test_helm_lint_strict(tools: Tools, label: str) -> None:
    args: list[str | Path] = [tools.helm, "lint", "--strict", CHART, "--namespace", NAMESPACE]
    for path in VALUE_FILES[label]:
        args += ["--values", path]
    result = run(args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def kubeconform(tools: Tools, manifests: str, version: str) -> subprocess.CompletedProcess[str]:
    k8s = f"{tools.kubernetes_schemas}/{{{{ .NormalizedKubernetesVersion }}}}-local{{{{ .StrictSuffix }}}}"
    return run(
        [
            tools.kubeconform,
            # One worker: each worker compiles the 1.4 MB definitions file again (2.4 s vs 9 s here).
            "-n",
            "1",
            "-strict",
            "-summary",
            "-output",
            "json",
            "-kubernetes-version",
            version,
            "-schema-location",
            f"{k8s}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
            "-schema-location",
            f"{CRD_SCHEMAS}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json",
            "-",
        ],
        stdin=manifests,
    )


def test_every_rendered_object_matches_its_schema(tools: Tools, rendered: Rendered) -> None:
    assert len(tools.kubernetes_versions) >= 2
    for version in tools.kubernetes_versions:
        result = kubeconform(tools, rendered.text, version)
        report = json.loads(result.stdout)
        problems = [f"{r['kind']}/{r['name']}: {r['msg']}" for r in report["resources"] if r["status"] != "statusValid"]
        assert result.returncode == 0 and not problems, f"Kubernetes {version}:\n" + "\n".join(problems)
        summary = report["summary"]
        assert summary["valid"] == len(rendered.objects), summary
        assert summary["skipped"] == 0 and summary["errors"] == 0, summary


def test_schema_validation_catches_wrong_objects(tools: Tools, renders: dict[str, Rendered]) -> None:
    """The local schemas really bite: a misspelt field fails, in a built-in kind and in a CRD kind."""
    text = renders["production"].text
    broken = {
        "Deployment": text.replace("revisionHistoryLimit: 5", "revisionHistoryLimit: 5\n  replica: 2", 1),
        "KafkaTopic": re.sub(r"(\n  partitions: \d+)", r"\1\n  partitons: 3", text, count=1),
        "KafkaUser": text.replace("type: simple", "type: simple\n    acl: []", 1),
        "Cluster": text.replace("instances: 3", "instances: 3\n  instance: 3", 1),
        "ScaledObject": text.replace("cooldownPeriod: 300", "cooldownPeriod: 300\n  cooldown: 300", 1),
        "ServiceMonitor": text.replace("honorLabels: true", "honorLabels: true\n      honourLabels: true", 1),
    }
    for kind, manifests in broken.items():
        assert manifests != text, f"could not break the {kind}"
    # Each kind broken in its own copy of the manifests, all validated in one run.
    documents = [doc for manifests in broken.values() for doc in manifests.split("\n---\n")]
    originals = set(text.split("\n---\n"))
    changed = [doc for doc in documents if doc not in originals]
    assert len(changed) == len(broken)
    result = kubeconform(tools, "\n---\n".join(changed), tools.kubernetes_versions[-1])
    invalid = {r["kind"]: r["msg"] for r in json.loads(result.stdout)["resources"] if r["status"] == "statusInvalid"}
    assert result.returncode != 0 and set(invalid) == set(broken), result.stdout
    for kind, typo in (("Deployment", "replica"), ("KafkaTopic", "partitons"), ("Cluster", "instance")):
        assert f"additional properties '{typo}' not allowed" in invalid[kind], invalid[kind]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["services.signups.replica=2"], "additional properties 'replica' not allowed"),
        (["services.signups.replicas=-1"], "at '/services/signups/replicas': minimum: got -1, want 0"),
        (["environment=prod"], "value must be one of 'local', 'test', 'staging', 'production'"),
        (["kafka.topics.defaults.partitions=0"], "at '/kafka/topics/defaults/partitions': minimum"),
        (
            ["kafka.topics.overrides.Pitchin_Donors.partitions=3"],
            "at '/kafka/topics/overrides': additional properties 'Pitchin_Donors' not allowed",
        ),
        (["kafka.strimzi.apiVersion=kafka.strimzi.io/v1alpha1"], "at '/kafka/strimzi/apiVersion'"),
        (["image.pullPolicy=Sometimes"], "at '/image/pullPolicy'"),
        (["services.notifications.env.SMTP_HOST=mail"], "at '/services/notifications/env'"),
        (["otel.sampleRatio=2"], "at '/otel/sampleRatio': maximum"),
        (["networkPolicy.enabeld=true"], "additional properties 'enabeld' not allowed"),
        (["services.web.databse=false"], "additional properties 'databse' not allowed"),
        (["services.web.database=true"], "at '/services/web/database'"),
        (["services.web.calls[0]=Signups"], "at '/services/web/calls/0'"),
        # Which topics a service writes and reads is the code's (files/topics.yaml), not a value.
        (["services.web.kafka.produces[0]=pitchin.donors.v1"], "additional properties 'kafka' not allowed"),
        (["serviceDefaults.autoscaling.maxReplicas=0"], "at '/serviceDefaults/autoscaling/maxReplicas': minimum"),
    ],
)
def test_values_schema_rejects_wrong_values(tools: Tools, settings: list[str], message: str) -> None:
    args: list[str | Path] = []
    for setting in settings:
        args += ["--set", setting]
    result = helm_template(tools, *args)
    assert result.returncode != 0, f"{settings} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    assert message in result.stderr, result.stderr


INCONSISTENT_VALUES: dict[str, tuple[Obj, str]] = {
    "an override of a topic the code does not have": (
        {"kafka": {"topics": {"overrides": {"pitchin.donors.v2": {"partitions": 6}}}}},
        'kafka.topics.overrides names "pitchin.donors.v2", which is not a topic of the code (files/topics.yaml)',
    ),
    "an ingress without a host": (
        {"services": {"signups": {"ingress": {"enabled": True}}}},
        "services.signups.ingress.host is required",
    ),
    "no database Secret": ({"database": {"existingSecret": ""}}, "name the Secret holding the PostgreSQL URI"),
    "a call to an unknown service": (
        {"services": {"web": {"calls": ["signups", "signup"]}}},
        'services.web.calls names "signup", which is not another enabled service',
    ),
    "a call to a disabled service": (
        {"services": {"matching": {"enabled": False}}},
        'services.web.calls names "matching", which is not another enabled service',
    ),
}


@pytest.mark.parametrize("case", sorted(INCONSISTENT_VALUES))
def test_chart_refuses_inconsistent_values(tools: Tools, tmp_path: Path, case: str) -> None:
    overrides, message = INCONSISTENT_VALUES[case]
    values = tmp_path / "values.json"  # JSON is YAML
    values.write_text(json.dumps(overrides), encoding="utf-8")
    result = helm_template(tools, "--values", values)
    assert result.returncode != 0, f"{case}: accepted"
    assert message in result.stderr, result.stderr


def test_chart_refuses_unsupported_kubernetes(tools: Tools) -> None:
    result = helm_template(tools, "--kube-version", "1.29.0")
    assert result.returncode != 0 and "kubeVersion" in result.stderr, result.stderr
    assert helm_template(tools, "--kube-version", "1.30.0").returncode == 0


def test_a_service_entry_is_deep_merged_over_the_defaults(tools: Tools) -> None:
    """A service says only what differs: maps merge key by key, and its own false or 0 wins."""
    result = helm_template(
        tools,
        "--set",
        "services.signups.resources.limits.memory=1Gi",
        "--set",
        "services.signups.topologySpread.enabled=false",
        "--set",
        "services.signups.preStopSleepSeconds=0",
    )
    assert result.returncode == 0, result.stderr
    pods = {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in load_yaml_documents(result.stdout)
        if o["kind"] == "Deployment"
    }
    defaults = load_yaml_file(CHART / "values.yaml")["serviceDefaults"]
    signups, scheduling = pods[service_fullname("signups")], pods[service_fullname("scheduling")]
    (container,) = signups["containers"]
    assert container["resources"] == merge(defaults["resources"], {"limits": {"memory": "1Gi"}})
    assert "topologySpreadConstraints" not in signups and "lifecycle" not in container
    (other,) = scheduling["containers"]
    assert other["resources"] == defaults["resources"] and scheduling["topologySpreadConstraints"]
    assert other["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(defaults["preStopSleepSeconds"])]


def test_each_pod_runs_its_workers(rendered: Rendered) -> None:
    """Several uvicorn workers per pod (PITCHIN_WORKERS), matching's too: its index follows the tables."""
    workers = {
        name: rendered.named("ConfigMap", service_fullname(name))["data"]["PITCHIN_WORKERS"] for name in CODE_SERVICES
    }
    assert workers == {"matching": "2", "notifications": "2", "scheduling": "2", "signups": "2", "web": "2"}


# --- the chart agrees with the code -----------------------------------------------------------


def test_chart_services_are_the_code_services(rendered: Rendered) -> None:
    assert CODE_SERVICES == ("matching", "notifications", "scheduling", "signups", "web")
    assert sorted(rendered.values["services"]) == list(CODE_SERVICES)
    for name, cfg in rendered.values["services"].items():
        assert cfg["module"] == f"pitchin_{name}"
    # Every process has a schema (the web front's holds its sessions); only the four services have Kafka.
    assert CODE_DATABASE_SERVICES == CODE_SERVICES
    assert CODE_KAFKA_SERVICES == ("matching", "notifications", "scheduling", "signups")
    assert rendered.database_services() == list(CODE_DATABASE_SERVICES)
    assert set(rendered.database_services()) == set(pitchin_core.migrate.SERVICES)
    assert rendered.kafka_services() == list(CODE_KAFKA_SERVICES)
    web = rendered.values["services"]["web"]
    # The values name no topics: who writes and reads what is the code's (files/topics.yaml).
    assert not any("kafka" in cfg for cfg in rendered.values["services"].values())
    # The web front calls the four services (its settings name a URL for each).
    assert sorted(web["calls"]) == sorted(CODE_KAFKA_SERVICES)
    assert {f"{name}_url" for name in web["calls"]} <= set(settings_class("web").model_fields)


def test_every_topic_the_code_uses_has_a_kafka_topic(rendered: Rendered) -> None:
    rendered_topics = {t["metadata"]["name"]: t for t in rendered.kind("KafkaTopic")}
    wanted = all_topic_names()
    missing = [name for name in wanted if name not in rendered_topics]
    unused = sorted(set(rendered_topics) - set(wanted))
    assert not missing, f"the chart does not create {missing}: run `make contracts` (helm/pitchin/files/topics.yaml)"
    assert not unused, f"the chart creates topics no code uses: {unused}; run `make contracts`"
    cluster = rendered.values["kafka"]["strimzi"]["clusterName"]
    for spec in TOPICS:
        assert rendered_topics[spec.name]["spec"]["partitions"] >= spec.partitions, (
            f"{spec.name}: fewer partitions than the code asks for"
        )
    overrides = rendered.values["kafka"]["topics"]["overrides"]
    assert set(overrides) <= set(wanted)
    for name, topic in rendered_topics.items():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        assert topic["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", name
        # Dead-letter topics take their own defaults (one partition is enough, kept longer).
        defaults = rendered.values["kafka"]["topics"]["deadLetterDefaults" if name.endswith(".dlq") else "defaults"]
        override = overrides.get(name, {})
        expected = {**defaults, **override, "config": {**defaults["config"], **override.get("config", {})}}
        spec = topic["spec"]
        assert (spec["partitions"], spec["replicas"]) == (expected["partitions"], expected["replicas"]), name
        assert spec["config"] == {key: str(value) for key, value in expected["config"].items()}, name
        assert int(spec["config"]["min.insync.replicas"]) <= spec["replicas"], name


def test_default_partitions_give_every_consumer_of_a_scaled_out_service_work(renders: dict[str, Rendered]) -> None:
    """With the default values every topic a service consumes has a partition for each consumer
    the service can run at its most: autoscaling.maxReplicas pods x workers (a consumer each);
    more consumers than partitions would sit idle while lag grows."""
    rendered = renders["default"]
    partitions = {t["metadata"]["name"]: t["spec"]["partitions"] for t in rendered.kind("KafkaTopic")}
    for name, cfg in rendered.values["services"].items():
        most = cfg["autoscaling"]["maxReplicas"] * cfg.get("workers", 1)
        for spec in consumed_by(name):
            assert partitions[spec.name] >= most, f"{spec.name}: {partitions[spec.name]} partitions for {name}'s {most}"


def test_production_topics_survive_a_broker_loss(renders: dict[str, Rendered]) -> None:
    for topic in renders["production"].kind("KafkaTopic"):
        spec = topic["spec"]
        assert spec["replicas"] >= 3 and int(spec["config"]["min.insync.replicas"]) == spec["replicas"] - 1, topic


def test_kafka_clients_are_the_services_the_topic_table_names(rendered: Rendered) -> None:
    """Kafka settings and Kafka egress for the services the table names a writer or a consumer, only them."""
    assert rendered.kafka_services() == [name for name in rendered.enabled_services() if has_kafka(name)]
    if not rendered.values["networkPolicy"]["enabled"]:
        return
    kafka_ports = set(rendered.values["networkPolicy"]["kafka"]["ports"])
    for name in rendered.enabled_services():
        egress = rendered.named("NetworkPolicy", service_fullname(name))["spec"]["egress"]
        reaches_kafka = any(kafka_ports & {p["port"] for p in rule["ports"]} for rule in egress)
        assert reaches_kafka == has_kafka(name), name


def test_kafka_users_have_least_privilege_acls(renders: dict[str, Rendered]) -> None:
    rendered = renders["production"]
    assert not renders["default"].kind("KafkaUser")
    users = sorted(user["metadata"]["name"] for user in rendered.kind("KafkaUser"))
    assert users == sorted(service_fullname(name) for name in rendered.kafka_services())
    assert service_fullname("web") not in users, "the web front has no Kafka client"
    for name in rendered.kafka_services():
        user = rendered.named("KafkaUser", service_fullname(name))
        assert user["apiVersion"] == rendered.values["kafka"]["strimzi"]["apiVersion"]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        granted: set[tuple[str, str, str]] = set()
        for acl in user["spec"]["authorization"]["acls"]:
            resource = acl["resource"]
            # The one prefix: the ingest consumers read every publisher's own topic (kafka_auth).
            assert resource["patternType"] == "literal" or resource["name"] == INGEST_PUBLISHER_PREFIX, acl
            assert "All" not in acl["operations"], acl
            granted |= {(resource["type"], resource["name"], op) for op in acl["operations"]}
        expected: set[tuple[str, str, str]] = set()
        for spec in TOPICS:
            if spec.written_by(name):
                expected |= {("topic", spec.name, "Write"), ("topic", spec.name, "Describe")}
            if name in spec.consumers:
                dlq = dead_letter_topic(spec.name, name)
                expected |= {("topic", spec.name, "Read"), ("topic", spec.name, "Describe")}
                expected |= {("topic", dlq, "Write"), ("topic", dlq, "Describe"), ("group", name, "Read")}
                if spec is INGEST:
                    prefix = INGEST_PUBLISHER_PREFIX
                    expected |= {("topic", prefix, "Read"), ("topic", prefix, "Describe")}
        if name == INGEST_TRIMMER:
            # It deletes what every ingest consumer group has applied (pitchin_signups.ingest_trim).
            expected |= {("topic", INGEST.name, "Delete"), ("topic", INGEST_PUBLISHER_PREFIX, "Delete")}
            expected |= {("group", g, "Describe") for g in INGEST.consumers if g != name}
        assert granted == expected, f"{name}: extra {granted - expected}, missing {expected - granted}"


def settings_class(service: str) -> type[ServiceSettings]:
    """The settings class a service's main module builds from the environment."""
    module = importlib.import_module(f"pitchin_{service}.main")
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, ServiceSettings) and value.__module__ == module.__name__
    ]
    assert len(classes) == 1, f"pitchin_{service}.main should define one ServiceSettings subclass"
    return classes[0]


def env_names(settings: type[BaseSettings]) -> set[str]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    return {f"{prefix}{field}".upper() for field in settings.model_fields}


def container_env(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def test_every_pitchin_variable_is_a_real_setting_and_parses(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in rendered.enabled_services():
        cls = settings_class(name)
        config = rendered.named("ConfigMap", service_fullname(name))["data"]
        pod = rendered.named("Deployment", service_fullname(name))["spec"]["template"]["spec"]
        env = {**config, **container_env(pod["containers"][0])}
        chart_names = {key for key in env if key.startswith("PITCHIN_")}
        unknown = chart_names - env_names(cls)
        assert not unknown, f"{name}: the chart sets {sorted(unknown)}, which {cls.__name__} does not read"
        cfg = rendered.values["services"][name]
        database_env = {"PITCHIN_DATABASE_URL", "PITCHIN_DATABASE_POOL_SIZE", "PITCHIN_MIGRATE_ON_START"}
        kafka_env = {"PITCHIN_KAFKA_BOOTSTRAP", "PITCHIN_CONSUMER_HEARTBEAT_MS", "PITCHIN_CREATE_TOPICS"}
        if has_database(cfg):
            assert env["PITCHIN_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"], name
        else:
            assert not chart_names & database_env, f"{name} has no database: {sorted(chart_names & database_env)}"
        if not has_kafka(name):
            assert not chart_names & kafka_env, f"{name} has no Kafka: {sorted(chart_names & kafka_env)}"
        # The services it calls, by the chart's own Service names.
        for callee in cfg.get("calls", []):
            url = f"http://{service_fullname(callee)}:{HTTP_PORT}"
            assert config[f"PITCHIN_{callee.upper()}_URL"] == url, f"{name} calls {callee}"
            rendered.named("Service", service_fullname(callee))
        # The values the chart sets parse as the service would parse them.
        for key in list(os.environ):
            if key.startswith("PITCHIN_"):
                monkeypatch.delenv(key)
        for key, value in config.items():
            monkeypatch.setenv(key, value)
        # What the Secrets hold in a real install: a URI with a real password, long random secrets.
        for key, var in env.items():
            if key.startswith("PITCHIN_") and isinstance(var, dict) and "secretKeyRef" in var.get("valueFrom", {}):
                monkeypatch.setenv(key, "s3cr3t-" + "x" * 40)
        if has_database(cfg):
            monkeypatch.setenv("PITCHIN_DATABASE_URL", "postgresql://pitchin:a-real-secret@db:5432/pitchin")
        try:
            settings = cls()
        except ValidationError as exc:
            pytest.fail(f"{name}: the chart's settings do not parse: {exc}")
        assert settings.service_name == name == cls.model_fields["service_name"].default
        assert settings.http_host == "0.0.0.0" and settings.http_port == HTTP_PORT
        assert settings.environment == rendered.values["environment"]
        assert settings.public_base_url == rendered.values["publicBaseUrl"]
        if has_database(cfg):
            assert settings.migrate_on_start is False
        if has_kafka(name):
            assert settings.create_topics is False
            assert settings.kafka_bootstrap == rendered.values["kafka"]["bootstrap"]
        for callee in cfg.get("calls", []):
            assert getattr(settings, f"{callee}_url") == f"http://{service_fullname(callee)}:{HTTP_PORT}"
    for container in rendered.kind("Job")[0]["spec"]["template"]["spec"]["containers"]:
        names = {key for key in container_env(container) if key.startswith("PITCHIN_")}
        assert names <= env_names(ServiceSettings), names


def test_production_settings_refuse_placeholder_passwords() -> None:
    """What environment: production buys: the chart's Secret must hold a real password."""
    with pytest.raises(ValidationError, match="placeholder password"):
        ServiceSettings(environment="production", database_url="postgresql://pitchin:changeme@db:5432/pitchin")


# --- every service is hardened ----------------------------------------------------------------


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_every_service_is_probed_hardened_and_isolated(rendered: Rendered) -> None:
    uid = dockerfile_uid()
    assert rendered.enabled_services() == list(CODE_SERVICES)
    for name in rendered.enabled_services():
        fullname = service_fullname(name)
        deployment = rendered.named("Deployment", fullname)
        template = deployment["spec"]["template"]
        pod, labels = template["spec"], template["metadata"]["labels"]
        assert selects(deployment["spec"]["selector"], labels)
        (container,) = pod["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": HTTP_PORT}
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, f"{name} {probe}"
        # /readyz waits up to 2 s for PostgreSQL and then 2 s for Kafka (the web front: 2 s per service,
        # in turn; a probe that times out reads as not ready, which is what a slow service means).
        assert container["readinessProbe"]["timeoutSeconds"] >= 4
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"], name
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True and security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
        assert security["seccompProfile"]["type"] == "RuntimeDefault" and security["runAsUser"] == uid
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
        assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == fullname
        assert rendered.named("ServiceAccount", fullname)["automountServiceAccountToken"] is False
        tmp = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}[tmp["/tmp"]]
        assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        }
        assert selects(rendered.named("PodDisruptionBudget", fullname)["spec"]["selector"], labels)
        service = rendered.named("Service", fullname)
        assert selects({"matchLabels": service["spec"]["selector"]}, labels)
        assert service["spec"]["ports"][0]["targetPort"] == "http"
        policies = [p for p in rendered.kind("NetworkPolicy") if selects(p["spec"]["podSelector"], labels)]
        assert len(policies) == 1, f"{name} should have one NetworkPolicy, has {len(policies)}"
        assert policies[0]["spec"]["policyTypes"] == ["Ingress", "Egress"]


def pod_labels(rendered: Rendered, service: str) -> dict[str, str]:
    labels: dict[str, str] = rendered.named("Deployment", service_fullname(service))["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def test_network_policies_allow_only_what_the_services_need(renders: dict[str, Rendered]) -> None:
    rendered = renders["production"]
    for policy in rendered.kind("NetworkPolicy"):
        spec = policy["spec"]
        for rule in spec["ingress"]:
            assert rule.get("from"), f"{policy['metadata']['name']} admits traffic from anywhere: {rule}"
            assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
        extra = set()
        needed = {53, 4318}
        calls: list[str] = []
        component = spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        if component in rendered.values["services"]:
            cfg = rendered.values["services"][component]
            needed |= {5432} if has_database(cfg) else set()
            needed |= {9092} if has_kafka(component) else set()
            calls = cfg.get("calls", [])
            for rule in cfg.get("networkPolicy", {}).get("extraEgress", []):
                extra |= {p["port"] for p in rule["ports"]}
        else:
            needed |= {5432}  # the migration Job
        for rule in spec["egress"]:
            assert rule.get("to"), f"{policy['metadata']['name']} may reach anywhere: {rule}"
            ports = {p["port"] for p in rule["ports"]}
            if ports == {HTTP_PORT} and calls:
                # HTTP only to the pods of the services it calls, in this namespace.
                for peer in rule["to"]:
                    assert set(peer) == {"podSelector"}, f"{component} may call more than the chart's pods: {peer}"
                    assert any(selects(peer["podSelector"], pod_labels(rendered, c)) for c in calls), peer
                continue
            assert ports <= needed | extra, f"{policy['metadata']['name']}: {rule}"
    smtp = [r for r in rendered.named("NetworkPolicy", service_fullname("notifications"))["spec"]["egress"]]
    assert any(p["port"] == 25 for r in smtp for p in r["ports"]), "notifications must reach its SMTP relay"
    assert not any(
        p["port"] == 25
        for r in rendered.named("NetworkPolicy", service_fullname("signups"))["spec"]["egress"]
        for p in r["ports"]
    )


def test_the_web_front_calls_the_services_and_has_no_kafka(rendered: Rendered) -> None:
    web = rendered.values["services"]["web"]
    fullname = service_fullname("web")
    (container,) = rendered.named("Deployment", fullname)["spec"]["template"]["spec"]["containers"]
    env = container_env(container)
    # Its secrets through secretEnv, from the services' Secret.
    for name, key in (("PITCHIN_SESSION_SECRET", "session-secret"), ("PITCHIN_FEDERATION_KEY", "federation-key")):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": rendered.values["secrets"]["existingSecret"], "key": key}, name
    # Its own schema, for the server-side sessions.
    assert "PITCHIN_DATABASE_URL" in env
    # Neither a KafkaUser nor KEDA: it consumes nothing.
    assert not [o for o in rendered.kind("KafkaUser") if o["metadata"]["name"] == fullname]
    assert not [o for o in rendered.kind("ScaledObject") if o["spec"]["scaleTargetRef"]["name"] == fullname]
    if not rendered.values["networkPolicy"]["enabled"]:
        return
    own = pod_labels(rendered, "web")
    policy = rendered.named("NetworkPolicy", fullname)
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert not egress_ports & set(rendered.values["networkPolicy"]["kafka"]["ports"]), egress_ports
    ingress_peers = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    if web["ingress"]["enabled"]:
        assert all(peer in ingress_peers for peer in rendered.values["networkPolicy"]["ingressControllerPeers"])
    for callee in web["calls"]:
        labels = pod_labels(rendered, callee)
        # web may reach the callee's pods on their HTTP port ...
        assert any(
            any(
                selects(peer.get("podSelector", {}), labels) and "namespaceSelector" not in peer
                for peer in rule.get("to", [])
            )
            and {"port": HTTP_PORT, "protocol": "TCP"} in rule["ports"]
            for rule in policy["spec"]["egress"]
        ), f"web cannot reach {callee}"
        # ... and the callee admits web's pods.
        callee_policy = rendered.named("NetworkPolicy", service_fullname(callee))
        assert any(
            set(peer) == {"podSelector"} and selects(peer["podSelector"], own)
            for rule in callee_policy["spec"]["ingress"]
            for peer in rule["from"]
        ), f"{callee} does not admit web"
    # Nothing calls web from inside: only the ingress controller and Prometheus reach it.
    allowed = [
        *rendered.values["networkPolicy"]["ingressControllerPeers"],
        *rendered.values["networkPolicy"]["monitoringPeers"],
    ]
    assert all(peer in allowed for peer in ingress_peers), ingress_peers


def test_migrations_run_as_a_hook_job_before_install_and_upgrade(rendered: Rendered) -> None:
    (job,) = rendered.kind("Job")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    migrated = []
    for container in pod["containers"]:
        command = container["command"]
        assert command[:3] == ["python", "-m", "pitchin_core.migrate"], command
        assert importlib.util.find_spec(command[2]) is not None
        migrated.append(command[3])
        assert container_env(container)["PITCHIN_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True and security["runAsNonRoot"] is True
    assert sorted(migrated) == rendered.database_services()
    assert set(migrated) == set(pitchin_core.migrate.SERVICES)
    if rendered.values["networkPolicy"]["enabled"]:
        (policy,) = [p for p in rendered.kind("NetworkPolicy") if p["metadata"]["name"].endswith("-migrate")]
        assert selects(policy["spec"]["podSelector"], job["spec"]["template"]["metadata"]["labels"])
        assert set(policy["metadata"]["annotations"]["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
        assert int(policy["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])


def test_database_cluster_precedes_migrations(renders: dict[str, Rendered]) -> None:
    assert not renders["default"].kind("Cluster")
    rendered = renders["production"]
    cluster_values = rendered.values["database"]["cluster"]
    cluster = rendered.named("Cluster", cluster_values["name"])
    assert cluster["spec"]["imageCatalogRef"]["major"] == int(PREFERRED_PG_MAJOR), "PostgreSQL major must match local"
    assert cluster["spec"]["instances"] >= 3
    hook = cluster["metadata"]["annotations"]
    assert hook["helm.sh/hook"] == "pre-install" and "helm.sh/hook-delete-policy" not in hook
    (job,) = rendered.kind("Job")
    assert int(hook["helm.sh/hook-weight"]) < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    for container in job["spec"]["template"]["spec"]["containers"]:
        ref = container_env(container)["PITCHIN_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": f"{cluster_values['name']}-app", "key": "uri"}
    # Connections: every replica's pool, at the autoscalers' maximum, fits under max_connections.
    most = sum(rendered.values["services"][name]["autoscaling"]["maxReplicas"] for name in rendered.database_services())
    pool = rendered.values["database"]["poolSize"]
    assert most * pool < int(cluster["spec"]["postgresql"]["parameters"]["max_connections"])


def test_autoscaling_uses_keda_for_consumers_and_never_two_autoscalers(renders: dict[str, Rendered]) -> None:
    rendered = renders["production"]
    scaled = {o["spec"]["scaleTargetRef"]["name"]: o for o in rendered.kind("ScaledObject")}
    hpas = {o["spec"]["scaleTargetRef"]["name"]: o for o in rendered.kind("HorizontalPodAutoscaler")}
    assert not set(scaled) & set(hpas)
    for name in rendered.enabled_services():
        fullname = service_fullname(name)
        cfg = rendered.values["services"][name]
        assert "replicas" not in rendered.named("Deployment", fullname)["spec"], "the autoscaler owns replicas"
        consumes = sorted(spec.name for spec in consumed_by(name))
        if consumes:
            triggers = scaled[fullname]["spec"]["triggers"]
            kafka = [t["metadata"] for t in triggers if t["type"] == "kafka"]
            assert sorted(t["topic"] for t in kafka) == consumes
            assert {t["consumerGroup"] for t in kafka} == {name}
            assert {t["bootstrapServers"] for t in kafka} == {rendered.values["kafka"]["bootstrap"]}
        else:
            assert hpas[fullname]["spec"]["maxReplicas"] == cfg["autoscaling"]["maxReplicas"]
    assert not renders["default"].kind("ScaledObject") and not renders["default"].kind("HorizontalPodAutoscaler")


def test_ingresses_route_to_the_service_port(renders: dict[str, Rendered]) -> None:
    rendered = renders["production"]
    for ingress in rendered.kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["port"] == {"name": "http"}
                rendered.named("Service", backend["name"])
        assert ingress["spec"]["tls"][0]["hosts"] == [rule["host"] for rule in ingress["spec"]["rules"]]
    assert len(rendered.kind("Ingress")) == len(rendered.enabled_services())
    # The public pages answer on the host of publicBaseUrl, the address links in emails point at.
    web = rendered.named("Ingress", service_fullname("web"))
    assert [rule["host"] for rule in web["spec"]["rules"]] == [urlsplit(rendered.values["publicBaseUrl"]).hostname]


# --- monitoring -------------------------------------------------------------------------------


METRIC_DECLARATION = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*[\"'](pitchin_[a-z0-9_]+)[\"']")
METRIC_SERIES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
}


def exported_metric_names() -> set[str]:
    """Every pitchin_* series the code can export, from the prometheus_client declarations."""
    names: set[str] = set()
    sources = [*(REPO / "libs" / "pitchin_core").rglob("*.py"), *(REPO / "services").glob("*/pitchin_*/**/*.py")]
    for path in sources:
        for kind, name in METRIC_DECLARATION.findall(path.read_text(encoding="utf-8")):
            base = name.removesuffix("_total") if kind == "Counter" else name
            names |= {base + suffix for suffix in METRIC_SERIES[kind]}
    assert "pitchin_http_requests_total" in names and "pitchin_outbox_oldest_age_seconds" in names
    return names


def test_prometheus_rules_watch_real_metrics(tools: Tools, renders: dict[str, Rendered]) -> None:
    assert not renders["default"].kind("PrometheusRule")
    (rule,) = renders["production"].kind("PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"PitchInServiceDown", "PitchInHighErrorRatio", "PitchInDeadLetters", "PitchInOutboxStuck"} <= set(alerts)
    exported = exported_metric_names()
    for name, alert in alerts.items():
        for metric in re.findall(r"\b(pitchin_[a-z_]+)\b", alert["expr"]):
            assert metric in exported, f"{name} watches {metric}, which no service exports"
        assert alert["labels"]["severity"] in {"warning", "critical"}
    assert 'up{job="pitchin"}' in alerts["PitchInServiceDown"]["expr"]
    for monitor in renders["production"].kind("ServiceMonitor"):
        assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/part-of"  # job="pitchin", as the rules expect
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    promtool = shutil.which("promtool")  # an extra when Debian's prometheus package is installed
    if promtool:
        result = run([promtool, "check", "rules", CHART / "files" / "prometheus-rules.yaml"])
        assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_become_configmaps(tools: Tools, tmp_path: Path, renders: dict[str, Rendered]) -> None:
    shipped = sorted((CHART / "files" / "dashboards").glob("*.json"))
    for path in shipped:
        json.loads(path.read_text(encoding="utf-8"))
    maps = [c for c in renders["production"].kind("ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]]
    assert len(maps) == len(shipped)
    # With a dashboard added (an observability change), it renders labelled for the sidecar.
    chart = tmp_path / "pitchin"
    shutil.copytree(CHART, chart)
    (chart / "files" / "dashboards" / "pitchin_test.overview.json").write_text(
        json.dumps({"title": "Pitch In test", "panels": []}), encoding="utf-8"
    )
    result = helm_template(tools, "--values", PRODUCTION_VALUES, chart=chart)
    assert result.returncode == 0, result.stderr
    added = [
        o
        for o in load_yaml_documents(result.stdout)
        if o["kind"] == "ConfigMap" and "pitchin_test.overview.json" in o.get("data", {})
    ]
    assert len(added) == 1 and added[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(added[0]["data"]["pitchin_test.overview.json"])["title"] == "Pitch In test"


# --- the image --------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def dockerfile_uid() -> int:
    (user,) = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit(), "USER must be numeric so that runAsNonRoot can verify it"
    return int(uid)


def test_dockerfile_starts_services_as_they_start_locally(renders: dict[str, Rendered]) -> None:
    instructions = dockerfile_instructions()
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) >= 2, "multi-stage: build wheels, then a runtime without build tools"
    python = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    assert python == ">=3.11,<3.12"
    assert all(s.startswith("python:3.11-slim") for s in stages), stages
    (cmd,) = [json.loads(rest) for keyword, rest in instructions if keyword == "CMD"]
    assert cmd[:2] == ["python", "-m"] and importlib.util.find_spec(f"{cmd[2]}.__main__") is not None, cmd
    assert not [rest for keyword, rest in instructions if keyword == "ENTRYPOINT"], "CMD is replaced per Deployment"
    assert dockerfile_uid() >= 10000
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    image_settings = dict(re.findall(r"\b(PITCHIN_[A-Z_]+)=(\S+)", env))
    assert image_settings == {"PITCHIN_HTTP_HOST": "0.0.0.0", "PITCHIN_HTTP_PORT": str(HTTP_PORT)}
    assert [rest for keyword, rest in instructions if keyword == "EXPOSE"] == [str(HTTP_PORT)]
    assert "pip install --no-index --find-links /wheels pitchin" in DOCKERFILE.read_text(encoding="utf-8")
    # The same entry points in every Deployment, and the modules exist with a __main__.
    for rendered in renders.values():
        for name in rendered.enabled_services():
            (container,) = rendered.named("Deployment", service_fullname(name))["spec"]["template"]["spec"][
                "containers"
            ]
            assert container["command"] == ["python", "-m", f"pitchin_{name}"]
            assert importlib.util.find_spec(f"pitchin_{name}.__main__") is not None
    ignored = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    assert ignored[ignored.index("*") :][:4] == ["*", "!pyproject.toml", "!libs/", "!services/"]
    assert "services/*/tests/" in ignored and "libs/pitchin_testing/" in ignored


# --- best-practice lint -----------------------------------------------------------------------


def checkov_skips() -> dict[str, str]:
    """check id -> justification, from the comment on its line in .checkov.yaml."""
    skips = {}
    for line in CHECKOV_CONFIG.read_text(encoding="utf-8").splitlines():
        found = re.match(r"^\s*-\s*(CKV2?_[A-Z0-9_]+)\s*(?:#\s*(.*))?$", line)
        if found:
            skips[found.group(1)] = (found.group(2) or "").strip()
    return skips


def test_checkov_passes_with_every_skip_justified(tools: Tools, renders: dict[str, Rendered], tmp_path: Path) -> None:
    skips = checkov_skips()
    assert skips, "expected the skipped checks to be listed in .checkov.yaml"
    unjustified = [check for check, why in skips.items() if len(why) < 20]
    assert not unjustified, f"explain why each of these is skipped, on its line in .checkov.yaml: {unjustified}"
    for label, rendered in renders.items():
        (tmp_path / f"{label}.yaml").write_text(rendered.text, encoding="utf-8")
    shutil.copy(DOCKERFILE, tmp_path / "Dockerfile")
    result = run(
        [tools.checkov, "--config-file", CHECKOV_CONFIG, "--directory", tmp_path, "--output", "json"], cwd=tmp_path
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{r['check_type']}: {c['check_id']} {c['check_name']} ({c['resource']})"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    assert result.returncode == 0 and not failed, "\n".join(failed) or result.stderr[-2000:]
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    assert {r["check_type"] for r in reports} == {"kubernetes", "dockerfile"} and passed > 100, reports


def test_each_kafka_client_logs_in_as_its_own_kafka_user(renders: dict[str, Rendered]) -> None:
    rendered = renders["production"]
    for name in rendered.kafka_services():
        fullname = service_fullname(name)
        (container,) = rendered.named("Deployment", fullname)["spec"]["template"]["spec"]["containers"]
        env = container_env(container)
        # The KafkaUser's name is its SCRAM user name; Strimzi writes its password to a Secret of that name.
        assert env["PITCHIN_KAFKA_USERNAME"]["value"] == rendered.named("KafkaUser", fullname)["metadata"]["name"]
        assert env["PITCHIN_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": fullname, "key": "password"}
    (web,) = rendered.named("Deployment", service_fullname("web"))["spec"]["template"]["spec"]["containers"]
    assert "PITCHIN_KAFKA_USERNAME" not in container_env(web)
    # Without KafkaUsers (the default values) there are no credentials to name.
    (plain,) = renders["default"].named("Deployment", service_fullname("signups"))["spec"]["template"]["spec"][
        "containers"
    ]
    assert "PITCHIN_KAFKA_PASSWORD" not in container_env(plain)
