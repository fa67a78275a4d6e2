"""Scheduling end to end: events, agenda, reminders, feeds and listings on real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from icalendar import Calendar

from pitchin_core.contracts.bookings import BookingConfirmedV1
from pitchin_core.contracts.topics import BOOKINGS, EVENTS
from pitchin_core.links import sign_booking_link
from pitchin_testing.kafka import KafkaServer, admin_options
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import as_cloud_event, bearer, eventually, send_cloud_events

pytestmark = pytest.mark.e2e


def events_on_topic(bootstrap: str, subject_prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(ce_id, ce_type, data) of every record on pitchin.events.v1 whose subject starts with the prefix."""

    async def read() -> list[tuple[str, str, dict[str, Any]]]:
        consumer = AIOKafkaConsumer(**admin_options(bootstrap), enable_auto_commit=False)
        await consumer.start()
        try:
            # The topic is created with the table\'s partition count (kafka_admin.ensure_topics).
            partitions = [TopicPartition(EVENTS.name, p) for p in range(EVENTS.partitions)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            found = []
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        headers = {k: v.decode() for k, v in record.headers}
                        if headers.get("ce_subject", "").startswith(subject_prefix):
                            found.append((headers["ce_id"], headers["ce_type"], json.loads(record.value)))
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())


def types_for(bootstrap: str, event_id: str, at_least: int) -> list[str] | None:
    """The event's facts on the topic (types without the org.pitchin. prefix), once there are enough."""
    found = [kind.removeprefix("org.pitchin.") for _, kind, _ in events_on_topic(bootstrap, f"events/{event_id}")]
    return found if len(found) >= at_least else None


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "panel",
        "title": "Unions and the internet: a panel",
        "starts_at": "2027-03-27T18:00:00",
        "ends_at": "2027-03-27T21:00:00",
        "time_zone": "Europe/London",
        "venue_name": "Union Hall",
        "venue_address": "Drummond Street, London",
        "online_url": "https://stream.example/unions",
        "hashtag": "UnionsOnline",
        "capacity": 60,
        "organiser_email": "events@example.org",
    }
    body.update(overrides)
    return body


