"""Signups end to end: fights and needs, bookings under a rush, idempotency, import, erasure, tenancy."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pitchin_core.contracts.matching import AssignmentConfirmedV1
from pitchin_testing.kafka import KafkaServer
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import bearer, create_event, eventually, publish_events, read_topic, wait_until_signups_knows
from tests.unit.factories import donor_signup

pytestmark = pytest.mark.e2e


def _post(stack: Stack, path: str, key: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(f"{stack['signups'].url}{path}", json=body, headers={**bearer(key), **headers}, timeout=15)


def _get(stack: Stack, path: str, key: str) -> httpx.Response:
    return httpx.get(f"{stack['signups'].url}{path}", headers=bearer(key), timeout=15)


def _strike(deadline_days: int = 6) -> dict[str, Any]:
    deadline = (datetime.now(UTC) + timedelta(days=deadline_days)).isoformat()
    return {
        "kind": "strike",
        "title": "Retail Local 99 strike",
        "causes": ["labour"],
        "needs": [
            {
                "title": "Social media plan",
                "required_skills": [{"skill": "social-media", "min_level": "advanced"}],
                "estimated_hours": 12,
                "deadline": deadline,
                "urgency": "critical",
            },
            {
                "title": "Placard graphics",
                "required_skills": [{"skill": "graphic-design"}],
                "estimated_hours": 8,
                "deadline": deadline,
                "donors_wanted": 1,
            },
        ],
    }


def test_a_fight_with_needs_is_published_and_assignments_fill_a_need(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer
) -> None:
    answer = _post(stack, "/v1/fights", tenant.organiser_key, _strike())
    assert answer.status_code == 201, answer.text
    fight = answer.json()["fight"]
    needs = answer.json()["needs"]
    assert len(needs) == 2 and all(n["fight_id"] == fight["fight_id"] for n in needs)

    records = asyncio.run(
        read_topic(
            kafka_server.bootstrap,
            "pitchin.needs.v1",
            lambda r: (r.get("data") or {}).get("fight_id") == fight["fight_id"],
            3,
        )
    )
    assert Counter(r["type"] for r in records) == {"org.pitchin.fight.opened.v1": 1, "org.pitchin.need.opened.v1": 2}
    for record in records:
        assert record["headers"]["ce_tenant"] == f"{tenant.federation_id}/{tenant.organisation_id}".encode()
        assert record["headers"]["ce_source"] == b"/pitchin/signups"

    graphics = next(n for n in needs if n["title"] == "Placard graphics")
    confirmed = AssignmentConfirmedV1(
        federation_id=tenant.federation_id,
        organisation_id=tenant.organisation_id,
        offer_id="off_1",
        need_id=graphics["need_id"],
        fight_id=fight["fight_id"],
        donor_id="don_x",
        confirmed_at=datetime.now(UTC),
    )
    # Twice: a redelivered assignment must not count twice.
    asyncio.run(
        publish_events(
            kafka_server.bootstrap,
            "pitchin.matches.v1",
            [(graphics["need_id"], confirmed), (graphics["need_id"], confirmed)],
        )
    )
    need = eventually(
        lambda: (
            (n := _get(stack, f"/v1/needs/{graphics['need_id']}", tenant.organiser_key).json())["status"] == "filled"
            and n
        ),
        what="the need to be filled",
    )
    assert need["assigned_donors"] == ["don_x"] and need["version"] == 2
    filled = asyncio.run(
        read_topic(
            kafka_server.bootstrap,
            "pitchin.needs.v1",
            lambda r: r.get("type") == "org.pitchin.need.filled.v1" and r["data"]["need_id"] == graphics["need_id"],
            1,
        )
    )
    assert filled[0]["data"]["donor_ids"] == ["don_x"]

    closed = _post(stack, f"/v1/fights/{fight['fight_id']}/close", tenant.organiser_key, {"outcome": "won"})
    assert closed.status_code == 200, closed.text
    statuses = {
        n["need_id"]: _get(stack, f"/v1/needs/{n['need_id']}", tenant.organiser_key).json()["status"] for n in needs
    }
    assert set(statuses.values()) == {"cancelled"}


def test_other_organisations_and_federations_see_nothing(stack: Stack, tenant: Tenant) -> None:
    fight = _post(stack, "/v1/fights", tenant.organiser_key, _strike()).json()
    need_id = fight["needs"][0]["need_id"]
    neighbour = stack.issue_key(tenant.federation_id, f"org-{uuid.uuid4().hex[:6]}", "organiser")
    stranger = stack.issue_key(f"fed-{uuid.uuid4().hex[:6]}", None, "federation-staff")
    for key in (neighbour, stranger):
        assert _get(stack, f"/v1/needs/{need_id}", key).status_code == 404
        assert _get(stack, "/v1/needs", key).json()["items"] == []
        assert _post(stack, f"/v1/needs/{need_id}/close", key, None).status_code == 404
    assert _get(stack, f"/v1/needs/{need_id}", tenant.staff_key).status_code == 200


def test_idempotency_key_replays_the_first_answer(stack: Stack, tenant: Tenant) -> None:
    body = donor_signup(email=f"idem-{uuid.uuid4().hex[:6]}@example.org")
    first = _post(stack, "/v1/donors", tenant.organiser_key, body, **{"Idempotency-Key": "k-1"})
    again = _post(stack, "/v1/donors", tenant.organiser_key, body, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    other = _post(
        stack, "/v1/donors", tenant.organiser_key, {**body, "name": "Someone Else"}, **{"Idempotency-Key": "k-1"}
    )
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "Idempotency-Key"


def test_unknown_skills_are_refused_and_the_taxonomy_belongs_to_staff(stack: Stack, tenant: Tenant) -> None:
    answer = _post(
        stack,
        "/v1/donors",
        tenant.organiser_key,
        donor_signup(skills=[{"skill": "underwater-basket-weaving", "level": "expert"}]),
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "skills.0.skill"
    assert "social-media" in _get(stack, "/v1/skills", tenant.organiser_key).json()
    put = httpx.put(
        f"{stack['signups'].url}/v1/skills",
        json={"social-media": "Social media"},
        headers=bearer(tenant.organiser_key),
        timeout=10,
    )
    assert put.status_code == 403


def test_csv_import_keeps_good_rows_reports_bad_ones_and_is_idempotent(stack: Stack, tenant: Tenant) -> None:
    tag = uuid.uuid4().hex[:6]
    text = (
        "name,email,skills,hours_per_week,time_zone,consent_wording_version,consent_agreed_at\n"
        f"Ann,ann-{tag}@example.org,social-media:expert,3,Europe/London,2026-01,2026-11-01T09:00:00Z\n"
        f"Bob,bob-{tag}@example.org,knitting:expert,3,Europe/London,2026-01,2026-11-01T09:00:00Z\n"
        "Cy,not-an-email,photography,3,Europe/London,2026-01,2026-11-01T09:00:00Z\n"
        f"Di,di-{tag}@example.org,photography:advanced,2,America/New_York,2026-01,2026-11-01T09:00:00Z\n"
    )

    def upload() -> dict[str, Any]:
        answer = httpx.post(
            f"{stack['signups'].url}/v1/donors/import",
            content=text.encode(),
            headers={**bearer(tenant.staff_key), "content-type": "text/csv"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    first = upload()
    assert first["imported"] == 2
    assert {(e["row"], e["field"]) for e in first["errors"]} == {(3, "skills.0.skill"), (4, "email")}
    second = upload()
    assert second["imported"] == 0 and second["already_registered_rows"] == [2, 5]


def test_withdrawing_with_erasure_removes_the_person_and_tells_the_others(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer
) -> None:
    donor = _post(
        stack, "/v1/donors", tenant.organiser_key, donor_signup(email=f"leaving-{uuid.uuid4().hex[:6]}@example.org")
    ).json()
    answer = _post(stack, f"/v1/donors/{donor['donor_id']}/withdraw", tenant.organiser_key, {"erase": True})
    assert answer.status_code == 200, answer.text
    stored = _get(stack, f"/v1/donors/{donor['donor_id']}", tenant.organiser_key).json()
    assert stored["status"] == "withdrawn" and stored["name"] == "erased" and donor["email"] not in str(stored)
    [event] = asyncio.run(
        read_topic(
            kafka_server.bootstrap,
            "pitchin.donors.v1",
            lambda r: r.get("type") == "org.pitchin.donor.withdrawn.v1" and r["data"]["donor_id"] == donor["donor_id"],
            1,
        )
    )
    assert event["data"]["erase"] is True
    again = _post(stack, f"/v1/donors/{donor['donor_id']}/withdraw", tenant.organiser_key, {"erase": True})
    assert again.status_code == 409


def _known_event(stack: Stack, tenant: Tenant, capacity: int) -> str:
    answer = create_event(
        stack, tenant.organiser_key, starts_in=timedelta(days=20), kind="book-launch", capacity=capacity
    )
    event_id: str = answer.json()["event_id"]
    wait_until_signups_knows(stack, tenant.organiser_key, event_id)
    return event_id


def test_a_booking_rush_confirms_exactly_capacity_and_waitlists_the_rest_in_order(stack: Stack, tenant: Tenant) -> None:
    event_id = _known_event(stack, tenant, capacity=60)
    attempts = 300

    async def rush() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{stack['signups'].url}/v1/events/{event_id}/bookings",
                        headers=bearer(tenant.staff_key),
                        json={"name": f"Person {i}", "email": f"p{i}@rush.example"},
                    )
                    for i in range(attempts)
                )
            )

    answers = asyncio.run(rush())
    assert Counter(a.status_code for a in answers) == {201: attempts}
    confirmed = [a.json() for a in answers if "confirmed_at" in a.json()]
    waitlisted = [a.json() for a in answers if "position" in a.json()]
    assert len(confirmed) == 60 and len(waitlisted) == attempts - 60
    assert sorted(w["position"] for w in waitlisted) == list(range(1, attempts - 60 + 1))

    listing = _get(stack, f"/v1/events/{event_id}/bookings", tenant.organiser_key).json()
    assert listing["confirmed"] == 60
    assert Counter(b["status"] for b in listing["items"]) == {"confirmed": 60, "waitlisted": attempts - 60}

    # A cancelled place is offered to the first in line, in order, and held for them.
    by_position = sorted(waitlisted, key=lambda w: w["position"])
    for booking in confirmed[:3]:
        result = _post(stack, f"/v1/bookings/{booking['booking_id']}/cancel", tenant.staff_key, None)
        assert result.status_code == 200, result.text
    promoted = [_get(stack, f"/v1/bookings/{w['booking_id']}", tenant.staff_key).json() for w in by_position[:4]]
    assert [p["status"] for p in promoted] == ["offered", "offered", "offered", "waitlisted"]
    assert promoted[3]["position"] == 1
    held = _get(stack, f"/v1/events/{event_id}/bookings", tenant.organiser_key).json()
    assert (held["confirmed"], held["offered"]) == (57, 3)
    taken = _post(stack, f"/v1/bookings/{promoted[0]['booking_id']}/offer/accept", tenant.staff_key, None)
    assert taken.status_code == 200, taken.text
    assert _get(stack, f"/v1/bookings/{promoted[0]['booking_id']}", tenant.staff_key).json()["status"] == "confirmed"
    assert _get(stack, f"/v1/events/{event_id}/bookings", tenant.organiser_key).json()["confirmed"] == 58

    # Booking again with a place still held (any case of the address) is refused; the first
    # three confirmed cancelled above, so one after them still holds a place.
    holder = confirmed[3]["email"]
    again = _post(
        stack, f"/v1/events/{event_id}/bookings", tenant.staff_key, {"name": "Again", "email": holder.upper()}
    )
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "email"
    checked = _post(stack, f"/v1/bookings/{promoted[0]['booking_id']}/check-in", tenant.organiser_key, None)
    assert checked.status_code == 200 and checked.json()["checked_in_at"]
