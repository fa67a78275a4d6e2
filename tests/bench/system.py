"""The whole system for a benchmark: Kafka, PostgreSQL, an SMTP sink and the services as processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

from pitchin_testing.install import ensure_installed
from pitchin_testing.kafka import KafkaServer
from pitchin_testing.lifecycle import ServerError, stop_process
from pitchin_testing.ports import free_port, free_ports
from pitchin_testing.postgres import PostgresServer
from pitchin_testing.processes import SERVICES, die_with_parent, replicas_from_env
from pitchin_testing.smtp_sink import SmtpSink, SmtpSinkProcess
from pitchin_testing.stack import Stack


class MaildirSinkProcess:
    """The SMTP sink in a process of its own keeping every mail as an .eml file: the benchmark
    reads who got which Message-ID from the files' headers (new files only, on each call)
    instead of parsing every mail in its own process while the load runs."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._read: dict[str, tuple[str, str]] = {}
        self._parser = BytesHeaderParser()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, timeout: float = 30.0) -> None:
        self.maildir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pitchin_testing.smtp_sink",
                "--port",
                str(self.port),
                "--maildir",
                str(self.maildir),
            ],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ServerError(f"the maildir sink exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerError(f"the maildir sink did not listen within {timeout} s") from None
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_process(process, timeout)

    def deliveries(self) -> list[tuple[str, str]]:
        """(recipient, Message-ID) of every mail so far; re-deliveries are files of their own."""
        with os.scandir(self.maildir) as entries:
            for entry in entries:
                if entry.name.endswith(".eml") and entry.name not in self._read:
                    with open(entry.path, "rb") as f:
                        headers = self._parser.parse(f)
                    self._read[entry.name] = (str(headers["To"]).lower(), str(headers["Message-ID"]))
        return list(self._read.values())


@dataclass(frozen=True)
class System:
    state: Path
    kafka: KafkaServer
    postgres: PostgresServer
    mail: SmtpSink | SmtpSinkProcess | MaildirSinkProcess
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
            raise RuntimeError("this system's SMTP sink does not log arrivals: read `sink` or `maildir_sink`")
        return self.mail

    @property
    def maildir_sink(self) -> MaildirSinkProcess:
        """The sink in its own process, keeping each mail as a file (`sink_maildir=True`)."""
        if not isinstance(self.mail, MaildirSinkProcess):
            raise RuntimeError("this system's SMTP sink keeps no mail files: read `sink` or `mail_log`")
        return self.mail


@contextmanager
def running_system(
    *,
    web_federation_id: str = "fed-web",
    workers: Mapping[str, int] | None = None,
    sink_process: bool = False,
    sink_maildir: bool = False,
    replicas: Mapping[str, int] | None = None,
) -> Iterator[System]:
    """Start everything on free ports under a temporary directory; stop it all on the way out.

    `workers`: HTTP worker processes per service (`pitchin_testing.processes.RUN_WORKERS` is
    what `make run` uses; one each when not given). `sink_process`: run the SMTP sink in a
    process of its own that only logs arrivals (`System.mail_log`), for load that must not
    have the benchmark's process parse every mail; `sink_maildir`: the same, keeping every mail
    as a file (`System.maildir_sink`, whose headers the benchmark reads). `replicas`: processes per service (each on
    its own port, with `workers` each); when not given, PITCHIN_REPLICAS and
    PITCHIN_MATCHING_REPLICAS (`REPLICAS=2 make bench`), one each by default.
    """
    ensure_installed()
    state = Path(tempfile.mkdtemp(prefix="pitchin-bench-"))
    kafka_port, controller_port = free_ports(2)
    kafka = KafkaServer(state / "kafka", port=kafka_port, controller_port=controller_port)
    postgres = PostgresServer(state / "postgres", free_port())
    mail: SmtpSink | SmtpSinkProcess | MaildirSinkProcess = SmtpSink()
    if sink_maildir:
        mail = MaildirSinkProcess(state / "mail")
    elif sink_process:
        mail = SmtpSinkProcess(state / "mail.log")
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
            replicas=replicas_from_env() if replicas is None else replicas,
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