def _create(client: httpx.Client, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    answer = client.post("/v1/events", json=_body(**overrides), headers=bearer(tenant.organiser_key))
    assert answer.status_code == 201, answer.text
    event: dict[str, Any] = answer.json()
    return event


@pytest.fixture
def client(stack: Stack) -> Any:
    with httpx.Client(base_url=stack["scheduling"].url, timeout=15) as http:
        yield http


def test_reschedule_moves_the_reminders_and_cancel_removes_them_with_every_change_on_kafka(
    stack: Stack, tenant: Tenant, client: httpx.Client, kafka_server: KafkaServer
) -> None:
    event = _create(client, tenant)
    event_id = event["event_id"]
    assert datetime.fromisoformat(event["starts_at"]) == datetime(2027, 3, 27, 18, tzinfo=UTC)
    assert event["livestream_status"] == "scheduled"
    auth = bearer(tenant.organiser_key)

    before = client.get(f"/v1/events/{event_id}/reminders", headers=auth).json()
    assert {(r["kind"], datetime.fromisoformat(r["due_at"])) for r in before} == {
        ("day-before", datetime(2027, 3, 26, 18, tzinfo=UTC)),
        ("hour-before", datetime(2027, 3, 27, 17, tzinfo=UTC)),
        ("at-start", datetime(2027, 3, 27, 18, tzinfo=UTC)),
    }

    # Moved a day later, over the change to summer time: 18:00 BST is 17:00 UTC, and a day
    # before is 24 hours before that instant (17:00 BST on the 27th... i.e. 16:00 UTC).
    moved = client.post(
        f"/v1/events/{event_id}/reschedule",
        json={"starts_at": "2027-03-28T18:00:00", "ends_at": "2027-03-28T21:00:00", "reason": "hall double-booked"},
        headers=auth,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["starts_at"] == "2027-03-28T18:00:00+01:00" and moved.json()["version"] == 2
    after = client.get(f"/v1/events/{event_id}/reminders", headers=auth).json()
    due = {r["kind"]: datetime.fromisoformat(r["due_at"]).astimezone(UTC) for r in after}
    assert due == {
        "day-before": datetime(2027, 3, 27, 17, tzinfo=UTC),
        "hour-before": datetime(2027, 3, 28, 16, tzinfo=UTC),
        "at-start": datetime(2027, 3, 28, 17, tzinfo=UTC),
    }
    assert all(r["event_version"] == 2 and r["fired_at"] is None for r in after)
    assert not {r["reminder_id"] for r in after} & {r["reminder_id"] for r in before}, "old timers are gone"

    # Another tenant sees nothing, not even that the event exists.
    stranger = stack.issue_key(f"fed-{uuid.uuid4().hex[:8]}", "someone-else", "organiser")
    for path in (f"/v1/events/{event_id}", f"/v1/events/{event_id}/reminders"):
        assert client.get(path, headers=bearer(stranger)).status_code == 404
    assert client.post(f"/v1/events/{event_id}/cancel", json={}, headers=bearer(stranger)).status_code == 404

    cancelled = client.post(f"/v1/events/{event_id}/cancel", json={"reason": "strike called"}, headers=auth)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.get(f"/v1/events/{event_id}/reminders", headers=auth).json() == []
    again = client.post(f"/v1/events/{event_id}/publish", headers=auth)
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    assert "cancelled" in again.json()["detail"]

    # The public calendar keeps the event, marked cancelled, so subscribed calendars drop it.
    feed = Calendar.from_ical(client.get(f"/v1/events/{event_id}.ics").content)
    [entry] = feed.walk("VEVENT")
    assert str(entry["status"]) == "CANCELLED" and entry.decoded("sequence") == 2

    wanted = ["event.created.v1", "event.published.v1", "event.rescheduled.v1", "event.cancelled.v1"]
    seen = eventually(
        lambda: types_for(kafka_server.bootstrap, event_id, 4),
        timeout=30,
        what="the lifecycle on pitchin.events.v1",
    )
    assert seen == wanted


def test_livestream_lifecycle_is_published(tenant: Tenant, client: httpx.Client, kafka_server: KafkaServer) -> None:
    event_id = _create(client, tenant, starts_at="2027-05-01T18:00:00", ends_at="2027-05-01T20:00:00")["event_id"]
    auth = bearer(tenant.organiser_key)
    for step in ("livestream/start", "livestream/end"):
        assert client.post(f"/v1/events/{event_id}/{step}", headers=auth).status_code == 200
    recorded = client.post(
        f"/v1/events/{event_id}/livestream/recording", json={"recording_url": "https://video.example/r1"}, headers=auth
    )
    assert recorded.json()["livestream_status"] == "recording-available"
    assert recorded.json()["status"] == "live"
    assert client.post(f"/v1/events/{event_id}/end", headers=auth).json()["status"] == "ended"
    seen = eventually(lambda: types_for(kafka_server.bootstrap, event_id, 7), timeout=30)
    assert seen == [
        "event.created.v1",
        "event.published.v1",
        "livestream.started.v1",
        "event.started.v1",
        "livestream.ended.v1",
        "livestream.recording-available.v1",
        "event.ended.v1",
    ]


def test_a_speaker_or_room_booked_twice_is_refused_naming_the_clash(tenant: Tenant, client: httpx.Client) -> None:
    auth = bearer(tenant.organiser_key)
    panel = _create(client, tenant, starts_at="2027-06-10T18:00:00", ends_at="2027-06-10T21:00:00")["event_id"]
    training = _create(
        client,
        tenant,
        kind="training",
        title="Social media training",
        starts_at="2027-06-10T17:00:00",
        ends_at="2027-06-10T20:00:00",
        online_url=None,
    )["event_id"]
    chair = {"person_id": "gloria-cruz", "name": "Gloria Cruz", "role": "chair"}

    def add_session(event_id: str, title: str, starts: str, ends: str, **more: Any) -> httpx.Response:
        """A session on 10 June 2027, the day of both events (London wall-clock times)."""
        times = {"starts_at": f"2027-06-10T{starts}:00", "ends_at": f"2027-06-10T{ends}:00"}
        return client.post(f"/v1/events/{event_id}/sessions", json={"title": title, **times, **more}, headers=auth)

    first = add_session(panel, "Opening remarks", "18:00", "19:00", room="Main hall", people=[chair])
    assert first.status_code == 201, first.text
    clash = add_session(training, "Writing for the web", "18:30", "19:30", people=[{**chair, "role": "trainer"}])
    assert clash.status_code == 409 and clash.headers["content-type"] == "application/problem+json"
    problem = clash.json()
    assert "Gloria Cruz is already booked for 'Opening remarks'" in problem["detail"]
    assert problem["clashes"][0]["session_id"] == first.json()["session_id"]
    assert problem["errors"][0]["field"] == "people"
    room = add_session(panel, "Respondents", "18:45", "19:30", room="main hall")
    assert room.status_code == 409 and "room 'main hall'" in room.json()["detail"]
    after = add_session(panel, "Respondents", "19:00", "19:30", room="Main hall", people=[chair])
    assert after.status_code == 201, after.text
    outside = add_session(panel, "Late", "21:00", "22:00")
    assert outside.status_code == 422 and outside.json()["errors"][0]["field"] == "starts_at"
    # Rescheduling the panel moves its sessions with it and keeps their local times.
    moved = client.post(
        f"/v1/events/{panel}/reschedule",
        json={"starts_at": "2027-06-11T18:00:00", "ends_at": "2027-06-11T21:00:00"},
        headers=auth,
    )
    assert moved.status_code == 200, moved.text
    sessions = client.get(f"/v1/events/{panel}/sessions", headers=auth).json()
    assert [s["starts_at"] for s in sessions] == ["2027-06-11T18:00:00+01:00", "2027-06-11T19:00:00+01:00"]


def test_series_listing_and_feeds(stack: Stack, tenant: Tenant, client: httpx.Client) -> None:
    auth = bearer(tenant.organiser_key)
    answer = client.post(
        "/v1/series",
        json={
            "event": _body(
                kind="meet-up",
                title="Digital organisers' coffee",
                starts_at="2027-03-16T18:00:00",
                ends_at="2027-03-16T19:30:00",
                online_url=None,
                venue_name="Coffee shop",
                venue_latitude=52.5125,
                venue_longitude=-2.0811,
                hashtag="DigitalCoffee",
            ),
            "rrule": "FREQ=WEEKLY;COUNT=4",
        },
        headers=auth,
    )
    assert answer.status_code == 201, answer.text
    series = answer.json()
    assert [e["starts_at"] for e in series["events"]] == [
        "2027-03-16T18:00:00Z",
        "2027-03-23T18:00:00Z",
        "2027-03-30T18:00:00+01:00",
        "2027-04-06T18:00:00+01:00",
    ]
    online = _create(
        client,
        tenant,
        starts_at="2027-03-20T10:00:00",
        ends_at="2027-03-20T11:00:00",
        venue_name=None,
        venue_address=None,
        kind="livestream",
    )

    def listing(**params: Any) -> dict[str, Any]:
        page = client.get("/v1/public/events", params={"organisation_id": tenant.organisation_id, **params})
        assert page.status_code == 200, page.text
        result: dict[str, Any] = page.json()
        return result

    # Pages of two, in start order, every event once.
    seen, cursor = [], None
    while True:
        page = listing(limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [e["event_id"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    series_ids = [e["event_id"] for e in series["events"]]
    assert seen == [series_ids[0], online["event_id"], *series_ids[1:]]
    assert "organiser_email" not in listing()["events"][0]
    assert [e["event_id"] for e in listing(online="true")["events"]] == [online["event_id"]]
    assert [e["event_id"] for e in listing(kind="meet-up", **{"from": "2027-03-29T00:00:00Z"})["events"]] == series_ids[
        2:
    ]
    assert len(listing(hashtag="#digitalcoffee")["events"]) == 4
    assert len(listing(near_lat=52.45, near_lon=-1.93, within_km=20)["events"]) == 4  # Birmingham to Dudley
    assert listing(near_lat=51.5, near_lon=-0.12, within_km=20)["events"] == []  # London
    bad = client.get("/v1/public/events", params={"cursor": "nonsense"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.cursor"

    feed = Calendar.from_ical(client.get(f"/v1/organisations/{tenant.organisation_id}/calendar.ics").content)
    starts = sorted(e.decoded("dtstart") for e in feed.walk("VEVENT"))
    assert len(starts) == 5 and str(starts[-1].tzinfo) == "Europe/London"
    assert starts[-1].astimezone(UTC) == datetime(2027, 4, 6, 17, tzinfo=UTC)


def test_bookings_from_signups_give_counts_and_a_personal_calendar(
    stack: Stack, tenant: Tenant, client: httpx.Client, kafka_server: KafkaServer
) -> None:
    auth = bearer(tenant.organiser_key)
    event = _create(
        client,
        tenant,
        starts_at="2027-09-09T18:30:00",
        ends_at="2027-09-09T20:00:00",
        time_zone="America/New_York",
        title="Book launch",
    )
    email = f"reader-{uuid.uuid4().hex[:6]}@example.org"
    booking = BookingConfirmedV1(
        federation_id=tenant.federation_id,
        organisation_id=tenant.organisation_id,
        booking_id=f"bkg-{uuid.uuid4().hex[:8]}",
        event_id=event["event_id"],
        name="A Reader",
        email=email,
        confirmed_at=datetime.now(UTC),
    )
    delivered = as_cloud_event(booking, source="/pitchin/signups")
    # Twice with the same id, as a redelivery: counted once.
    asyncio.run(send_cloud_events(kafka_server.bootstrap, BOOKINGS.name, [(event["event_id"], delivered)] * 2))
    counted = eventually(
        lambda: (
            (r := client.get(f"/v1/events/{event['event_id']}", headers=auth).json())["attendees"]["confirmed"] and r
        ),
        what="scheduling to learn the booking",
    )
    assert counted["attendees"] == {"confirmed": 1, "waitlisted": 0, "cancelled": 0}
    # The private feed is no longer handed out by email lookup (issue 17) ...
    assert client.get("/v1/people/calendar", params={"email": email}, headers=auth).status_code in (404, 405)
    # ... but to the person, through the signed link in their booking mail, forwarded by the web front.
    mine = f"/v1/bookings/{booking.booking_id}/calendar"
    web = bearer(stack.issue_key(tenant.federation_id, None, "web-front"))
    proof = {"X-Booking-Link": sign_booking_link(stack.donor_link_secret, booking.booking_id, time.time())}
    assert client.get(mine, headers=auth | proof).status_code == 403, "an organiser's key does not open it"
    assert client.get(mine, headers=web).status_code == 403, "nor the web's key without the person's link"
    forged = {"X-Booking-Link": sign_booking_link("another-secret-" * 3, booking.booking_id, time.time())}
    assert client.get(mine, headers=web | forged).status_code == 403
    link = client.get(mine, headers=web | proof)
    assert link.status_code == 200, link.text
    path = link.json()["feed_url"].split("://", 1)[1].split("/", 1)[1]
    feed = Calendar.from_ical(client.get(f"/{path}").content)
    [entry] = feed.walk("VEVENT")
    assert entry.decoded("dtstart") == datetime(2027, 9, 9, 18, 30, tzinfo=ZoneInfo("America/New_York"))
    assert client.get("/v1/feeds/not-a-token.ics").status_code == 404
    # Rotated by the person: the old feed is gone, the new one works; staff can end it too.
    rotated = client.post(f"{mine}/rotate", headers=web | proof)
    assert rotated.status_code == 200, rotated.text
    assert client.get(f"/{path}").status_code == 404
    new_path = rotated.json()["feed_url"].split("://", 1)[1].split("/", 1)[1]
    assert new_path != path and client.get(f"/{new_path}").status_code == 200
    staff = client.post("/v1/people/calendar/rotate", json={"email": email}, headers=bearer(tenant.staff_key))
    assert staff.status_code == 204, staff.text
    assert client.get(f"/{new_path}").status_code == 404
    assert client.post("/v1/people/calendar/rotate", json={"email": email}, headers=auth).status_code == 403


def test_malformed_requests_name_the_field(tenant: Tenant, client: httpx.Client) -> None:
    auth = bearer(tenant.organiser_key)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"time_zone": "Europe/Dudley"}, "time_zone"),
        ({"reminders": [{"before": "P100D"}]}, "reminders.0.before"),
        ({"capacity": 0}, "capacity"),
    ]
    for overrides, field in cases:
        answer = client.post("/v1/events", json=_body(**overrides), headers=auth)
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == field
    past = client.post(
        "/v1/events", json=_body(starts_at="2020-01-01T10:00:00", ends_at="2020-01-01T11:00:00"), headers=auth
    )
    assert past.status_code == 422 and past.json()["errors"][0]["field"] == "starts_at"
    bad_rule = client.post("/v1/series", json={"event": _body(), "rrule": "FREQ=SOMETIMES"}, headers=auth)
    assert bad_rule.status_code == 422 and bad_rule.json()["errors"][0]["field"] == "rrule"
    soon = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    assert (
        client.post(
            "/v1/events",
            json=_body(starts_at=soon.isoformat(), ends_at=(soon + timedelta(hours=1)).isoformat()),
            headers={},
        ).status_code
        == 401
    )
