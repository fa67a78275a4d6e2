"""The whole system for a benchmark: Kafka, PostgreSQL, an SMTP sink and the services as processes."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from pitchin_testing.install import ensure_installed
from pitchin_testing.kafka import KafkaServer
from pitchin_testing.ports import free_port, free_ports
from pitchin_testing.postgres import PostgresServer
from pitchin_testing.processes import SERVICES
from pitchin_testing.smtp_sink import SmtpSink, SmtpSinkProcess
from pitchin_testing.stack import Stack


@dataclass(frozen=True)
class System:
    state: Path
    kafka: KafkaServer
    postgres: PostgresServer
    mail: SmtpSink | SmtpSinkProcess
    database_url: str
    stack: Stack

    @property
    def sink(self) -> SmtpSink:
        """The in-process sink, whose messages a benchmark can read."""
        if not isinstance(self.mail, SmtpSink):
            raise RuntimeError("this system's SMTP sink runs in its own process: read `mail_log`")
        return self.mail

    @property
    def mail_log(self) -> SmtpSinkProcess:
        """The sink in its own process, logging (recipient, arrival time) per mail."""
        if not isinstance(self.mail, SmtpSinkProcess):
            raise RuntimeError("this system's SMTP sink runs in the benchmark's process: read `sink`")
        return self.mail


@contextmanager
def running_system(
    *,
    web_federation_id: str = "fed-web",
    workers: Mapping[str, int] | None = None,
    sink_process: bool = False,
) -> Iterator[System]:
    """Start everything on free ports under a temporary directory; stop it all on the way out.

    `workers`: HTTP worker processes per service (`pitchin_testing.processes.RUN_WORKERS` is
    what `make run` uses; one each when not given). `sink_process`: run the SMTP sink in a
    process of its own that only logs arrivals (`System.mail_log`), for load that must not
    have the benchmark's process parse every mail.
    """
    ensure_installed()
    state = Path(tempfile.mkdtemp(prefix="pitchin-bench-"))
    kafka_port, controller_port = free_ports(2)
    kafka = KafkaServer(state / "kafka", port=kafka_port, controller_port=controller_port)
    postgres = PostgresServer(state / "postgres", free_port())
    mail: SmtpSink | SmtpSinkProcess = SmtpSinkProcess(state / "mail.log") if sink_process else SmtpSink()
    stack: Stack | None = None
    kafka.start()
    try:
        postgres.start()
        mail.start()
        database_url = postgres.create_database("bench")
        stack = Stack(
            kafka_bootstrap=kafka.bootstrap,
            database_url=database_url,
            smtp_port=mail.port,
            otlp_endpoint=None,
            ports={name: free_port() for name in SERVICES},
            log_dir=state / "logs",
            environment="test",
            web_federation_id=web_federation_id,
            workers=dict(workers or {}),
        )
        stack.start()
        yield System(state, kafka, postgres, mail, database_url, stack)
    finally:
        # Each one stopped whatever happened to the one before: a server left running holds
        # the machine's cores and memory for whatever runs next.
        with ExitStack() as stopping:
            stopping.callback(kafka.stop)
            stopping.callback(postgres.cleanup)
            stopping.callback(mail.stop)
            if stack is not None:
                stopping.callback(stack.stop)
