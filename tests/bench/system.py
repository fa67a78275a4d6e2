"""The whole system for a benchmark: Kafka, PostgreSQL, an SMTP sink and the services as processes."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pitchin_testing.install import ensure_installed
from pitchin_testing.kafka import KafkaServer
from pitchin_testing.ports import free_port, free_ports
from pitchin_testing.postgres import PostgresServer
from pitchin_testing.processes import SERVICES
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack


@dataclass(frozen=True)
class System:
    state: Path
    kafka: KafkaServer
    postgres: PostgresServer
    sink: SmtpSink
    database_url: str
    stack: Stack


@contextmanager
def running_system(*, web_federation_id: str = "fed-web") -> Iterator[System]:
    """Start everything on free ports under a temporary directory; stop it all on the way out."""
    ensure_installed()
    state = Path(tempfile.mkdtemp(prefix="pitchin-bench-"))
    kafka_port, controller_port = free_ports(2)
    kafka = KafkaServer(state / "kafka", port=kafka_port, controller_port=controller_port)
    postgres = PostgresServer(state / "postgres", free_port())
    sink = SmtpSink()
    stack: Stack | None = None
    kafka.start()
    try:
        postgres.start()
        sink.start()
        database_url = postgres.create_database("bench")
        stack = Stack(
            kafka_bootstrap=kafka.bootstrap,
            database_url=database_url,
            smtp_port=sink.port,
            otlp_endpoint=None,
            ports={name: free_port() for name in SERVICES},
            log_dir=state / "logs",
            environment="test",
            web_federation_id=web_federation_id,
        )
        stack.start()
        yield System(state, kafka, postgres, sink, database_url, stack)
    finally:
        if stack is not None:
            stack.stop()
        sink.stop()
        postgres.cleanup()
        kafka.stop()
