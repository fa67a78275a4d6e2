"""The services as real processes, for end-to-end tests, benchmarks and `make run`."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from pitchin_testing.lifecycle import signal_process, stop_process, wait_until_serving

# Started in this order; the web front last, as it calls the other four.
SERVICES = ("signups", "matching", "notifications", "scheduling", "web")
# HTTP worker processes per service in `make run` and the benchmarks (PITCHIN_WORKERS).
# Matching keeps one: its donor index lives in the process and learns from the events that
# process consumes, so a second process would rank from half the donors.
RUN_WORKERS = {"signups": 2, "matching": 1, "notifications": 2, "scheduling": 2, "web": 2}
# The services with a PostgreSQL schema (and API keys in it) and Kafka clients: all but the web front.
BACKENDS = ("signups", "matching", "notifications", "scheduling")


def _die_with_parent() -> None:
    """Linux: SIGTERM this child when the process that started it dies, however it dies.

    A test run or benchmark killed from outside must not leave services running behind.
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class ServiceProcess:
    def __init__(self, name: str, port: int, env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = port
        self.env = {**os.environ, **env, "PITCHIN_HTTP_PORT": str(port)}
        self.log_file = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

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
        wait_until_serving(self.process, f"{self.url}/readyz", timeout, self.name, self.tail)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is not None:
            stop_process(self.process, timeout, kill_wait=10)

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
        # Export spans promptly so tests and people see them within a second.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    if otlp_endpoint:
        env["PITCHIN_OTLP_ENDPOINT"] = otlp_endpoint
    return env
