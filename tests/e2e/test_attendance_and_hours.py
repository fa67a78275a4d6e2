"""After the event and the hours donors give (issue 22), end to end on real Kafka, PostgreSQL and SMTP.

Attendance: the organiser marks attended or no-show once the event has begun; a check-in at the
door already counts as attended; the people who came are thanked by email once, with a feedback
link that works on the web front; the organiser sees the turnout. Hours: the donor logs hours on
confirmed work with their own token; the organisation confirms or adjusts them; only confirmed
hours count on the donor's record and in the federation's totals.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from pitchin_core.links import read_booking_link
from pitchin_testing.kafka import KafkaServer
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.conftest import Tenant, new_tenant
from tests.e2e.helpers import bearer, create_event, eventually, read_topic, wait_until_signups_knows
from tests.e2e.test_matching import (
    _at,
    _event,
    _made_event,
    _matches_for,
    _need_opened,
    _publish,
    _sign_up,
    _wait_offers,
)
from tests.e2e.test_notifications_kit import configure

pytestmark = pytest.mark.e2e

THANKS = "Thank you for coming to"
FEEDBACK_LINK = re.compile(r"(https?://[^\s]+/bookings/([A-Za-z0-9._~-]+)/feedback)")


def _text(mail: EmailMessage) -> str:
    text: str = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return text


def _thanked(mailbox: SmtpSink, email: str) -> list[EmailMessage]:
    return [m for m in mailbox.messages if m["To"] == email and THANKS in str(m["Subject"])]


def _thanks_to(email: str) -> Callable[[EmailMessage], bool]:
    return lambda m: m["To"] == email and THANKS in str(m["Subject"])


def _booking_facts(kafka: KafkaServer, event_id: str, kinds: tuple[str, ...], count: int) -> list[dict[str, Any]]:
    def keep(record: dict[str, Any]) -> bool:
        return record["key"] == event_id.encode() and record.get("type", "").removeprefix("org.pitchin.") in kinds

    return asyncio.run(read_topic(kafka.bootstrap, "pitchin.bookings.v1", keep, count, within=60))


def _csrf(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_attended_and_no_show_with_check_in_counting_thanks_by_mail_feedback_and_turnout(
    stack: Stack, kafka_server: KafkaServer, mailbox: SmtpSink
) -> None:
    # The web front's federation, so the thank-you's feedback link opens on its pages.
    tenant = new_tenant(stack.web_federation_id, stack.issue_key)
    # The thank-you is a normal-priority mail: without this, quiet hours hold it until morning.
    configure(stack, tenant, quiet_hours="")
    signups = stack["signups"].url
    organiser = bearer(tenant.organiser_key)
    event = create_event(stack, tenant.organiser_key, starts_in=timedelta(seconds=12), capacity=5).json()
    event_id = event["event_id"]
    starts_at = datetime.fromisoformat(event["starts_at"])
    wait_until_signups_knows(stack, tenant.organiser_key, event_id)
    people = {name: f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.org" for name in ("Ana", "Ben", "Cy", "Dee")}
    booked: dict[str, str] = {}
    for name, email in people.items():
        answer = httpx.post(
            f"{signups}/v1/events/{event_id}/bookings", json={"name": name, "email": email}, headers=organiser
        )
        assert answer.status_code == 201 and answer.json()["confirmed_at"], answer.text
        booked[name] = answer.json()["booking_id"]

    def mark(name: str, outcome: str, key: dict[str, str] = organiser) -> httpx.Response:
        return httpx.post(f"{signups}/v1/bookings/{booked[name]}/attendance", json={"outcome": outcome}, headers=key)

    # Ana checks in at the door: that counts as attended, without any mark.
    assert httpx.post(f"{signups}/v1/bookings/{booked['Ana']}/check-in", headers=organiser).status_code == 200
    early = mark("Ben", "attended")
    assert early.status_code == 409 and "begun" in early.json()["detail"], early.text
    eventually(lambda: datetime.now(UTC) > starts_at, timeout=30, what="the event to begin")

    # Bad input names the field; another federation or member organisation sees no such booking.
    for body in ({"outcome": "maybe"}, {"outcome": "unmarked"}, {}):
        refused = httpx.post(f"{signups}/v1/bookings/{booked['Ben']}/attendance", json=body, headers=organiser)
        assert refused.status_code == 422 and "outcome" in refused.text, refused.text
    stranger = bearer(stack.issue_key(f"fed-{uuid.uuid4().hex[:6]}", None, "federation-staff"))
    neighbour = bearer(stack.issue_key(tenant.federation_id, f"org-{uuid.uuid4().hex[:6]}", "organiser"))
    for key in (stranger, neighbour):
        assert mark("Ben", "attended", key).status_code == 404
        assert httpx.get(f"{signups}/v1/events/{event_id}/turnout", headers=key).status_code == 404

    assert mark("Ben", "attended").json() == {
        "booking_id": booked["Ben"],
        "event_id": event_id,
        "outcome": "attended",
        "changed": True,
    }
    assert mark("Ben", "attended").json()["changed"] is False, "saying it again changes nothing"
    assert mark("Cy", "no_show").status_code == 200

    turnout = httpx.get(f"{signups}/v1/events/{event_id}/turnout", headers=organiser).json()
    assert {k: turnout[k] for k in ("confirmed", "attended", "no_show", "unmarked")} == {
        "confirmed": 4,
        "attended": 2,
        "no_show": 1,
        "unmarked": 1,
    }
    assert turnout["places"] == {
        booked["Ana"]: "attended",
        booked["Ben"]: "attended",
        booked["Cy"]: "no_show",
        booked["Dee"]: "unmarked",
    }
    staff = httpx.get(f"{signups}/v1/events/{event_id}/turnout", headers=bearer(tenant.staff_key))
    assert staff.status_code == 200 and staff.json()["attended"] == 2

    # The people who came are thanked, with a feedback link signed for their own booking.
    secret = stack.donor_link_secret
    for name in ("Ana", "Ben"):
        mail = mailbox.wait_for(_thanks_to(people[name]), timeout=60)
        assert mail["Subject"] == "Thank you for coming to Informal meet-up"
        found = FEEDBACK_LINK.search(_text(mail))
        assert found, _text(mail)
        assert read_booking_link(secret, found.group(2), time.time()) == booked[name]
    ana_link = FEEDBACK_LINK.search(_text(_thanked(mailbox, people["Ana"])[0]))
    assert ana_link is not None

    # Ana is marked no-show by mistake, then put right: she was thanked already, not again.
    assert mark("Ana", "no_show").json()["changed"] is True
    assert mark("Ana", "attended").json()["changed"] is True
    assert mark("Dee", "attended").status_code == 200
    facts = _booking_facts(kafka_server, event_id, ("booking.attended.v1", "booking.no-show.v1"), 6)
    summary = [
        (f["type"].removeprefix("org.pitchin.booking."), f["data"]["booking_id"], f["data"].get("first_time"))
        for f in facts
    ]
    assert summary == [
        ("attended.v1", booked["Ana"], True),
        ("attended.v1", booked["Ben"], True),
        ("no-show.v1", booked["Cy"], None),
        ("no-show.v1", booked["Ana"], None),
        ("attended.v1", booked["Ana"], False),
        ("attended.v1", booked["Dee"], True),
    ]
    assert facts[0]["data"]["by_check_in"] is True and facts[1]["data"]["by_check_in"] is False
    # Facts of one event are keyed by it and read in order: once Dee's thanks is here, Ana's
    # correction was handled before it, so a second thank-you to Ana would be here too.
    mailbox.wait_for(_thanks_to(people["Dee"]), timeout=60)
    assert len(_thanked(mailbox, people["Ana"])) == 1
    assert _thanked(mailbox, people["Cy"]) == [], "no thanks for a no-show"

    # Feedback from the mail's link, on the web front: a rating and a comment.
    feedback_path = urlsplit(ana_link.group(1)).path
    with httpx.Client(base_url=stack["web"].url, timeout=15) as web:
        csrf = _csrf(web, feedback_path)
        bad = web.post(feedback_path, data={"csrf": csrf, "rating": "9", "comment": ""})
        assert bad.status_code == 422 and "rating" in bad.text.lower(), bad.text
        given = web.post(feedback_path, data={"csrf": csrf, "rating": "5", "comment": "Friendly and useful"})
        assert given.status_code in (200, 303), given.text
        forged = web.get(feedback_path.replace(ana_link.group(2), ana_link.group(2)[:-3] + "AAA"))
        assert forged.status_code in (403, 404)
    # Someone who did not come cannot give feedback, even with their own link.
    web_key = bearer(stack.issue_key(tenant.federation_id, None, "web-front"))
    cy = httpx.post(f"{signups}/v1/bookings/{booked['Cy']}/feedback", json={"rating": 1}, headers=web_key)
    assert cy.status_code == 403, "the web front acts for a person only with their link"
    shown = httpx.get(f"{signups}/v1/events/{event_id}/turnout", headers=organiser).json()["feedback"]
    assert shown["count"] == 1 and shown["average_rating"] == 5
    assert [c["comment"] for c in shown["comments"]] == ["Friendly and useful"]

    # Ana asks to be erased from her booking page: her comment is her own words and goes; her
    # rating stays in the count and the average (issue 19).
    booking_page = feedback_path.removesuffix("/feedback")
    with httpx.Client(base_url=stack["web"].url, timeout=15) as web:
        asked = web.post(f"{booking_page}/erase", data={"csrf": _csrf(web, booking_page)})
        assert asked.status_code == 303, asked.text

    def feedback_once_erased() -> dict[str, Any] | None:
        now = httpx.get(f"{signups}/v1/events/{event_id}/turnout", headers=organiser).json()["feedback"]
        return now if not now["comments"] else None

    after = eventually(feedback_once_erased, timeout=60, what="Ana's comment to be erased")
    assert after["count"] == 1 and after["average_rating"] == 5


def test_logged_hours_count_on_the_record_only_once_confirmed_or_adjusted(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer
) -> None:
    matching = stack["matching"].url
    organiser = bearer(tenant.organiser_key)
    [donor_id] = _sign_up(stack, tenant, 1)
    need_id = f"need-{uuid.uuid4().hex[:8]}"
    _publish(kafka_server, "pitchin.needs.v1", need_id, _event(_need_opened(tenant, need_id), tenant))
    offer = _wait_offers(stack, tenant, need_id, "the offer", lambda o: len(o) == 1)[0]
    made = _made_event(kafka_server, need_id, offer["offer_id"])
    assignment = offer["offer_id"]
    donor = {"token": urlsplit(made["offers_url"]).query.removeprefix("token=")}
    hours_url = f"{matching}/v1/donors/{donor_id}/assignments/{assignment}/hours"
    today = datetime.now(UTC).date()

    def log(body: dict[str, Any], params: dict[str, str] | None = donor, **headers: str) -> httpx.Response:
        return httpx.post(hours_url, json=body, params=params, headers=headers, timeout=10)

    def record() -> dict[str, Any]:
        answer = httpx.get(f"{matching}/v1/donors/{donor_id}/record", params=donor, timeout=10)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    assert httpx.post(_at(matching, made["accept_url"]), timeout=10).status_code == 200
    first = {"worked_on": today.isoformat(), "hours": 3, "note": "Drafted the week's posts"}
    unconfirmed = log(first)
    assert unconfirmed.status_code == 409 and "confirmed work" in unconfirmed.json()["detail"], unconfirmed.text
    assert httpx.post(f"{matching}/v1/assignments/{assignment}/confirm", headers=organiser, timeout=10).is_success

    # Only the donor logs their own hours; bad input names the field.
    assert log(first, None, Authorization=organiser["Authorization"]).status_code == 403
    assert log(first, None).status_code == 401
    offer_token = {"token": made["offer_token"]}
    assert log(first, offer_token).status_code == 404, "an offer's token is not the donor's"
    tomorrow_but_one = (today + timedelta(days=2)).isoformat()
    for body, field in (
        ({**first, "hours": -1}, "hours"),
        ({**first, "hours": 0}, "hours"),
        ({**first, "hours": 24.5}, "hours"),
        ({**first, "worked_on": tomorrow_but_one}, "worked_on"),
        ({**first, "worked_on": "yesterday"}, "worked_on"),
        ({**first, "note": "x" * 1001}, "note"),
    ):
        refused = log(body)
        assert refused.status_code == 422 and field in refused.text, (body, refused.text)

    logged = log(first)
    assert logged.status_code == 201, logged.text
    second = log({"worked_on": today.isoformat(), "hours": 2, "note": "Filmed the rally"})
    assert second.status_code == 201, second.text
    over = log({"worked_on": today.isoformat(), "hours": 19.1})
    assert over.status_code == 422 and "24 hours" in over.text, "no day holds more than 24 hours"

    # Logged is not counted: the record and the totals wait for the organisation.
    assert record()["hours_given"] == 0
    mine = httpx.get(f"{matching}/v1/donors/{donor_id}/hours", params=donor, timeout=10).json()
    [work] = mine["work"]
    assert (work["hours_counted"], work["hours_awaiting_confirmation"], work["may_log"]) == (0, 5, True)
    # Newest first, as the donor's page lists them.
    assert [entry["note"] for entry in work["logs"]] == ["Filmed the rally", "Drafted the week's posts"]
    listed = httpx.get(f"{matching}/v1/needs/{need_id}/hours", headers=organiser, timeout=10).json()["logs"]
    assert {entry["log_id"] for entry in listed} == {logged.json()["log_id"], second.json()["log_id"]}

    # The organisation confirms one as logged and adjusts the other; others cannot.
    confirm_first = f"{matching}/v1/hours/{logged.json()['log_id']}/confirm"
    confirm_second = f"{matching}/v1/hours/{second.json()['log_id']}/confirm"
    stranger = bearer(stack.issue_key(f"fed-{uuid.uuid4().hex[:6]}", None, "federation-staff"))
    neighbour = bearer(stack.issue_key(tenant.federation_id, f"org-{uuid.uuid4().hex[:6]}", "organiser"))
    for key in (stranger, neighbour):
        assert httpx.post(confirm_first, headers=key, timeout=10).status_code == 404
    assert httpx.post(confirm_first, params=donor, timeout=10).status_code == 401, "a donor does not confirm"
    bad = httpx.post(confirm_second, json={"hours": -2}, headers=organiser, timeout=10)
    assert bad.status_code == 422 and "hours" in bad.text

    as_logged = httpx.post(confirm_first, headers=organiser, timeout=10)
    assert as_logged.status_code == 200 and as_logged.json()["hours_confirmed"] == 3, as_logged.text
    assert record()["hours_given"] == 3
    adjusted = httpx.post(
        confirm_second, json={"hours": 1.5, "reason": "The rally was cut short"}, headers=organiser, timeout=10
    )
    assert adjusted.status_code == 200 and adjusted.json()["hours_confirmed"] == 1.5, adjusted.text
    assert httpx.post(confirm_second, json={"hours": 1.5}, headers=organiser, timeout=10).status_code == 200
    again = httpx.post(confirm_second, json={"hours": 2}, headers=organiser, timeout=10)
    assert again.status_code == 409, "confirmed hours are final, not rewritten"

    shown = record()
    assert shown["hours_given"] == 4.5 and shown["completed"] == 0
    assert [(p["need_id"], p["hours_confirmed"]) for p in shown["in_progress"]] == [(need_id, 4.5)]
    totals = httpx.get(f"{matching}/v1/totals", headers=bearer(tenant.staff_key), timeout=10).json()
    [ours] = [o for o in totals["organisations"] if o["organisation_id"] == tenant.organisation_id]
    assert (ours["hours_given"], ours["completed"]) == (4.5, 0)

    # Marked done, the organisation's final figure for the work stands instead of its logs.
    done = httpx.post(
        f"{matching}/v1/assignments/{assignment}/complete", json={"hours_given": 5}, headers=organiser, timeout=10
    )
    assert done.status_code == 200, done.text
    final = record()
    assert (final["hours_given"], final["completed"], final["in_progress"]) == (5, 1, [])
    late = log({"worked_on": today.isoformat(), "hours": 1})
    assert late.status_code == 409, "no hours are logged on work marked done"

    # Every step is a fact on the need's key of pitchin.matches.v1.
    def facts() -> list[dict[str, Any]] | None:
        found = [e for e in _matches_for(kafka_server, need_id) if e["type"].startswith("org.pitchin.hours.")]
        return found if len(found) >= 4 else None

    steps = eventually(facts, timeout=60, what="the hours facts on Kafka")
    assert [(e["type"], e.get("adjusted")) for e in steps] == [
        ("org.pitchin.hours.logged.v1", None),
        ("org.pitchin.hours.logged.v1", None),
        ("org.pitchin.hours.confirmed.v1", False),
        ("org.pitchin.hours.confirmed.v1", True),
    ]
    assert steps[3]["hours_logged"] == 2 and steps[3]["hours"] == 1.5 and steps[3]["donor_id"] == donor_id
