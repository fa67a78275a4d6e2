"""The ask budget and reclaiming a donor end to end: signups, matching and notifications as processes
on real Kafka and PostgreSQL, the federation's policy set over matching's HTTP API.

- At most one pending offer per donor: a donor who is the only fit for three needs is asked
  for one; the others wait until they answer it, then follow.
- A weekly cap: a donor asked as often as the federation allows this week is not asked again,
  and the organiser's candidate list says why.
- Reclaiming: a critical need that finds nobody free takes a donor from a normal need's pending
  offer (the donor is told by mail), and the normal need is offered to someone else at once;
  but not a donor whose weekly asks are spent.

Every donor and need belongs to the tenant's one organisation, so lending between organisations
plays no part. Learning a need, answering an offer and the rematch command each run the
federation's matching pass in their own transaction: once they have answered, what the pass
decided is in the tables, so "nobody else was asked" is read at that moment, not waited for.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pitchin_testing.kafka import KafkaServer
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import bearer, eventually, sign_up
from tests.e2e.test_matching import (
    _at,
    _event,
    _known_to_matching,
    _made_event,
    _matches_for,
    _need_opened,
    _offers,
    _publish,
    _set_policy,
    _types,
    _wait_offers,
)
from tests.e2e.test_notifications_kit import configure

pytestmark = pytest.mark.e2e

NEEDS = "pitchin.needs.v1"
EXPERT = [{"skill": "social-media", "min_level": "expert"}]
ADVANCED = [{"skill": "social-media", "min_level": "advanced"}]
RECLAIMED = "a more urgent need asked for you; thank you, we will ask someone else for this one"
# A need that found nobody rests for matching's retry (60 s) and is picked up by its sweep
# (every 30 s); an accept, unlike a decline, does not re-match the federation's needs itself.
AFTER_RETRY_AND_SWEEP = 120.0


# --- helpers -----------------------------------------------------------------------------


def _donor(stack: Stack, tenant: Tenant, level: str = "expert") -> tuple[str, str]:
    """A donor of the tenant's organisation with social media at `level`, known to matching: id and email."""
    email = f"budget-{uuid.uuid4().hex[:10]}@example.org"
    donor_id: str = sign_up(
        stack,
        tenant.organiser_key,
        name=f"Donor {level}",
        email=email,
        skills=[{"skill": "social-media", "level": level}],
    ).json()["donor_id"]
    eventually(_known_to_matching(stack, tenant, donor_id), timeout=60, what=f"matching to learn {donor_id}")
    return donor_id, email


def _open_need(stack: Stack, tenant: Tenant, kafka: KafkaServer, **overrides: Any) -> str:
    """Open a need of the tenant's organisation on the needs topic and wait until matching has learnt it
    (its matching pass ran in the same transaction)."""
    need_id = f"need-{uuid.uuid4().hex[:8]}"
    _publish(kafka, NEEDS, need_id, _event(_need_opened(tenant, need_id, **overrides), tenant))
    eventually(lambda: _candidates(stack, tenant, need_id) is not None, timeout=60, what=f"matching to learn {need_id}")
    return need_id


def _candidates(stack: Stack, tenant: Tenant, need_id: str) -> dict[str, Any] | None:
    """The organiser's ranked candidates of a need (those past their budget too); None while matching
    does not know the need."""
    answer = httpx.get(
        f"{stack['matching'].url}/v1/needs/{need_id}/candidates", headers=bearer(tenant.organiser_key), timeout=10
    )
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _rematch(stack: Stack, tenant: Tenant) -> int:
    """Federation staff re-match every waiting need now, postponed or not: the offers it made."""
    answer = httpx.post(f"{stack['matching'].url}/v1/rematch", headers=bearer(tenant.staff_key), timeout=30)
    assert answer.status_code == 200, answer.text
    made: int = answer.json()["offers_made"]
    return made


def _offers_of_donor(stack: Stack, tenant: Tenant, donor_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{stack['matching'].url}/v1/donors/{donor_id}/offers", headers=bearer(tenant.staff_key), timeout=10
    )
    assert answer.status_code == 200, answer.text
    offers: list[dict[str, Any]] = answer.json()["offers"]
    return offers


