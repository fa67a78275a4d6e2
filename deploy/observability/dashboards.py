"""Grafana dashboards as code, and the chart's copy of the alert rules.

    make contracts                                     # regenerates these with the other generated files
    python deploy/observability/dashboards.py          # write every generated file
    python deploy/observability/dashboards.py --check  # exit 1 if a committed file is stale

Writes the dashboards once, into ``helm/pitchin/files/dashboards/*.json``: the chart turns each
into a ConfigMap for Grafana's dashboard sidecar (Helm reads no file outside the chart), and
everything else (tests, a Grafana of one's own) reads them from there. Copies
``rules/pitchin.rules.yaml`` to ``helm/pitchin/files/prometheus-rules.yaml``. The JSON is
written by hand rather than with a dashboard SDK: it is a few panel types, and no dependency
has to be pinned for it. ``tests/chart/test_generated_files.py`` fails when a committed file
differs from this output; ``tests/e2e/test_observability.py`` checks that every query parses
and that every metric a query names is exported by a running service.

Label conventions the queries rely on: the ``pitchin_*`` metrics export ``service``;
faststream's export ``app_name`` (= the service name), ``handler`` (the consumed topic) and
``destination``; Prometheus adds ``job="pitchin"`` and ``service`` to every target.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DASHBOARDS = REPO / "helm" / "pitchin" / "files" / "dashboards"
RULES = HERE / "rules" / "pitchin.rules.yaml"
CHART_RULES = REPO / "helm" / "pitchin" / "files" / "prometheus-rules.yaml"

SERVICES = ("signups", "matching", "notifications", "scheduling")
SCHEMA_VERSION = 39  # Grafana 10.4 / 11.x
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    queries: Sequence[Query]
    kind: str = "timeseries"  # timeseries | stat | table
    unit: str = "short"
    description: str = ""
    width: int = 12
    height: int = 8
    stack: bool = False
    thresholds: Sequence[tuple[float, str]] = ()


@dataclass(frozen=True)
class Row:
    title: str
    panels: Sequence[Panel]


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    rows: list[Row] = field(default_factory=list)
    tags: tuple[str, ...] = ("pitchin",)


# --- queries and panels shared by several dashboards -------------------------------------------


def _selector(label: str, service: str | None, extra: str) -> str:
    parts = [f'{label}="{service}"'] if service else []
    if extra:
        parts.append(extra)
    return "{" + ", ".join(parts) + "}" if parts else ""


def sel(service: str | None, extra: str = "") -> str:
    """The ``pitchin_*`` metrics name the service in `service` (None: every service)."""
    return _selector("service", service, extra)


def fs_sel(service: str | None, extra: str = "") -> str:
    """faststream's metrics name the service in `app_name`."""
    return _selector("app_name", service, extra)


def summed(expr: str, by: str = "") -> str:
    return f"sum by ({by}) ({expr})" if by else f"sum({expr})"


def per_second(metric: str, selector: str = "", by: str = "") -> str:
    """A counter's rate, summed over everything or by the labels `by`."""
    return summed(f"rate({metric}{selector}[{RATE}])", by)


def share(metric: str, part: str, whole: str, by: str = "") -> str:
    """The share of a counter's rate that the `part` selector picks out of the `whole` one."""
    return f"{per_second(metric, part, by)} / {per_second(metric, whole, by)}"


def http_share(service: str | None, status: str, by: str = "") -> str:
    """The share of a service's requests (None: everyone's) answered with a status class."""
    return share("pitchin_http_requests_total", sel(service, f'status="{status}"'), sel(service), by)


def p_quantile(q: float, metric: str, selector: str, by: str) -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{selector}[{RATE}])))"


def graph(
    title: str,
    expr: str,
    legend: str,
    *,
    unit: str = "short",
    description: str = "",
    width: int = 12,
    stack: bool = False,
    thresholds: Sequence[tuple[float, str]] = (),
) -> Panel:
    """One query over time."""
    return Panel(
        title,
        [Query(expr, legend)],
        unit=unit,
        description=description,
        width=width,
        stack=stack,
        thresholds=thresholds,
    )


def stat(
    title: str, expr: str, legend: str, *, width: int, unit: str = "short", thresholds: Sequence[tuple[float, str]] = ()
) -> Panel:
    """One number, now: an instant query in a small panel."""
    return Panel(
        title, [Query(expr, legend, instant=True)], kind="stat", unit=unit, width=width, height=4, thresholds=thresholds
    )


