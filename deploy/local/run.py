"""`make run`: Kafka, PostgreSQL, an SMTP sink, the four services and the web front on fixed local ports.

`REPLICAS=2 make run` (PITCHIN_REPLICAS, or --replicas) starts two processes of each of the four
services, as two pods would be: replica i listens on the first one's port + 10 * i (signups 8001,
8011, …) and the web front calls the first. Matching takes PITCHIN_MATCHING_REPLICAS (default 1).

Everything runs as local processes under this one supervisor; Ctrl-C (or `make stop`)
stops the services, then the sink, PostgreSQL and Kafka, in that order. State (Kafka
data, the PostgreSQL cluster, received mail, logs) stays in .state/run between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import asyncpg

from pitchin_testing.install import ensure_installed, repo_root
from pitchin_testing.kafka import KafkaServer
from pitchin_testing.postgres import PostgresServer
from pitchin_testing.processes import MATCHING_REPLICAS_ENV, REPLICAS_ENV, RUN_WORKERS, SERVICES, replicas_from_env
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import SECRET_SETTINGS, Stack

KAFKA_PORT, KAFKA_CONTROLLER_PORT = 19092, 19093
POSTGRES_PORT = 15432
SMTP_PORT = 1025
SERVICE_PORTS = {"web": 8000, "signups": 8001, "matching": 8002, "notifications": 8003, "scheduling": 8004}
# Replica i of a service listens on its first port + REPLICA_PORT_STEP * i.
REPLICA_PORT_STEP = 10
STATE = repo_root() / ".state" / "run"
PID_FILE = STATE / "run.pid"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stop", action="store_true", help="stop a running `make run`")
    parser.add_argument("--no-demo", action="store_true", help="start without demo data")
    parser.add_argument("--reset", action="store_true", help="delete the local state (Kafka, PostgreSQL, mail, logs)")
    parser.add_argument(
        "--replicas", type=int, help=f"processes of each service but matching (default ${REPLICAS_ENV} or 1)"
    )
    parser.add_argument(
        "--matching-replicas", type=int, help=f"processes of matching (default ${MATCHING_REPLICAS_ENV} or 1)"
    )
    args = parser.parse_args()
    if args.stop:
        return stop_running()
    if args.reset:
        # The PostgreSQL cluster lives outside the clone (the postgres user must reach it).
        PostgresServer(STATE / "postgres", port=POSTGRES_PORT).cleanup()
        shutil.rmtree(STATE, ignore_errors=True)
        say(f"removed {STATE}")
        return 0

    overrides = {REPLICAS_ENV: args.replicas, MATCHING_REPLICAS_ENV: args.matching_replicas}
    try:
        replicas = replicas_from_env({**os.environ, **{k: str(v) for k, v in overrides.items() if v is not None}})
    except ValueError as exc:
        parser.error(str(exc))

    STATE.mkdir(parents=True, exist_ok=True)
    PID_FILE.write_text(str(os.getpid()))
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())

    ensure_installed()
    kafka = KafkaServer(STATE / "kafka", port=KAFKA_PORT, controller_port=KAFKA_CONTROLLER_PORT)
    postgres = PostgresServer(STATE / "postgres", port=POSTGRES_PORT)
    sink = SmtpSink(port=SMTP_PORT, maildir=STATE / "mail")
    stack: Stack | None = None
    prometheus: Any = None
    try:
        say("starting Kafka …")
        kafka.start()
        say("starting PostgreSQL …")
        postgres.start()
        database_url = ensure_database(postgres)
        sink.start()
        stack = Stack(
            kafka_bootstrap=kafka.bootstrap,
            database_url=database_url,
            smtp_port=SMTP_PORT,
            otlp_endpoint=os.environ.get("PITCHIN_OTLP_ENDPOINT"),
            ports=SERVICE_PORTS,
            log_dir=STATE / "logs",
            environment="local",
            # Links in mail (offers, bookings, calendars) open the web front's pages.
            public_base_url=f"http://127.0.0.1:{SERVICE_PORTS['web']}",
            web_federation_id="fed-demo",
            workers=RUN_WORKERS,
            replicas=replicas,
            replica_port=lambda name, i: SERVICE_PORTS[name] + REPLICA_PORT_STEP * i,
            service_secrets=kept_secrets(),
        )
        for service in stack.processes:
            say(f"starting {service.label} on :{service.port} …")
            stack.start_one(service)
        keys = {}
        if not args.no_demo:
            from demo import seed  # deploy/local/demo.py, beside this file

            keys = seed(stack)
        prometheus = start_prometheus()
        print_welcome(stack, keys, kafka, postgres)
        if prometheus is not None:
            print(f"  Prometheus     {prometheus.url}  (alerts: {prometheus.url}/alerts)", flush=True)
        stopping.wait()
    finally:
        say("stopping …")
        if prometheus is not None:
            prometheus.stop()
        if stack is not None:
            stack.stop()
        sink.stop()
        postgres.stop()
        kafka.stop()
        PID_FILE.unlink(missing_ok=True)
        say("stopped.")
    return 0


def start_prometheus() -> Any:
    """Prometheus scraping the services with the alert rules loaded; the system runs without it."""
    from run_prometheus import LocalPrometheus  # deploy/observability/, put on the path below

    prometheus = LocalPrometheus(STATE / "prometheus", {n: p for n, p in SERVICE_PORTS.items() if n != "web"})
    try:
        prometheus.start()
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        say(f"Prometheus not started ({exc}); the services still expose /metrics")
        return None
    return prometheus


def kept_secrets() -> dict[str, str]:
    """This state directory's secrets, made at random on first use and kept (mode 0600), so donors'
    links and unsubscribe tokens mailed by one `make run` still open after a restart, and no
    token signed with a built-in secret is ever taken."""
    path = STATE / "secrets.json"
    if path.exists():
        kept: dict[str, str] = json.loads(path.read_text())
    else:
        kept = {}
    missing = [name for name in SECRET_SETTINGS if not kept.get(name)]
    if missing:
        kept.update({name: secrets.token_urlsafe(32) for name in missing})
        STATE.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(kept, indent=2))
    return kept


def ensure_database(postgres: PostgresServer) -> str:
    import asyncio

    async def create() -> None:
        conn = await asyncpg.connect(postgres.dsn)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'pitchin'"):
                await conn.execute("CREATE DATABASE pitchin")
        finally:
            await conn.close()

    asyncio.run(create())
    return postgres.dsn_for("pitchin")


def stop_running() -> int:
    try:
        pid = int(PID_FILE.read_text())
    except (FileNotFoundError, ValueError):
        say("nothing is running.")
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
        say(f"asked the supervisor (pid {pid}) to stop everything.")
    except ProcessLookupError:
        PID_FILE.unlink(missing_ok=True)
        say("the supervisor had already gone.")
    return 0


def print_welcome(stack: Stack, keys: dict[str, str], kafka: KafkaServer, postgres: PostgresServer) -> None:
    lines = [
        "",
        "Pitch In is running. Open:",
        f"  web pages      {stack['web'].url}/   (events {stack['web'].url}/events, sign up"
        f" {stack['web'].url}/donors/signup, organisers and federation staff {stack['web'].url}/login)",
        *(
            f"  {name:<14} {stack[name].url}/docs   (metrics {stack[name].url}/metrics)" + replicas_note(stack, name)
            for name in SERVICES
            if name != "web"
        ),
        f"  mail received  {STATE / 'mail'}  (one .eml file per message)",
        f"  logs           {STATE / 'logs'}",
        f"  Kafka          {kafka.bootstrap}      PostgreSQL  {postgres.dsn_for('pitchin')}",
    ]
    if keys:
        lines += ["", "Demo API keys (Authorization: Bearer <key>):"]
        lines += [f"  {label:<34} {key}" for label, key in keys.items()]
        organiser = next(iter(keys.values()))
        lines += [
            "",
            "Try: sign up a knowledge donor and watch the welcome mail arrive in the mail folder:",
            f"  curl -s -X POST {stack['signups'].url}/v1/donors -H 'Authorization: Bearer {organiser}' \\",
            "    -H 'Content-Type: application/json' -d @deploy/local/demo-donor.json",
        ]
    lines += ["", "Ctrl-C stops everything."]
    print("\n".join(lines), flush=True)


def replicas_note(stack: Stack, name: str) -> str:
    """`  (replicas :8011, :8021)` when the service runs more than one process."""
    more = stack.replicas(name)[1:]
    return f"  (replicas {', '.join(f':{s.port}' for s in more)})" if more else ""


def say(text: str) -> None:
    print(f"[pitchin] {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.path.insert(0, str(Path(__file__).parents[1] / "observability"))
    raise SystemExit(main())