def _answer(stack: Stack, kafka: KafkaServer, offer: dict[str, Any], answer: str) -> None:
    """Accept or decline an offer from the links of its offer.made event, as the donor would."""
    made = _made_event(kafka, offer["need_id"], offer["offer_id"])
    link = _at(stack["matching"].url, made[f"{answer}_url"])
    body = {"reason": "on shift"} if answer == "decline" else None
    done = httpx.post(link, json=body, timeout=10)
    assert done.status_code == 200, done.text


def _asked(kafka: KafkaServer, need_id: str) -> list[str]:
    """The donors a need's offer.made events on Kafka went to, in order."""
    return [e["donor_id"] for e in _matches_for(kafka, need_id) if e["type"] == "org.pitchin.offer.made.v1"]


def _asked_on_kafka(kafka: KafkaServer, need_id: str) -> list[str]:
    """`_asked`, once the relay has published the need's first offer."""
    return eventually(lambda: _asked(kafka, need_id), timeout=60, what=f"{need_id}'s offers on Kafka")


def _critical(minutes: int = 60) -> dict[str, Any]:
    """A critical need only an expert fits, due in `minutes`."""
    deadline = datetime.now(UTC) + timedelta(minutes=minutes)
    return {"urgency": "critical", "deadline": deadline.isoformat(), "required_skills": EXPERT, "estimated_hours": 1}


# --- at most one pending offer -------------------------------------------------------------


def test_a_donor_holds_one_pending_offer_at_a_time_and_the_next_ask_follows_each_answer(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer
) -> None:
    # The load cap of 2 would let a second offer through: only the budget's one pending offer holds it.
    _set_policy(stack, tenant, max_open_per_donor=2, max_pending_per_donor=1, weekly_asks=3)
    donor, _ = _donor(stack, tenant)
    first = _open_need(stack, tenant, kafka_server)
    [offer] = _wait_offers(stack, tenant, first, "the first ask", lambda o: len(o) == 1)
    assert (offer["donor_id"], offer["status"]) == (donor, "pending")

    # Two more needs the donor alone fits: learnt, matched, and nobody asked.
    waiting = [_open_need(stack, tenant, kafka_server) for _ in range(2)]
    assert [_offers(stack, tenant, n) for n in waiting] == [[], []], "one pending offer: the other needs wait"
    listed = [c for n in waiting for c in (_candidates(stack, tenant, n) or {})["candidates"]]
    assert [(c["donor_id"], c["offer_status"]) for c in listed] == [(donor, None)] * 2, "they do fit"
    assert _rematch(stack, tenant) == 0, "asked again, the budget still holds"
    assert [(o["need_id"], o["status"]) for o in _offers_of_donor(stack, tenant, donor)] == [(first, "pending")]

    # The donor declines: the decline's own transaction asks them for one (only one) of the others.
    _answer(stack, kafka_server, offer, "decline")
    asked = [n for n in waiting if _offers(stack, tenant, n)]
    assert len(asked) == 1, f"one of the waiting needs is offered at once, not both: {asked}"
    [second] = asked
    [last] = [n for n in waiting if n != second]
    [offer] = _offers(stack, tenant, second)
    assert (offer["donor_id"], offer["status"]) == (donor, "pending")
    assert _offers(stack, tenant, last) == [] and _rematch(stack, tenant) == 0

    # The donor accepts: nothing is waiting for their answer, so the last need asks them too.
    _answer(stack, kafka_server, offer, "accept")
    [offer] = _wait_offers(
        stack, tenant, last, "the last need's ask after the accept", lambda o: len(o) == 1, AFTER_RETRY_AND_SWEEP
    )
    assert (offer["donor_id"], offer["status"]) == (donor, "pending")
    mine = sorted((o["need_id"], o["status"]) for o in _offers_of_donor(stack, tenant, donor))
    assert mine == sorted([(first, "declined"), (second, "accepted"), (last, "pending")])
    # On Kafka: each need asked the donor once, and nobody else.
    for need_id in (first, second, last):
        assert _asked_on_kafka(kafka_server, need_id) == [donor]


# --- the weekly cap ------------------------------------------------------------------------