def requests_stat(service: str | None, width: int) -> Panel:
    return stat(
        "Requests/s", per_second("pitchin_http_requests_total", sel(service)), "req/s", unit="reqps", width=width
    )


def lag_stat(service: str | None, width: int) -> Panel:
    return stat(
        "Consumer lag (records)",
        f"sum(pitchin_consumer_lag{sel(service)})",
        "lag",
        width=width,
        thresholds=((0, "green"), (1000, "orange"), (10000, "red")),
    )


# --- one service ---------------------------------------------------------------------------------


def http_row(service: str) -> Row:
    s = sel(service)
    route_latency = "pitchin_http_request_duration_seconds"
    return Row(
        "HTTP (rate, errors, duration)",
        [
            graph(
                "Requests/s by route and status",
                per_second("pitchin_http_requests_total", s, "method, route, status"),
                "{{method}} {{route}} {{status}}",
                unit="reqps",
                stack=True,
            ),
            Panel(
                "5xx ratio",
                [Query(http_share(service, "5xx"), "5xx"), Query(http_share(service, "4xx"), "4xx")],
                unit="percentunit",
                description="Share of requests answered with an error; PitchInHighErrorRatio fires at 5% 5xx.",
            ),
            graph(
                "Latency p99 by route",
                p_quantile(0.99, route_latency, s, "method, route"),
                "{{method}} {{route}}",
                unit="s",
            ),
            graph(
                "Latency p50 by route",
                p_quantile(0.5, route_latency, s, "method, route"),
                "{{method}} {{route}}",
                unit="s",
            ),
        ],
    )


def consumer_row(service: str) -> Row:
    f = fs_sel(service)
    s = sel(service)
    return Row(
        "Kafka consumers (rate, errors, duration, lag)",
        [
            graph(
                "Messages consumed/s by topic",
                per_second("faststream_received_messages_total", f, "handler"),
                "{{handler}}",
                unit="ops",
                stack=True,
            ),
            graph(
                "Processed by topic and status",
                per_second("faststream_received_processed_messages_total", f, "handler, status"),
                "{{handler}} {{status}}",
                unit="ops",
                description="status=error is a handler exception: the message is retried (transient) or dead-lettered.",
            ),
            graph(
                "Processing duration p99 by topic",
                p_quantile(0.99, "faststream_received_processed_messages_duration_seconds", f, "handler"),
                "{{handler}}",
                unit="s",
            ),
            graph(
                "Events applied by type and outcome",
                per_second("pitchin_events_applied_total", s, "event_type, outcome"),
                "{{event_type}} {{outcome}}",
                unit="ops",
                description="outcome=duplicate is a redelivery the inbox recognised and skipped.",
            ),
            graph(
                "Consumer lag by topic and partition",
                f"sum by (topic, partition) (pitchin_consumer_lag{s})",
                "{{topic}} [{{partition}}]",
                description="End offset minus the committed offset of this service's consumer group.",
            ),
            graph(
                "Consumer lag age",
                f"max by (topic) (pitchin_consumer_lag_seconds{s})",
                "{{topic}}",
                unit="s",
                description="Estimated wait of the oldest unconsumed record (resolution: the lag monitor's interval).",
            ),
            graph(
                "Dead letters by topic and reason",
                summed(f"increase(pitchin_dead_letters_total{s}[{RATE}])", "topic, reason"),
                "{{topic}} {{reason}}",
                stack=True,
            ),
            graph(
                "Handler exceptions by type",
                per_second("faststream_received_processed_messages_exceptions_total", f, "handler, exception_type"),
                "{{handler}} {{exception_type}}",
                unit="ops",
            ),
        ],
    )


def outbox_row(service: str) -> Row:
    s = sel(service)
    return Row(
        "Outbox relay (producer side)",
        [
            graph(
                "Events relayed to Kafka/s",
                per_second("pitchin_outbox_relayed_total", s),
                "relayed",
                unit="ops",
                width=8,
            ),
            graph("Outbox backlog", f"max(pitchin_outbox_backlog{s})", "rows waiting", width=8),
            graph(
                "Oldest unsent outbox row",
                f"max(pitchin_outbox_oldest_age_seconds{s})",
                "age",
                unit="s",
                width=8,
                thresholds=((0, "green"), (60, "red")),
            ),
        ],
    )


