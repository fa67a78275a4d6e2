"""Session fixtures shared by every test folder: one set of real servers, one running system."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pitchin_testing.kafka import KafkaServer
from pitchin_testing.otlp import OtlpReceiver
from pitchin_testing.ports import free_port
from pitchin_testing.postgres import PostgresServer
from pitchin_testing.processes import SERVICES
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver(free_port())
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def stack(
    kafka_server: KafkaServer,
    postgres_server: PostgresServer,
    smtp_sink: SmtpSink,
    otlp: OtlpReceiver,
    state_root: Path,
) -> Iterator[Stack]:
    database_url = postgres_server.create_database("pitchin_e2e")
    ports = {name: free_port() for name in SERVICES}
    system = Stack(
        kafka_bootstrap=kafka_server.bootstrap,
        database_url=database_url,
        smtp_port=smtp_sink.port,
        otlp_endpoint=otlp.endpoint,
        ports=ports,
        # Mails link to the web front (one-click unsubscribe, donors' and confirmation links), as in production.
        public_base_url=f"http://127.0.0.1:{ports['web']}",
        log_dir=state_root / "services",
    )
    try:
        system.start()
        yield system
    finally:
        system.stop()


@dataclass(frozen=True)
class Tenant:
    federation_id: str
    organisation_id: str
    organiser_key: str
    staff_key: str
    # The platform operator's key for this federation: the only one that moves its mail or texts.
    operator_key: str


def new_tenant(federation: str, issue_key: Callable[[str, str | None, str], str]) -> Tenant:
    """A member organisation of its own in `federation`, with an organiser's, a federation staff and an operator key."""
    organisation = f"org-{uuid.uuid4().hex[:8]}"
    return Tenant(
        federation_id=federation,
        organisation_id=organisation,
        organiser_key=issue_key(federation, organisation, "organiser"),
        staff_key=issue_key(federation, None, "federation-staff"),
        operator_key=issue_key(federation, None, "platform-operator"),
    )


@pytest.fixture
def tenant(stack: Stack) -> Tenant:
    """A federation and member organisation of its own for each test: tests never share data."""
    return new_tenant(f"fed-{uuid.uuid4().hex[:8]}", stack.issue_key)


pytest_plugins = ["pitchin_testing.plugin"]