def test_a_donor_asked_as_often_as_the_week_allows_is_not_asked_again_and_the_organiser_sees_why(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer
) -> None:
    _set_policy(stack, tenant, max_pending_per_donor=1, weekly_asks=2)
    expert, _ = _donor(stack, tenant, "expert")
    advanced, _ = _donor(stack, tenant, "advanced")

    # Two needs only the expert fits: asked for each, declined each; their week's two asks are spent.
    for n in range(2):
        need_id = _open_need(stack, tenant, kafka_server, required_skills=EXPERT)
        [offer] = _wait_offers(stack, tenant, need_id, f"ask {n + 1} of the week", lambda o: len(o) == 1)
        assert offer["donor_id"] == expert
        _answer(stack, kafka_server, offer, "decline")
    assert [o["status"] for o in _offers_of_donor(stack, tenant, expert)] == ["declined", "declined"]

    # A third need both fit: the expert has nothing pending and ranks on skills, but is not asked.
    third = _open_need(stack, tenant, kafka_server, required_skills=ADVANCED)
    [offer] = _wait_offers(stack, tenant, third, "the third need's ask", lambda o: len(o) == 1)
    assert offer["donor_id"] == advanced, "the expert's week is spent"
    ranked = _candidates(stack, tenant, third)
    assert ranked is not None
    by_donor = {c["donor_id"]: c for c in ranked["candidates"]}
    assert set(by_donor) == {expert, advanced}, "the organiser still sees the expert fits"
    assert (by_donor[expert]["offer_status"], by_donor[advanced]["offer_status"]) == (None, "pending")
    spread = {c["name"]: c["why"] for c in by_donor[expert]["components"]}["spread"]
    assert spread == "asked 2 time(s) in the last 7 days of at most 2", spread

    # The advanced donor declines too: nobody else is left, and still the expert is not asked.
    _answer(stack, kafka_server, offer, "decline")
    assert _rematch(stack, tenant) == 0
    assert [(o["donor_id"], o["status"]) for o in _offers(stack, tenant, third)] == [(advanced, "declined")]
    assert len(_offers_of_donor(stack, tenant, expert)) == 2, "no third ask this week"
    assert _asked_on_kafka(kafka_server, third) == [advanced]


# --- reclaiming a donor --------------------------------------------------------------------