def notifications_row() -> Row:
    s = sel("notifications")
    deliveries = "pitchin_notification_deliveries_total"
    return Row(
        "Deliveries",
        [
            graph(
                "Delivery attempts by channel and outcome",
                per_second(deliveries, s, "channel, outcome"),
                "{{channel}} {{outcome}}",
                unit="ops",
                description="outcome: sent, retry (will be tried again), dead (given up).",
            ),
            graph(
                "Failing share by channel",
                share(deliveries, sel("notifications", 'outcome=~"retry|dead"'), s, "channel"),
                "{{channel}}",
                unit="percentunit",
                description="PitchInSmtpFailing fires above 20% for email.",
            ),
            graph(
                "Send batch duration p99 by channel",
                p_quantile(0.99, "pitchin_notification_batch_seconds", s, "channel"),
                "{{channel}}",
                unit="s",
            ),
        ],
    )


def scheduling_row() -> Row:
    s = sel("scheduling")
    lateness = "pitchin_reminder_lateness_seconds"
    return Row(
        "Reminders",
        [
            graph("Reminders fired/s", per_second("pitchin_reminders_fired_total", s), "fired", unit="ops"),
            Panel(
                "Reminder lateness p50 / p99",
                [
                    Query(p_quantile(0.5, lateness, s, "service"), "p50"),
                    Query(p_quantile(0.99, lateness, s, "service"), "p99"),
                ],
                unit="s",
                description="How long after its due time a reminder was fired.",
            ),
        ],
    )


SERVICE_EXTRAS: dict[str, list[Row]] = {
    "notifications": [notifications_row()],
    "scheduling": [scheduling_row()],
}

SERVICE_PURPOSE = {
    "signups": "knowledge donors, organisations, fights and needs, event bookings; the public write API",
    "matching": "ranks donors for each need, makes offers, handles accept / decline / expiry",
    "notifications": "turns domain events into email, SMS and webhook messages",
    "scheduling": "events, sessions, venues and livestreams, capacity, reminders, iCalendar feeds",
}


def service_dashboard(service: str) -> Dashboard:
    up = Row(
        "Health",
        [
            stat(
                "Up",
                f'sum(up{{job="pitchin", service="{service}"}})',
                "instances up",
                width=6,
                thresholds=((0, "red"), (1, "green")),
            ),
            requests_stat(service, width=6),
            lag_stat(service, width=6),
            stat("Version", f"max by (version) (pitchin_build_info{sel(service)})", "{{version}}", width=6),
        ],
    )
    return Dashboard(
        uid=f"pitchin-{service}",
        title=f"Pitch In / {service}",
        description=f"{service}: {SERVICE_PURPOSE[service]}.",
        rows=[up, http_row(service), consumer_row(service), outbox_row(service), *SERVICE_EXTRAS.get(service, [])],
        tags=("pitchin", service),
    )


# --- every service -------------------------------------------------------------------------------


