"""Never twice, never lost: redelivered events, a restart or a crash mid-batch, a failing SMTP server."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage

import httpx
import pytest

from pitchin_testing.kafka import KafkaServer
from pitchin_testing.ports import free_port
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import bearer, eventually, fetch
from tests.e2e.test_notifications_kit import (
    RefusingSmtp,
    applied,
    booking,
    configure,
    donor,
    event_created,
    event_facts,
    publish,
    publish_many,
    put_template,
)

pytestmark = pytest.mark.e2e

ATTENDEES = 300


def test_a_redelivered_event_sends_nothing_twice(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink, kafka_server: KafkaServer
) -> None:
    configure(stack, tenant, quiet_hours="")
    person = donor(tenant)
    event_id = str(uuid.uuid4())
    mine = booking(tenant, "evt_again")
    booking_event = str(uuid.uuid4())
    for _ in range(3):  # the same CloudEvent id, as Kafka redelivers after a crash or rebalance
        publish(kafka_server.bootstrap, tenant, "org.pitchin.donor.registered.v1", person, event_id=event_id)
        publish(kafka_server.bootstrap, tenant, "org.pitchin.booking.confirmed.v1", mine, event_id=booking_event)
    marker = booking(tenant, "evt_again")
    publish(kafka_server.bootstrap, tenant, "org.pitchin.booking.confirmed.v1", marker)
    mailbox.wait_for(lambda m: m["To"] == marker["email"], timeout=30)
    eventually(
        lambda: len([m for m in mailbox.messages if m["To"] in (person["email"], mine["email"])]) >= 2,
        what="both emails",
    )
    arrived = Counter(str(m["To"]) for m in mailbox.messages)
    assert arrived[person["email"]] == 1 and arrived[mine["email"]] == 1
    rows = fetch(
        stack,
        "SELECT count(*) AS n FROM notifications.deliveries WHERE event_id = any($1::text[])",
        [event_id, booking_event],
    )
    assert rows[0]["n"] == 2


def _reminder(stack: Stack, tenant: Tenant, kafka_server: KafkaServer, created: dict[str, object], rid: str) -> str:
    return publish(
        kafka_server.bootstrap,
        tenant,
        "org.pitchin.event.reminder-due.v1",
        {
            **event_facts(created),
            "reminder_id": rid,
            "reminder_kind": "custom",
            "offset_seconds": 3600,
            "due_at": datetime.now(UTC).isoformat(),
            "status": "published",
            "organiser_email": created["organiser_email"],
        },
    )


def test_a_restart_or_a_crash_mid_batch_loses_nothing_and_repeats_nothing(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink, kafka_server: KafkaServer
) -> None:
    configure(stack, tenant, quiet_hours="")
    created = event_created(tenant, title=f"Big rally {uuid.uuid4().hex[:6]}")
    people = [booking(tenant, created["event_id"]) for _ in range(ATTENDEES)]
    ids = publish_many(
        kafka_server.bootstrap,
        tenant,
        [("org.pitchin.event.created.v1", created, None)]
        + [("org.pitchin.booking.confirmed.v1", b, None) for b in people],
    )
    eventually(lambda: applied(stack, ids[-1]) and all(applied(stack, i) for i in ids), timeout=90, what="bookings")
    wanted = {b["email"] for b in people}

    def reminders(rid: str) -> list[EmailMessage]:
        return [m for m in mailbox.messages if m["To"] in wanted and f"[{rid}]" in str(m["Subject"])]

    def remind_everyone_through(rid: str, interrupt: Callable[[], None]) -> list[EmailMessage]:
        """Send reminder `rid`, `interrupt` notifications once its first mails are out, start it again:
        every attendee gets the reminder in the end."""
        _reminder(stack, tenant, kafka_server, created, rid)
        eventually(lambda: len(reminders(rid)) >= 20, timeout=60, what=f"the first reminders {rid}")
        interrupt()
        stack["notifications"].start()
        stack["notifications"].wait_ready()
        eventually(lambda: {m["To"] for m in reminders(rid)} == wanted, timeout=90, what=f"every reminder {rid}")
        return reminders(rid)

    # An organisation override tags each reminder so the two runs can be told apart.
    tagged = "Reminder [{{ data.reminder_id }}]: {{ event.title }}"
    assert put_template(stack, tenant.organiser_key, "event_reminder/en/subject", tagged).status_code == 200

    # 1. A graceful restart (SIGTERM) mid-batch: the batch in hand is finished and committed.
    per_person = Counter(str(m["To"]) for m in remind_everyone_through("r1", stack["notifications"].stop))
    assert max(per_person.values()) == 1, "a graceful restart repeated a message"

    # 2. SIGKILL mid-batch: nothing lost; a message whose 250 OK arrived before the commit may
    #    be sent again, with the same Message-ID, so mail clients show it once.
    ids_per_person: dict[str, set[str]] = {}
    for m in remind_everyone_through("r2", stack["notifications"].kill):
        ids_per_person.setdefault(str(m["To"]), set()).add(str(m["Message-ID"]))
    assert all(len(v) == 1 for v in ids_per_person.values())

    # The sender records "sent" after the server's 250 OK, in its own commit: the last mails
    # may be in the sink a moment before their rows say so.
    def recorded() -> tuple[int, bool] | None:
        [row] = fetch(
            stack,
            "SELECT count(*) AS n, coalesce(bool_and(status = 'sent'), false) AS sent FROM notifications.deliveries"
            " WHERE template = 'event_reminder' AND federation_id = $1",
            tenant.federation_id,
        )
        return (row["n"], row["sent"]) if row["sent"] else None

    assert eventually(recorded, timeout=30, what="every reminder recorded as sent") == (2 * ATTENDEES, True)


def test_a_failing_smtp_server_means_retries_then_a_dead_letter_and_the_consumer_carries_on(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink, kafka_server: KafkaServer
) -> None:
    url = stack["notifications"].url
    port = free_port()
    with RefusingSmtp(port) as refusing:
        configure(stack, tenant, quiet_hours="", smtp_port=port, max_attempts=3, retry_base_seconds=0.2)
        stuck = booking(tenant, "evt_smtp")
        publish(kafka_server.bootstrap, tenant, "org.pitchin.booking.confirmed.v1", stuck)

        def dead() -> list[dict[str, object]] | None:
            items: list[dict[str, object]] = httpx.get(
                f"{url}/v1/dead-letters", headers=bearer(tenant.organiser_key), timeout=5
            ).json()["items"]
            return items or None

        [letter] = eventually(dead, timeout=60, what="a dead letter")
        assert letter["channel"] == "email" and letter["attempts"] == 3
        assert "451" in str(letter["reason"])
        assert refusing.attempts == 3
        [row] = httpx.get(f"{url}/v1/deliveries?status=dead", headers=bearer(tenant.organiser_key), timeout=5).json()[
            "items"
        ]
        assert row["attempts"] == 3 and row["last_error"]

        # The consumer was never held: later events, here and elsewhere, are handled at once.
        other_tenant_mail = booking(tenant, "evt_smtp")
        other_tenant_mail["federation_id"] = f"fed-{uuid.uuid4().hex[:6]}"
        publish(kafka_server.bootstrap, tenant, "org.pitchin.booking.confirmed.v1", other_tenant_mail)
        mailbox.wait_for(lambda m: m["To"] == other_tenant_mail["email"], timeout=30)

    # Fixed: the operator puts the working server back, and the dead letter is re-sent by hand.
    configure(stack, tenant, quiet_hours="", smtp_port=None)
    again = httpx.post(
        f"{url}/v1/deliveries/{row['delivery_id']}/resend", headers=bearer(tenant.organiser_key), timeout=5
    )
    assert again.status_code == 202, again.text
    mailbox.wait_for(lambda m: m["To"] == stuck["email"], timeout=30)
    assert httpx.post(
        f"{url}/v1/deliveries/{row['delivery_id']}/resend", headers=bearer(tenant.organiser_key), timeout=5
    ).status_code in (202, 409)
