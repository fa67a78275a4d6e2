"""Notifications stages the double opt-in mail at once, even in quiet hours with digests on: it is
transactional (issue 18). Against the real PostgreSQL; nothing is sent, what was staged is read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

import pytest

from pitchin_core.contracts.donors import DonorConfirmationRequestedV1
from pitchin_notifications.domain.quiet_hours import QuietHours
from pitchin_notifications.service.messages import Notifications, Policy
from pitchin_notifications.templates import Renderer
from tests.integration.conftest import cloud_event
from tests.integration.tenancy import FED

pytestmark = pytest.mark.integration
MIGRATIONS = files("pitchin_notifications") / "migrations"
BASE_URL = "http://127.0.0.1:8000"
LINK = f"{BASE_URL}/donors/confirm?token=Zx-9_aQ0123456789abcdef"


async def test_the_confirmation_mail_is_due_now_whatever_the_quiet_hours_and_digests(
    open_service_database: Any,
) -> None:
    db = await open_service_database("notifications", MIGRATIONS)
    # Quiet all day long, and a day's digest: anything that could wait would.
    policy = Policy(
        public_base_url=BASE_URL,
        unsubscribe_key=b"k" * 32,
        quiet_hours=QuietHours.parse("00:00-23:59"),
        digest_seconds=86_400,
    )
    notifications = Notifications(Renderer(), policy)
    now = datetime.now(UTC)
    asked = DonorConfirmationRequestedV1(
        federation_id=FED,
        pending_id="pnd_1",
        name="Dana Okafor",
        email="dana@example.org",
        language="es",
        confirm_url=LINK,
        expires_at=now + timedelta(hours=48),
        valid_hours=48,
    )
    event = cloud_event(asked)
    assert await notifications.stage(db.uow, event, asked)
    assert not await notifications.stage(db.uow, event, asked), "a redelivery stages nothing more"
    [row] = await db.pool.fetch("SELECT * FROM deliveries WHERE event_id = $1 AND channel = 'email'", event.id)
    assert (row["recipient"], row["template"], row["language"]) == ("dana@example.org", "signup_confirm", "es")
    assert row["status"] == "pending" and row["priority"] == 0
    assert row["next_attempt_at"] <= datetime.now(UTC), "due at once: not held for quiet hours or a digest"
    assert LINK in row["body_text"] and row["action_url"] == LINK
    assert row["person_ref"] is None