def overview_dashboard() -> Dashboard:
    stats = Row(
        "Now",
        [
            stat(
                "Services up",
                'sum(up{job="pitchin"})',
                "up",
                width=4,
                thresholds=((0, "red"), (len(SERVICES), "green")),
            ),
            requests_stat(None, width=4),
            stat(
                "5xx ratio",
                http_share(None, "5xx"),
                "5xx",
                unit="percentunit",
                width=4,
                thresholds=((0, "green"), (0.01, "orange"), (0.05, "red")),
            ),
            lag_stat(None, width=4),
            stat(
                "Dead letters (1h)",
                "sum(increase(pitchin_dead_letters_total[1h]))",
                "dead letters",
                width=4,
                thresholds=((0, "green"), (1, "red")),
            ),
            stat(
                "Oldest unsent outbox row",
                "max(pitchin_outbox_oldest_age_seconds)",
                "age",
                unit="s",
                width=4,
                thresholds=((0, "green"), (10, "orange"), (60, "red")),
            ),
        ],
    )
    flow = Row(
        "Per service",
        [
            graph(
                "Requests/s by service",
                per_second("pitchin_http_requests_total", by="service"),
                "{{service}}",
                unit="reqps",
            ),
            graph("5xx ratio by service", http_share(None, "5xx", "service"), "{{service}}", unit="percentunit"),
            graph(
                "HTTP p99 by service",
                p_quantile(0.99, "pitchin_http_request_duration_seconds", "", "service"),
                "{{service}}",
                unit="s",
            ),
            graph(
                "Messages consumed/s by service",
                per_second("faststream_received_messages_total", by="app_name"),
                "{{app_name}}",
                unit="ops",
            ),
            graph("Consumer lag by service", "sum by (service) (pitchin_consumer_lag)", "{{service}}"),
            graph(
                "Events relayed to Kafka/s by service",
                per_second("pitchin_outbox_relayed_total", by="service"),
                "{{service}}",
                unit="ops",
            ),
            graph(
                "Oldest unsent outbox row by service",
                "max by (service) (pitchin_outbox_oldest_age_seconds)",
                "{{service}}",
                unit="s",
            ),
            graph(
                "Dead letters by service and reason",
                summed(f"increase(pitchin_dead_letters_total[{RATE}])", "service, reason"),
                "{{service}} {{reason}}",
                stack=True,
            ),
            graph(
                "Notification deliveries by channel and outcome",
                per_second("pitchin_notification_deliveries_total", by="channel, outcome"),
                "{{channel}} {{outcome}}",
                unit="ops",
            ),
            Panel(
                "Running versions",
                [Query("max by (service, version) (pitchin_build_info)", "{{service}} {{version}}", instant=True)],
                kind="table",
            ),
        ],
    )
    return Dashboard(
        uid="pitchin-overview",
        title="Pitch In / overview",
        description="The whole system: traffic, errors, latency, lag and backlog per service. Drill down from here.",
        rows=[stats, flow],
    )


def kafka_dashboard() -> Dashboard:
    lag = Row(
        "Consumer lag",
        [
            graph(
                "Lag by consumer group and topic",
                "sum by (service, topic) (pitchin_consumer_lag)",
                "{{service}} ← {{topic}}",
                description="The consumer group is the service's name.",
            ),
            graph(
                "Lag age by consumer group and topic",
                "max by (service, topic) (pitchin_consumer_lag_seconds)",
                "{{service}} ← {{topic}}",
                unit="s",
            ),
            graph(
                "Lag by partition",
                "sum by (service, topic, partition) (pitchin_consumer_lag)",
                "{{service}} ← {{topic}} [{{partition}}]",
                width=24,
            ),
            graph(
                "Lag measurement age",
                "time() - max by (service) (pitchin_consumer_lag_last_success_timestamp_seconds)",
                "{{service}}",
                unit="s",
                description="Seconds since each service last measured its lag (alert past 2 min).",
            ),
            graph(
                "Messages in process",
                "sum by (app_name, handler) (faststream_received_messages_in_process)",
                "{{app_name}} {{handler}}",
            ),
        ],
    )
    throughput = Row(
        "Throughput",
        [
            graph(
                "Produced/s by service (outbox relay)",
                per_second("pitchin_outbox_relayed_total", by="service"),
                "{{service}}",
                unit="ops",
            ),
            graph(
                "Consumed/s by service and topic",
                per_second("faststream_received_messages_total", by="app_name, handler"),
                "{{app_name}} ← {{handler}}",
                unit="ops",
            ),
            graph(
                "Processing p99 by service and topic",
                p_quantile(0.99, "faststream_received_processed_messages_duration_seconds", "", "app_name, handler"),
                "{{app_name}} ← {{handler}}",
                unit="s",
            ),
            graph(
                "Message size p99 by topic",
                p_quantile(0.99, "faststream_received_messages_size_bytes", "", "handler"),
                "{{handler}}",
                unit="bytes",
            ),
            graph(
                "Processing errors by service and topic",
                per_second("faststream_received_processed_messages_total", '{status="error"}', "app_name, handler"),
                "{{app_name}} ← {{handler}}",
                unit="ops",
            ),
            graph(
                "Dead letters by topic and consumer group",
                summed(f"increase(pitchin_dead_letters_total[{RATE}])", "topic, service, reason"),
                "{{topic}}.{{service}}.dlq {{reason}}",
                stack=True,
            ),
        ],
    )
    return Dashboard(
        uid="pitchin-kafka",
        title="Pitch In / Kafka and consumer lag",
        description="Consumer lag per group, topic and partition; throughput, errors and dead letters per topic.",
        rows=[lag, throughput],
    )