def test_a_critical_need_reclaims_a_donor_from_a_normal_need_which_is_offered_to_someone_else(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer, mailbox: SmtpSink
) -> None:
    configure(stack, tenant, quiet_hours="")  # the withdrawal's mail must not wait for the morning
    # One escalation step half-way to the deadline: none is taken while the test runs.
    _set_policy(stack, tenant, max_pending_per_donor=1, weekly_asks=3, escalation={"at": [0.5]})
    expert, expert_email = _donor(stack, tenant, "expert")
    normal = _open_need(stack, tenant, kafka_server, required_skills=ADVANCED)
    [held] = _wait_offers(stack, tenant, normal, "the normal need's ask", lambda o: len(o) == 1)
    assert (held["donor_id"], held["status"]) == (expert, "pending")
    # Joined after the normal need was asked for: fits it, not the critical need.
    advanced, advanced_email = _donor(stack, tenant, "advanced")
    assert len(_offers(stack, tenant, normal)) == 1, "the normal need has what it wants"

    # The critical need finds nobody free: it takes the expert, in the pass that learnt it.
    critical = _open_need(stack, tenant, kafka_server, **_critical())
    [ask] = _offers(stack, tenant, critical)
    assert (ask["donor_id"], ask["status"]) == (expert, "pending")
    by_donor = {o["donor_id"]: o for o in _offers(stack, tenant, normal)}
    assert set(by_donor) == {expert, advanced}, "the normal need is offered again, to someone else"
    assert by_donor[expert]["offer_id"] == held["offer_id"] and by_donor[expert]["status"] == "cancelled"
    assert by_donor[expert]["reason"] == RECLAIMED
    assert by_donor[advanced]["status"] == "pending"
    ranked = _candidates(stack, tenant, critical)
    assert ranked is not None and [c["donor_id"] for c in ranked["candidates"]] == [expert], "only the expert fits"
    pending = [o["need_id"] for o in _offers_of_donor(stack, tenant, expert) if o["status"] == "pending"]
    assert pending == [critical], "still one pending offer: the reclaimed one is withdrawn"
    assert _rematch(stack, tenant) == 0, "nothing more to reclaim or offer"

    # The organiser sees the step; everyone learns it on Kafka.
    answer = httpx.get(
        f"{stack['matching'].url}/v1/needs/{critical}/escalation", headers=bearer(tenant.organiser_key), timeout=10
    )
    assert answer.status_code == 200, answer.text
    steps = answer.json()["steps"]
    assert [s["kind"] for s in steps] == ["first-wave", "reclaimed"]
    assert normal in steps[1]["detail"]
    events = eventually(
        lambda: (lambda e: e if len(e) >= 3 else None)(_matches_for(kafka_server, critical)),
        timeout=60,
        what="the critical need's events on Kafka",
    )
    assert _types(events) == ["need.escalated", "offer.made", "need.escalated"]
    assert [(e["step"], e["kind"]) for e in events if e["type"] == "org.pitchin.need.escalated.v1"] == [
        (0, "first-wave"),
        (1, "reclaimed"),
    ]
    assert events[1]["donor_id"] == expert
    events = eventually(
        lambda: (lambda e: e if len(e) >= 3 else None)(_matches_for(kafka_server, normal)),
        timeout=60,
        what="the normal need's events on Kafka",
    )
    assert _types(events) == ["offer.made", "offer.cancelled", "offer.made"]
    assert (events[1]["offer_id"], events[1]["reason"]) == (held["offer_id"], RECLAIMED)
    assert [e["donor_id"] for e in events if e["type"] == "org.pitchin.offer.made.v1"] == [expert, advanced]

    # The expert is told by mail; the advanced donor is asked by mail and told nothing was withdrawn.
    mail = mailbox.wait_for(lambda m: m["To"] == expert_email and m["Subject"] == "An offer was withdrawn", timeout=60)
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f"We withdrew an offer we sent you: {RECLAIMED}." in text
    mailbox.wait_for(lambda m: m["To"] == advanced_email and m["Subject"] != "An offer was withdrawn", timeout=60)
    withdrawn = [m["To"] for m in mailbox.messages if m["Subject"] == "An offer was withdrawn"]
    assert withdrawn.count(expert_email) == 1 and advanced_email not in withdrawn


def test_a_critical_need_does_not_reclaim_a_donor_whose_weekly_asks_are_spent(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer
) -> None:
    # One ask a week: the normal need's pending offer is the donor's only ask, and withdrawing it
    # would not give it back (a cancelled ask still counts).
    _set_policy(stack, tenant, max_pending_per_donor=1, weekly_asks=1, escalation={"at": [0.5]})
    expert, _ = _donor(stack, tenant, "expert")
    normal = _open_need(stack, tenant, kafka_server, required_skills=ADVANCED)
    [held] = _wait_offers(stack, tenant, normal, "the normal need's ask", lambda o: len(o) == 1)
    assert held["donor_id"] == expert

    critical = _open_need(stack, tenant, kafka_server, **_critical())
    assert _offers(stack, tenant, critical) == [], "the expert is not reclaimed"
    assert _rematch(stack, tenant) == 0, "nor when asked again"
    assert [(o["offer_id"], o["status"]) for o in _offers(stack, tenant, normal)] == [(held["offer_id"], "pending")]
    answer = httpx.get(
        f"{stack['matching'].url}/v1/needs/{critical}/escalation", headers=bearer(tenant.organiser_key), timeout=10
    )
    assert answer.status_code == 200, answer.text
    assert [s["kind"] for s in answer.json()["steps"]] == ["first-wave"]
    ranked = _candidates(stack, tenant, critical)
    assert ranked is not None and [c["donor_id"] for c in ranked["candidates"]] == [expert], "they do fit"
    assert eventually(lambda: _types(_matches_for(kafka_server, normal)), timeout=60) == ["offer.made"]
    assert eventually(lambda: _types(_matches_for(kafka_server, critical)), timeout=60) == ["need.escalated"]
