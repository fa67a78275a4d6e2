"""A broker SIGKILLed and restarted under the running services: every consumer comes back.

Found once in a full run: after the shared Kafka was killed and restarted under the stack, five
of matching's six consumers never rejoined their groups and logged nothing, so the service
silently stopped learning. This kills the broker for longer than a consumer's session (so every
member's session expires on the broker) and requires, within a deadline, every group to be
back to the members it had, and events to flow through every service again.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from pitchin_testing.kafka import KafkaServer, admin_options
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import bearer, eventually
from tests.unit.factories import donor_signup

pytestmark = pytest.mark.e2e

# Longer than a consumer's session (pitchin_core.messaging: at least 10 s), so the broker has
# expired every member by the time it is asked again.
DOWN_FOR_SECONDS = 12.0
SERVICES = ("signups", "matching", "notifications", "scheduling")


async def _members_by_group(bootstrap: str) -> dict[str, int]:
    """The services' consumer groups and how many members each has now."""
    admin = AIOKafkaAdminClient(**admin_options(bootstrap))
    await admin.start()
    try:
        groups = [g[0] for g in await admin.list_consumer_groups() if str(g[0]).startswith(SERVICES)]
        described = await admin.describe_consumer_groups(groups)
        members: dict[str, int] = {}
        for response in described:
            for group in response.groups:
                # (error_code, group_id, state, protocol_type, protocol, members, ...)
                members[group[1]] = len(group[5]) if group[2] == "Stable" else 0
        return members
    finally:
        await admin.close()


def members_by_group(bootstrap: str) -> dict[str, int]:
    return asyncio.run(_members_by_group(bootstrap))


def test_every_consumer_rejoins_after_the_broker_is_killed_and_restarted(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer, mailbox: SmtpSink
) -> None:
    bootstrap = kafka_server.bootstrap
    before = members_by_group(bootstrap)
    assert {g.split("-")[0] for g in before} >= set(SERVICES), before
    assert all(n > 0 for n in before.values()), f"not every group was stable before the kill: {before}"

    kafka_server.kill()
    down_since = time.monotonic()
    while time.monotonic() - down_since < DOWN_FOR_SECONDS:
        # The services keep running (their polls fail) while the broker is away.
        assert all(stack[s].running for s in SERVICES)
        time.sleep(0.5)
    kafka_server.start()

    after = eventually(
        lambda: got if (got := members_by_group(bootstrap)) == before else None,
        timeout=120,
        interval=2.0,
        what=f"every consumer group back to its members {before}",
    )
    assert after == before

    # And they consume: a sign-up reaches notifications (the welcome mail) and matching.
    email = f"rejoin-{uuid.uuid4().hex[:8]}@example.org"
    answer = httpx.post(
        f"{stack['signups'].url}/v1/donors",
        json=donor_signup(name="Rejoin Donor", email=email),
        headers=bearer(tenant.organiser_key),
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    donor_id = answer.json()["donor_id"]
    mailbox.wait_for(lambda m: m["To"] == email, timeout=60)
    eventually(
        lambda: (
            httpx.get(
                f"{stack['matching'].url}/v1/donors/{donor_id}", headers=bearer(tenant.staff_key), timeout=5
            ).status_code
            == 200
        ),
        timeout=60,
        what="matching to learn the donor signed up after the restart",
    )