def all_dashboards() -> list[Dashboard]:
    return [overview_dashboard(), *(service_dashboard(s) for s in SERVICES), kafka_dashboard()]


# --- JSON -----------------------------------------------------------------------------------------


def _thresholds(steps: Sequence[tuple[float, str]]) -> dict[str, Any]:
    if not steps:
        steps = ((0, "green"),)
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": None if i == 0 else value} for i, (value, color) in enumerate(steps)],
    }


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    targets = [
        {
            "datasource": DATASOURCE,
            "expr": q.expr,
            "legendFormat": q.legend or "__auto",
            "refId": chr(ord("A") + i),
            "range": not q.instant,
            "instant": q.instant,
            **({"format": "table"} if panel.kind == "table" else {}),
        }
        for i, q in enumerate(panel.queries)
    ]
    defaults: dict[str, Any] = {"unit": panel.unit, "thresholds": _thresholds(panel.thresholds)}
    options: dict[str, Any]
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 20 if panel.stack else 0,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
        }
        defaults["color"] = {"mode": "palette-classic"}
        options = {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif panel.kind == "stat":
        defaults["color"] = {"mode": "thresholds"}
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background" if panel.thresholds else "value",
            "graphMode": "none",
            "textMode": "auto",
            "justifyMode": "auto",
            "orientation": "auto",
        }
    elif panel.kind == "table":
        options = {"showHeader": True, "cellHeight": "sm"}
    else:
        raise ValueError(f"unknown panel kind {panel.kind!r}")
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
    }
    if panel.description:
        body["description"] = panel.description
    if panel.kind == "table":
        body["transformations"] = [
            {"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}, "renameByName": {}}}
        ]
    return body


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    panel_id = 1
    y = 0
    for row in dashboard.rows:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id += 1
        y += 1
        x = 0
        row_height = 0
        for panel in row.panels:
            if x + panel.width > 24:
                x = 0
                y += row_height
                row_height = 0
            panels.append(_panel_json(panel, panel_id, x, y))
            panel_id += 1
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "annotations": {"list": []},
        "links": [
            {
                "title": "Pitch In dashboards",
                "type": "dashboards",
                "tags": ["pitchin"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                }
            ]
        },
        "panels": panels,
    }


def dashboard_queries(dashboard: dict[str, Any]) -> Iterable[tuple[str, str]]:
    """(panel title, expr) of every query of a dashboard's JSON."""
    for panel in dashboard.get("panels", ()):
        for target in panel.get("targets", ()):
            yield panel["title"], target["expr"]
        yield from dashboard_queries({"panels": panel.get("panels", ())})


def chart_rules_text() -> str:
    header = (
        "# GENERATED from deploy/observability/rules/pitchin.rules.yaml by deploy/observability/dashboards.py;\n"
        "# edit that file and re-run the script.\n"
    )
    return header + RULES.read_text(encoding="utf-8")


def rendered() -> dict[Path, str]:
    """Every generated file and its content."""
    files: dict[Path, str] = {}
    for dashboard in all_dashboards():
        text = json.dumps(dashboard_json(dashboard), indent=2, ensure_ascii=False) + "\n"
        files[DASHBOARDS / f"{dashboard.uid}.json"] = text
    files[CHART_RULES] = chart_rules_text()
    return files


def stale() -> list[Path]:
    """Generated files that differ from the script's output, and dashboards it no longer makes."""
    expected = rendered()
    out = [path for path, text in expected.items() if not path.exists() or path.read_text(encoding="utf-8") != text]
    out += [p for p in sorted(DASHBOARDS.glob("pitchin-*.json")) if p not in expected]
    return out


def write() -> list[Path]:
    expected = rendered()
    for path, text in expected.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    removed = [old for old in sorted(DASHBOARDS.glob("pitchin-*.json")) if old not in expected]
    for old in removed:
        old.unlink()
    return [*expected, *removed]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is out of date")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for path in out_of_date:
            print(f"out of date: {path.relative_to(REPO)}", file=sys.stderr)
        if out_of_date:
            print("run: make contracts", file=sys.stderr)
        return 1 if out_of_date else 0
    for path in write():
        print(path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
