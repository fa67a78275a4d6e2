"""The services as real processes, for end-to-end tests, benchmarks and `make run`."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from pitchin_testing.lifecycle import signal_process, stop_process, stop_processes, wait_until_serving

# Started in this order; the web front last, as it calls the other four.
SERVICES = ("signups", "matching", "notifications", "scheduling", "web")
# HTTP worker processes per service in `make run` and the benchmarks (PITCHIN_WORKERS).
# Matching too: each process's donor index follows the read model's committed changes
# (pitchin_matching/follow.py), whoever wrote them.
RUN_WORKERS = {"signups": 2, "matching": 2, "notifications": 2, "scheduling": 2, "web": 2}
# The services with a PostgreSQL schema (and API keys in it) and Kafka clients: all but the web front.
BACKENDS = ("signups", "matching", "notifications", "scheduling")
# Processes of each service (replicas, as pods would be): PITCHIN_REPLICAS for every backend,
# PITCHIN_MATCHING_REPLICAS for matching, whose donor index is per process (one unless asked).
# The web front calls replica 0 of each service and stays one.
REPLICAS_ENV = "PITCHIN_REPLICAS"
MATCHING_REPLICAS_ENV = "PITCHIN_MATCHING_REPLICAS"


def replicas_from_env(env: Mapping[str, str] | None = None) -> dict[str, int]:
    """Replicas per service from PITCHIN_REPLICAS / PITCHIN_MATCHING_REPLICAS (both default 1)."""
    env = os.environ if env is None else env

    def count(name: str) -> int:
        raw = env.get(name, "").strip() or "1"
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a whole number") from None
        if not 1 <= value <= 16:
            raise ValueError(f"{name}={value}: between 1 and 16 processes per service")
        return value

    every = count(REPLICAS_ENV)
    counts = {name: every for name in BACKENDS}
    counts["matching"] = count(MATCHING_REPLICAS_ENV)
    counts["web"] = 1
    return counts


def _die_with_parent() -> None:
    """Linux: SIGTERM this child when the process that started it dies, however it dies.

    A test run or benchmark killed from outside must not leave services running behind.
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


# Public name for other child processes the tools start (sinks, load generators).
die_with_parent = _die_with_parent


class ServiceProcess:
    """One process of a service (a replica: what a pod is in Kubernetes) with its own HTTP port
    and `PITCHIN_WORKERS` uvicorn workers; its replicas share the service's schema, consumer group
    and outbox (the relay's advisory lock lets one drain at a time)."""

    def __init__(self, name: str, port: int, env: Mapping[str, str], log_dir: Path, replica: int = 0) -> None:
        self.name = name
        self.replica = replica
        self.port = port
        self.env = {**os.environ, **env, "PITCHIN_HTTP_PORT": str(port)}
        self.log_file = log_dir / f"{self.label}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def label(self) -> str:
        """`signups` for the first replica, `signups-1` for the second, and so on."""
        return self.name if self.replica == 0 else f"{self.name}-{self.replica}"

    def __repr__(self) -> str:
        return f"ServiceProcess({self.label!r}, port={self.port})"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"pitchin_{self.name}"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()

    def wait_ready(self, timeout: float = 90.0) -> None:
        assert self.process is not None, f"{self.name} was not started"
        wait_until_serving(self.process, f"{self.url}/readyz", timeout, self.label, self.tail)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is not None:
            stop_process(self.process, timeout, kill_wait=10)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown hooks, no final commits."""
        if self.process is not None and self.process.poll() is None:
            signal_process(self.process, signal.SIGKILL)
            self.process.wait(10)

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def stop_all(services: Iterable[ServiceProcess], timeout: float = 20.0) -> None:
    """Stop several processes at once (SIGTERM to all, then wait): replicas of a service shut
    down side by side, as a Deployment's pods do, so N replicas do not take N times as long."""
    stop_processes([s.process for s in services if s.process is not None], timeout, kill_wait=10)


def service_env(
    *,
    kafka_bootstrap: str,
    database_url: str,
    smtp_port: int,
    otlp_endpoint: str | None,
    environment: str = "test",
    public_base_url: str = "http://127.0.0.1:8000",
) -> dict[str, str]:
    env = {
        "PITCHIN_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PITCHIN_DATABASE_URL": database_url,
        "PITCHIN_SMTP_PORT": str(smtp_port),
        "PITCHIN_ENVIRONMENT": environment,
        "PITCHIN_PUBLIC_BASE_URL": public_base_url,
        "PITCHIN_CONSUMER_HEARTBEAT_MS": "500",
        # The tests' webhook receivers, SMS providers and SMTP servers listen on 127.0.0.1: the
        # outbound guard allows exactly that address (pitchin_core.outbound), as an operator would.
        "PITCHIN_OUTBOUND_ALLOW": "127.0.0.1/32",
        # Export spans promptly so tests and people see them within a second.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    if otlp_endpoint:
        env["PITCHIN_OTLP_ENDPOINT"] = otlp_endpoint
    return env
