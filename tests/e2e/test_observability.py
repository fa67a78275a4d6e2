"""Alerts and dashboards validate, and watch metrics the running services really export.

- ``promtool check rules`` and ``promtool test rules`` pass (promtool is installed by
  deploy/observability/install.sh when missing: never skipped);
- every dashboard query parses as PromQL (each becomes a recording rule promtool checks);
- with the four services running and traffic driven through them, every metric a dashboard
  panel or an alert names is exported, the RED counters and the lag gauges move, the lag
  gauge has a series per partition of every consumed topic, and no label value is an id.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from pitchin_core.contracts.topics import consumed_by
from pitchin_testing.install import repo_root
from pitchin_testing.kafka import KafkaServer, admin_options

# The web front has no Kafka, outbox or database: these checks are about the four that do.
from pitchin_testing.processes import BACKENDS as SERVICES
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.conftest import Tenant, new_tenant
from tests.e2e.helpers import bearer, create_event, eventually, sign_up

pytestmark = pytest.mark.e2e

OBSERVABILITY = repo_root() / "deploy" / "observability"
RULES = OBSERVABILITY / "rules" / "pitchin.rules.yaml"
RULE_TESTS = OBSERVABILITY / "rules" / "pitchin.rules.test.yaml"
CHART_RULES = repo_root() / "helm" / "pitchin" / "files" / "prometheus-rules.yaml"


def _load_script(path: Path) -> ModuleType:
    """deploy/observability/dashboards.py, by path: deploy/ is not a package."""
    spec = importlib.util.spec_from_file_location(f"pitchin_observability_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


dashboards = _load_script(OBSERVABILITY / "dashboards.py")


# Series Prometheus makes itself rather than scraping them.
SYNTHETIC = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}
# Label values that would be ids: prefixed ids (don_…, evt_…), UUIDs, long hex or digit runs,
# e-mail addresses, and the per-test tenant ids (fed-1a2b3c4d).
ID_LIKE = re.compile(
    r"(\b[a-z]{2,5}_[0-9a-f]{8,}"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|[0-9a-f]{16,}|\d{6,}|@|\b(fed|org)-[0-9a-f]{6,})",
    re.IGNORECASE,
)
NUMERIC_LABELS = {"le", "quantile", "partition"}
IDENTIFIER = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "time",
}


# --- tools ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool from Debian's prometheus package, installed by the project's script if missing."""
    found = shutil.which("promtool")
    if found is None:
        subprocess.run(["bash", str(OBSERVABILITY / "install.sh")], check=True)
        found = shutil.which("promtool")
    assert found, "deploy/observability/install.sh did not install promtool"
    return found


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=120)


def _rules() -> list[dict[str, Any]]:
    yaml = importlib.import_module("yaml")  # PyYAML, without stubs (as tests/chart does)
    loaded = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def _dashboard_files() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(dashboards.DASHBOARDS.glob("*.json"))}


