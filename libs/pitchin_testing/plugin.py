"""pytest plugin: real Kafka, PostgreSQL and SMTP servers as local processes.

Enable with ``pytest_plugins = ["pitchin_testing.plugin"]`` in the top-level conftest.py.
All server fixtures are session-scoped, synchronous and lazy: a server starts only when a
test (or fixture) of the session asks for it, and stops at the end of the session.

State (configs, data, logs, mails) goes to ``<repo>/.state/test-<pid>/`` (git-ignored) and is
left there for inspection; the PostgreSQL cluster itself lives under ``/var/tmp`` (see
``PostgresServer``) and is deleted at the end, after its log has been copied into the state dir.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from pitchin_testing.install import ensure_installed, repo_root
from pitchin_testing.kafka import KafkaServer
from pitchin_testing.lifecycle import LocalServer
from pitchin_testing.ports import free_port, free_ports
from pitchin_testing.postgres import PostgresServer
from pitchin_testing.smtp_sink import SmtpSink


def _report(config: pytest.Config, text: str) -> None:
    """A line on the terminal, past pytest's output capturing."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"[pitchin] {text}")
    else:
        reporter.write_line(f"[pitchin] {text}")


Server = TypeVar("Server", bound=LocalServer)


def _serving(config: pytest.Config, server: Server, where: str, end: Callable[[], object]) -> Iterator[Server]:
    """Start ``server`` for the session (saying how long it took), and ``end`` it afterwards."""
    began = time.monotonic()
    server.start()
    _report(config, f"{where} ready in {time.monotonic() - began:.1f} s")
    try:
        yield server
    finally:
        end()


@pytest.fixture(scope="session")
def state_root() -> Path:
    """A fresh directory for this test session: ``<repo>/.state/test-<pid>``."""
    root = repo_root() / ".state" / f"test-{os.getpid()}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    return root


@pytest.fixture(scope="session")
def pitchin_installed() -> None:
    """Kafka jars and PostgreSQL binaries are present (runs deploy/local/install.sh if not)."""
    ensure_installed()


@pytest.fixture(scope="session")
def kafka_server(state_root: Path, pitchin_installed: None, pytestconfig: pytest.Config) -> Iterator[KafkaServer]:
    """A single-node Kafka broker for the session; ``kafka_server.bootstrap`` to connect."""
    port, controller_port = free_ports(2)
    server = KafkaServer(state_root / "kafka", port=port, controller_port=controller_port)
    yield from _serving(pytestconfig, server, f"kafka on {server.bootstrap}", server.stop)


@pytest.fixture(scope="session")
def postgres_server(state_root: Path, pitchin_installed: None, pytestconfig: pytest.Config) -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster for the session; ``postgres_server.dsn`` to connect."""
    server = PostgresServer(state_root / "postgres", port=free_port())
    yield from _serving(pytestconfig, server, f"postgresql on 127.0.0.1:{server.port}", server.cleanup)


@pytest.fixture(scope="session")
def smtp_sink(state_root: Path) -> Iterator[SmtpSink]:
    """An SMTP sink for the session; mails are also saved in ``<state_root>/mail``."""
    sink = SmtpSink(maildir=state_root / "mail")
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def mailbox(smtp_sink: SmtpSink) -> SmtpSink:
    """The session's SMTP sink, emptied for this test."""
    smtp_sink.clear()
    return smtp_sink
