"""Durable reminders: they fire once, on time, across a SIGKILL of scheduling, and trace back to
the request that set them."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from pitchin_testing.kafka import KafkaServer
from pitchin_testing.otlp import OtlpReceiver
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import bearer, eventually, fetch
from tests.e2e.test_scheduling import events_on_topic

pytestmark = pytest.mark.e2e

EVENTS = 8


def _fired(stack: Stack, federation_id: str) -> list[asyncpg.Record]:
    return fetch(
        stack, "SELECT reminder_id, due_at, fired_at FROM scheduling.reminders WHERE federation_id = $1", federation_id
    )


def _soon_event(client: httpx.Client, tenant: Tenant, starts_in: timedelta, reminders: list[Any]) -> dict[str, Any]:
    starts = (datetime.now(UTC) + starts_in).astimezone().replace(microsecond=0)
    answer = client.post(
        "/v1/events",
        json={
            "kind": "livestream",
            "title": "Going live: digital tools for the picket line",
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=1)).isoformat(),
            "time_zone": "America/Chicago",
            "online_url": "https://stream.example/picket",
            "hashtag": "PicketLine",
            "organiser_email": "live@example.org",
            "reminders": reminders,
        },
        headers=bearer(tenant.organiser_key),
    )
    assert answer.status_code == 201, answer.text
    event: dict[str, Any] = answer.json()
    return event


def test_reminders_fire_exactly_once_when_scheduling_is_killed_around_their_due_time(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer
) -> None:
    with httpx.Client(base_url=stack["scheduling"].url, timeout=15) as client:
        # Two reminders per event, 4 s apart: the kill lands after the first wave has begun
        # firing and the second wave falls due while scheduling is down.
        two_waves = [{"before": "PT4S"}, {"before": "PT0S"}]
        events = [_soon_event(client, tenant, timedelta(seconds=12), two_waves) for _ in range(EVENTS)]
    expected = 2 * EVENTS
    first_due = min(r["due_at"] for r in _fired(stack, tenant.federation_id))
    assert len(_fired(stack, tenant.federation_id)) == expected

    eventually(
        lambda: any(r["fired_at"] for r in _fired(stack, tenant.federation_id)),
        timeout=30,
        interval=0.02,
        what="the first reminder to fire",
    )
    stack["scheduling"].kill()
    try:
        fired_while_up = sum(1 for r in _fired(stack, tenant.federation_id) if r["fired_at"])
        last_due = max(r["due_at"] for r in _fired(stack, tenant.federation_id))
        # Stay down until every reminder is overdue: they must fire on restart, late but once.
        eventually(lambda: datetime.now(UTC) > last_due + timedelta(seconds=1), timeout=30, what="all overdue")
        assert sum(1 for r in _fired(stack, tenant.federation_id) if r["fired_at"]) == fired_while_up
    finally:
        stack["scheduling"].start()
        stack["scheduling"].wait_ready()

    def all_fired() -> list[asyncpg.Record] | None:
        rows = _fired(stack, tenant.federation_id)
        return rows if all(r["fired_at"] for r in rows) else None

    rows = eventually(
        all_fired,
        timeout=60,
        what="every reminder to fire after the restart",
    )
    assert all(r["fired_at"] >= r["due_at"] for r in rows), "no reminder fires early"
    assert first_due <= min(r["fired_at"] for r in rows)

    ids = {e["event_id"] for e in events}

    def reminder_events() -> dict[str, set[str]] | None:
        found: dict[str, set[str]] = defaultdict(set)
        for ce_id, kind, data in events_on_topic(kafka_server.bootstrap, "events/"):
            if kind == "org.pitchin.event.reminder-due.v1" and data["event_id"] in ids:
                found[data["reminder_id"]].add(ce_id)
        return found if len(found) >= expected else None

    per_reminder = eventually(reminder_events, timeout=60, what="every reminder-due event on Kafka")
    assert len(per_reminder) == expected
    # One reminder-due event per reminder. (The relay may deliver one event twice if it is
    # killed between Kafka's ack and its commit; it is then the same event id, which
    # consumers de-duplicate. Scheduling was killed here, so its relay could have been.)
    assert all(len(ce_ids) == 1 for ce_ids in per_reminder.values()), per_reminder


def test_a_reminder_is_emitted_with_current_details_and_its_trace_links_to_the_request_that_set_it(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer, otlp: OtlpReceiver
) -> None:
    with httpx.Client(base_url=stack["scheduling"].url, timeout=15) as client:
        event = _soon_event(client, tenant, timedelta(seconds=4), [{"before": "PT0S"}])
        renamed = client.patch(
            f"/v1/events/{event['event_id']}",
            json={"title": "Going live: the picket line online"},
            headers=bearer(tenant.organiser_key),
        )
        assert renamed.status_code == 200 and renamed.json()["version"] == 2

    def reminder() -> dict[str, Any] | None:
        for _, kind, data in events_on_topic(kafka_server.bootstrap, f"events/{event['event_id']}/reminders"):
            if kind == "org.pitchin.event.reminder-due.v1":
                return data
        return None

    data = eventually(reminder, timeout=30, what="the reminder-due event")
    assert data["reminder_kind"] == "at-start" and data["offset_seconds"] == 0
    assert data["title"] == "Going live: the picket line online" and data["version"] == 2
    assert data["online_url"] == "https://stream.example/picket" and data["hashtag"] == "#PicketLine"
    assert data["time_zone"] == "America/Chicago"
    assert datetime.fromisoformat(data["starts_at"]) == datetime.fromisoformat(event["starts_at"])

    spans = otlp.wait_for(
        lambda spans: any(
            s.service == "scheduling"
            and s.name == "reminder due"
            and s.attributes.get("pitchin.event.id") == event["event_id"]
            for s in spans
        )
    )
    [fired] = [
        s for s in spans if s.name == "reminder due" and s.attributes.get("pitchin.event.id") == event["event_id"]
    ]
    requests = [s for s in spans if s.service == "scheduling" and s.kind == "server" and s.name == "POST /v1/events"]
    setter = [s for s in requests if s.span_id in fired.links]
    assert setter, "the reminder's span links to the POST that scheduled it"
    assert setter[0].trace_id != fired.trace_id, "a new trace, linked rather than parented"
    # The reminder's trace continues through the relay to the consumers.
    otlp.wait_for(lambda spans: any(s.trace_id == fired.trace_id and s.service == "notifications" for s in spans))