def _grafana_to_promql(expr: str) -> str:
    """Grafana's interval variables replaced by durations Prometheus accepts."""
    return re.sub(r"\$__(rate_interval|interval|range)|\$\{__(rate_interval|interval|range)\}", "5m", expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (identifiers that are not functions, labels or keywords)."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_groupings = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_labels)
    without_durations = re.sub(r"\[[^\]]*\]", "", without_groupings)
    names = {m for m in IDENTIFIER.findall(without_durations) if m.lower() not in PROMQL_WORDS}
    return {n for n in names if not re.fullmatch(r"[0-9.e+-]+", n)}


def referenced_metrics() -> dict[str, set[str]]:
    """metric name → where it is used (alert names, dashboard/panel titles)."""
    used: dict[str, set[str]] = defaultdict(set)
    for rule in _rules():
        for name in metric_names(rule["expr"]):
            used[name].add(f"alert {rule.get('alert') or rule.get('record')}")
    for file, board in _dashboard_files().items():
        for title, expr in dashboards.dashboard_queries(board):
            for name in metric_names(_grafana_to_promql(expr)):
                used[name].add(f"{file}: {title}")
    return used


def test_metric_name_extraction_sees_through_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (route, le) (rate(pitchin_http_request_duration_seconds_bucket{service="a",'
        ' status=~"5xx|x"}[5m]))) / on (service) group_left sum(up{job="pitchin"}) and time() - foo_total offset 5m'
    )
    assert metric_names(expr) == {"pitchin_http_request_duration_seconds_bucket", "up", "foo_total"}


# --- rules, config and dashboards, without servers --------------------------------------------------


def test_alert_rules_pass_promtool_check_and_their_unit_tests(promtool: str) -> None:
    for rules in (RULES, CHART_RULES):
        checked = run(promtool, "check", "rules", rules)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(promtool, "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    covered = set(re.findall(r"alertname:\s*(\w+)", RULE_TESTS.read_text(encoding="utf-8")))
    assert alerts == covered, f"alerts without a promtool unit test: {alerts - covered}"
    assert {
        "PitchInServiceDown",
        "PitchInHighErrorRatio",
        "PitchInConsumerLagGrowing",
        "PitchInDeadLetters",
        "PitchInOutboxStuck",
        "PitchInSmtpFailing",
    } <= alerts
    for rule in _rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_a_broken_rule_fails_promtool(promtool: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(rate(x[5m])\n")
    assert run(promtool, "check", "rules", broken).returncode != 0


def test_local_prometheus_config_is_valid(promtool: str) -> None:
    checked = run(promtool, "check", "config", OBSERVABILITY / "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_service_has_a_dashboard() -> None:
    names = set(_dashboard_files())
    assert {"pitchin-overview.json", "pitchin-kafka.json"} | {f"pitchin-{s}.json" for s in SERVICES} <= names


def test_dashboards_are_well_formed() -> None:
    for file, board in _dashboard_files().items():
        assert board["uid"] and board["title"] and board["schemaVersion"] >= 36, file
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{file}: duplicate panel ids"
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, f"{file}: {panel['title']} overflows"
            if panel["type"] != "row":
                assert panel["targets"], f"{file}: {panel['title']} has no query"
                assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
                assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


def test_every_dashboard_query_parses_as_promql(promtool: str, tmp_path: Path) -> None:
    queries = [
        (f, title, expr)
        for f, board in _dashboard_files().items()
        for title, expr in dashboards.dashboard_queries(board)
    ]
    assert len(queries) > 50
    rules = [
        {"record": f"pitchin_dashboard_check:q{i}", "expr": _grafana_to_promql(expr)}
        for i, (_, _, expr) in enumerate(queries)
    ]
    path = tmp_path / "dashboard-queries.yaml"
    # JSON is YAML: no YAML writer needed.
    path.write_text(json.dumps({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    checked = run(promtool, "check", "rules", path)
    if checked.returncode != 0:
        # Say which panel is wrong, not just which rule number.
        bad = [f"{f}: {t}: {e}" for i, (f, t, e) in enumerate(queries) if f"q{i}" in checked.stderr + checked.stdout]
        raise AssertionError(f"{checked.stdout}{checked.stderr}\n" + "\n".join(bad))
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout


# --- against the running services -----------------------------------------------------------------


@dataclass
class Scrape:
    """One /metrics answer: family types, and every sample as (name, labels) → value."""

    types: dict[str, str]
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    @property
    def names(self) -> set[str]:
        """Every name a query can select: families (even with no samples yet) with their suffixes."""
        out = {name for name, _ in self.samples}
        for family, kind in self.types.items():
            out.add(family)
            if kind == "counter":
                out.add(f"{family}_total")
            if kind == "histogram":
                out |= {f"{family}_bucket", f"{family}_count", f"{family}_sum"}
            if kind == "summary":
                out |= {f"{family}_count", f"{family}_sum"}
        return out

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels`."""
        want = set(labels.items())
        return sum(v for (n, lbls), v in self.samples.items() if n == name and want <= set(lbls))

    def series(self, name: str) -> list[dict[str, str]]:
        return [dict(lbls) for (n, lbls), _ in self.samples.items() if n == name]


def scrape(stack: Stack, service: str) -> Scrape:
    answer = httpx.get(f"{stack[service].url}/metrics", timeout=10)
    assert answer.status_code == 200
    types: dict[str, str] = {}
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(answer.text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return Scrape(types, samples)


def scrape_all(stack: Stack) -> dict[str, Scrape]:
    return {service: scrape(stack, service) for service in SERVICES}


def partitions_of(bootstrap: str, topics: list[str]) -> dict[str, int]:
    async def describe() -> dict[str, int]:
        admin = AIOKafkaAdminClient(**admin_options(bootstrap))
        await admin.start()
        try:
            return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(topics)}
        finally:
            await admin.close()

    return asyncio.run(describe())


@pytest.fixture(scope="module")
def traffic(stack: Stack) -> Iterator[tuple[dict[str, Scrape], Tenant]]:
    """Scrapes before and the tenant for driving a sign-up and an event creation through the system."""
    yield scrape_all(stack), new_tenant(f"fed-{uuid.uuid4().hex[:8]}", stack.issue_key)


def _drive(stack: Stack, tenant: Tenant, mailbox: SmtpSink) -> tuple[str, str]:
    email = f"metrics-{uuid.uuid4().hex[:8]}@example.org"
    signed_up = sign_up(stack, tenant.organiser_key, name="Metric Donor", email=email)
    organiser = f"metrics-events-{uuid.uuid4().hex[:8]}@example.org"
    created = create_event(
        stack, tenant.organiser_key, starts_in=timedelta(days=30), title="Metrics meet-up", organiser_email=organiser
    )
    # A request that fails validation: the 4xx series of the RED counters moves too.
    rejected = httpx.post(
        f"{stack['signups'].url}/v1/donors", json={"name": ""}, headers=bearer(tenant.organiser_key), timeout=15
    )
    assert rejected.status_code == 422
    mailbox.wait_for(lambda m: m["To"] == email, timeout=30)
    mailbox.wait_for(lambda m: m["To"] == organiser, timeout=30)
    return signed_up.json()["donor_id"], created.json()["event_id"]


def test_metrics_move_as_traffic_flows_and_lag_is_measured_per_partition(
    stack: Stack, kafka_server: KafkaServer, mailbox: SmtpSink, traffic: tuple[dict[str, Scrape], Tenant]
) -> None:
    before, tenant = traffic
    _drive(stack, tenant, mailbox)
    post_donors = {"method": "POST", "route": "/v1/donors"}

    def moved() -> dict[str, Scrape] | None:
        now = scrape_all(stack)
        checks = [
            now["signups"].value("pitchin_http_requests_total", status="2xx", **post_donors)
            > before["signups"].value("pitchin_http_requests_total", status="2xx", **post_donors),
            now["signups"].value("pitchin_http_requests_total", status="4xx", **post_donors)
            > before["signups"].value("pitchin_http_requests_total", status="4xx", **post_donors),
            now["signups"].value("pitchin_http_request_duration_seconds_count", **post_donors)
            > before["signups"].value("pitchin_http_request_duration_seconds_count", **post_donors),
            now["scheduling"].value("pitchin_http_requests_total", method="POST", route="/v1/events")
            > before["scheduling"].value("pitchin_http_requests_total", method="POST", route="/v1/events"),
            *(
                now[s].value("pitchin_outbox_relayed_total") > before[s].value("pitchin_outbox_relayed_total")
                for s in ("signups", "scheduling")
            ),
            *(
                now[s].value("faststream_received_messages_total", handler="pitchin.donors.v1")
                > before[s].value("faststream_received_messages_total", handler="pitchin.donors.v1")
                for s in ("matching", "notifications")
            ),
            *(
                now[s].value("faststream_received_processed_messages_total", handler="pitchin.events.v1")
                > before[s].value("faststream_received_processed_messages_total", handler="pitchin.events.v1")
                for s in ("signups", "notifications")
            ),
            now["matching"].value("pitchin_events_applied_total", outcome="applied")
            > before["matching"].value("pitchin_events_applied_total", outcome="applied"),
            now["notifications"].value("pitchin_notification_deliveries_total", channel="email", outcome="sent")
            >= before["notifications"].value("pitchin_notification_deliveries_total", channel="email", outcome="sent")
            + 2,
        ]
        return now if all(checks) else None

    after = eventually(moved, timeout=60, interval=0.5, what="RED counters, relays and consumers to move")

    # Build info: one series per service, carrying the version.
    for service in SERVICES:
        [info] = after[service].series("pitchin_build_info")
        assert info["service"] == service and info["version"]

    # Lag: one series per partition of every topic the service consumes, measured again and again.
    for service in SERVICES:
        topics = [spec.name for spec in consumed_by(service)]
        expected = {(t, str(p)) for t, n in partitions_of(kafka_server.bootstrap, topics).items() for p in range(n)}
        assert expected

        def measured(service: str = service, expected: set[tuple[str, str]] = expected) -> Scrape | None:
            now = scrape(stack, service)
            have = {(s["topic"], s["partition"]) for s in now.series("pitchin_consumer_lag")}
            return now if have >= expected else None

        now = eventually(measured, timeout=30, interval=0.5, what=f"{service}'s lag per partition")
        for name in ("pitchin_consumer_lag", "pitchin_consumer_lag_seconds"):
            have = {(s["topic"], s["partition"]) for s in now.series(name) if s["service"] == service}
            assert have == expected, f"{service} {name}: {have ^ expected}"
        stamp = now.value("pitchin_consumer_lag_last_success_timestamp_seconds", service=service)
        assert stamp > 0

        # Consumers keep up with this trickle: the lag returns to zero, and is measured anew.
        def caught_up(service: str = service, stamp: float = stamp) -> bool:
            again = scrape(stack, service)
            return (
                again.value("pitchin_consumer_lag", service=service) == 0
                and again.value("pitchin_consumer_lag_last_success_timestamp_seconds", service=service) > stamp
            )

        eventually(
            caught_up,
            timeout=60,
            interval=0.5,
            what=f"{service}'s lag to be re-measured at zero",
        )


def test_every_metric_that_a_dashboard_or_alert_queries_is_exported(
    stack: Stack, traffic: tuple[dict[str, Scrape], Tenant]
) -> None:
    exported: dict[str, set[str]] = defaultdict(set)
    for service, scraped in scrape_all(stack).items():
        for name in scraped.names:
            exported[name].add(service)
    used = referenced_metrics()
    assert len(used) > 15
    missing = {
        name: sorted(where)[:3] for name, where in used.items() if name not in exported and name not in SYNTHETIC
    }
    assert not missing, f"queried but exported by no service: {missing}"
    # And the common ones are exported by every service, as the dashboards assume.
    for name in (
        "pitchin_http_requests_total",
        "pitchin_http_request_duration_seconds_bucket",
        "pitchin_outbox_oldest_age_seconds",
        "pitchin_consumer_lag",
        "pitchin_build_info",
        "faststream_received_messages_total",
    ):
        assert exported[name] == set(SERVICES), f"{name} only from {exported[name]}"


def test_no_label_value_is_an_id(stack: Stack, traffic: tuple[dict[str, Scrape], Tenant]) -> None:
    values: dict[tuple[str, str], set[str]] = defaultdict(set)
    for service, scraped in scrape_all(stack).items():
        for (name, labels), _ in scraped.samples.items():
            for label, value in labels:
                if label in NUMERIC_LABELS:
                    assert re.fullmatch(r"[0-9.e+-]+|\+Inf", value), f"{service} {name}{{{label}={value!r}}}"
                    continue
                assert not ID_LIKE.search(value), f"{service} {name}{{{label}={value!r}}} looks like an id"
                values[(name, label)].add(value)
    # Bounded: no label has grown past a handful of values with the traffic of a whole test session.
    wide = {key: len(v) for key, v in values.items() if len(v) > 60}
    assert not wide, f"labels with many values: {wide}"
    routes = {v for (name, label), vs in values.items() if label == "route" for v in vs}
    assert "/v1/events/{event_id}/bookings" in routes or "/v1/donors" in routes
    assert all(r.startswith("/") or r == "unmatched" for r in routes), routes
