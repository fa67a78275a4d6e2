"""Killing a service mid-stream loses nothing and sends no email twice once it is back."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import asyncpg
import httpx
import pytest

from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import bearer, eventually, fetch
from tests.unit.factories import donor_signup

pytestmark = pytest.mark.e2e

DONORS = 40


def _sign_up_many(stack: Stack, tenant: Tenant, emails: list[str], signed_up: threading.Event) -> list[int]:
    statuses = []
    with httpx.Client(timeout=15) as client:
        for number, email in enumerate(emails):
            answer = client.post(
                f"{stack['signups'].url}/v1/donors",
                json=donor_signup(name=f"Donor {number}", email=email),
                headers=bearer(tenant.organiser_key),
            )
            statuses.append(answer.status_code)
            if number == len(emails) // 4:
                signed_up.set()
    return statuses


def _run_while_killing(stack: Stack, tenant: Tenant, victim: str, emails: list[str]) -> None:
    """Sign donors up; SIGKILL `victim` a quarter of the way in; start it again."""
    quarter_done = threading.Event()
    results: list[int] = []
    worker = threading.Thread(target=lambda: results.extend(_sign_up_many(stack, tenant, emails, quarter_done)))
    worker.start()
    assert quarter_done.wait(60), "sign-ups did not start"
    stack[victim].kill()
    worker.join(120)
    assert results == [201] * len(emails)
    stack[victim].start()
    stack[victim].wait_ready()


def test_killing_matching_mid_stream_loses_no_event_and_sends_no_duplicate_email(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink
) -> None:
    emails = [f"crash-{uuid.uuid4().hex[:8]}@example.org" for _ in range(DONORS)]
    _run_while_killing(stack, tenant, "matching", emails)

    def learned() -> list[asyncpg.Record] | None:
        rows = fetch(stack, "SELECT donor_id FROM matching.donors WHERE federation_id = $1", tenant.federation_id)
        return rows if len(rows) >= DONORS else None

    assert len(eventually(learned, timeout=90, what="matching to learn every donor")) == DONORS
    skills = fetch(
        stack,
        "SELECT count(*) AS n FROM matching.donor_skills s JOIN matching.donors d USING (donor_id)"
        " WHERE d.federation_id = $1",
        tenant.federation_id,
    )
    assert skills[0]["n"] == DONORS * 2

    _assert_each_donor_mailed_once(stack, tenant, mailbox, emails)


def test_killing_notifications_mid_stream_loses_no_email(stack: Stack, tenant: Tenant, mailbox: SmtpSink) -> None:
    emails = [f"crash-n-{uuid.uuid4().hex[:8]}@example.org" for _ in range(DONORS)]
    _run_while_killing(stack, tenant, "notifications", emails)
    _assert_each_donor_mailed_once(stack, tenant, mailbox, emails, allow_same_message_again=True)


def _assert_each_donor_mailed_once(
    stack: Stack, tenant: Tenant, mailbox: SmtpSink, emails: list[str], allow_same_message_again: bool = False
) -> None:
    wanted = set(emails)

    def all_sent() -> list[asyncpg.Record] | None:
        rows = fetch(
            stack,
            "SELECT recipient, status FROM notifications.deliveries WHERE federation_id = $1",
            tenant.federation_id,
        )
        return rows if len(rows) >= DONORS and all(r["status"] == "sent" for r in rows) else None

    deliveries = eventually(all_sent, timeout=90, what="every welcome email to be sent")
    assert Counter(r["recipient"] for r in deliveries) == Counter(emails), "one delivery row per donor"
    eventually(lambda: wanted <= {m["To"] for m in mailbox.messages}, timeout=30, what="every email to arrive")
    arrived = [m for m in mailbox.messages if m["To"] in wanted]
    per_recipient = Counter(m["To"] for m in arrived)
    if allow_same_message_again:
        # SIGKILL between the SMTP server's "250 OK" and our commit can repeat a send; it
        # then carries the same Message-ID, so mail clients show it once.
        assert {m["To"]: m["Message-ID"] for m in arrived} and all(
            len({m["Message-ID"] for m in arrived if m["To"] == to}) == 1 for to in wanted
        )
    else:
        assert per_recipient == Counter(emails), f"duplicates: {[t for t, n in per_recipient.items() if n > 1]}"
