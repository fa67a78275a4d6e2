"""Matching's rules on its own: use cases and storage against the real PostgreSQL, no Kafka, no other service.

Donors and needs are learnt from CloudEvents handed to the use cases, as the consumers do;
the offers, answers and assignment changes are read back from the outbox. Each rule here
used to be seen only end to end (tests/e2e/test_matching.py); a refusal is the domain
error itself, with the problem body the HTTP layer answers it with.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

import pytest

from pitchin_core.auth import Caller
from pitchin_core.contracts.donors import DonorRegisteredV1, DonorWithdrawnV1
from pitchin_core.contracts.fights import NeedClosedV1, NeedOpenedV1
from pitchin_core.errors import Conflict, NotFound
from pitchin_matching import service
from pitchin_matching.clock import OfferClock
from pitchin_matching.domain.policy import PolicyDocument
from pitchin_matching.domain.tokens import InvalidToken, TokenClaims, verify
from pitchin_matching.index import DonorIndex
from pitchin_matching.main import load_index
from pitchin_matching.service import Matching, OfferClosed
from tests.integration.conftest import ServiceDatabase, cloud_event
from tests.integration.tenancy import FED, ORG, ORGANISER, STAFF, STRANGER
from tests.unit.factories import donor_registered

pytestmark = pytest.mark.integration
MIGRATIONS = files("pitchin_matching") / "migrations"
SECRET = "a-test-secret-that-is-long-enough-for-hmac"
BASE = "https://pitchin.example"
NOW = datetime.now(UTC).replace(microsecond=0)
MADE, ACCEPTED, DECLINED = "org.pitchin.offer.made.v1", "org.pitchin.offer.accepted.v1", "org.pitchin.offer.declined.v1"
EXPIRED, CANCELLED = "org.pitchin.offer.expired.v1", "org.pitchin.offer.cancelled.v1"
CONFIRMED = "org.pitchin.assignment.confirmed.v1"
COMPLETED, RELEASED = "org.pitchin.assignment.completed.v1", "org.pitchin.assignment.released.v1"


async def _matching(open_service_database: Any) -> tuple[ServiceDatabase, Matching]:
    """A fresh schema, and the use cases' object built as main.py builds it (index loaded, ready)."""
    db: ServiceDatabase = await open_service_database("matching", MIGRATIONS)
    matching = Matching(uow=db.uow, index=DonorIndex(), token_secret=SECRET, public_base_url=BASE)
    await load_index(matching)
    assert matching.ready.is_set()
    return db, matching


def _donor(donor_id: str, level: str = "expert", **overrides: Any) -> DonorRegisteredV1:
    return DonorRegisteredV1.model_validate(
        donor_registered(
            donor_id=donor_id,
            federation_id=FED,
            organisation_id=ORG,
            email=f"{donor_id}@example.org",
            skills=[{"skill": "social-media", "level": level}],
            **overrides,
        )
    )


def _need(need_id: str, **overrides: Any) -> NeedOpenedV1:
    body: dict[str, Any] = {
        "federation_id": FED,
        "organisation_id": ORG,
        "need_id": need_id,
        "fight_id": f"fight-{need_id}",
        "title": "Social media for the bin strike",
        "required_skills": [{"skill": "social-media", "min_level": "advanced"}],
        "estimated_hours": 6,
        "deadline": NOW + timedelta(days=10),
        "language": "en",
        "causes": ["labour"],
        "opened_at": NOW,
    }
    body.update(overrides)
    return NeedOpenedV1.model_validate(body)


async def _learn(m: Matching, *facts: DonorRegisteredV1 | NeedOpenedV1) -> None:
    for data in facts:
        if isinstance(data, DonorRegisteredV1):
            assert await service.learn_donor(m, cloud_event(data), data, NOW)
        else:
            assert await service.learn_need(m, cloud_event(data), data, NOW)


async def _offers_made(db: ServiceDatabase) -> list[dict[str, Any]]:
    return [e for e in await db.outbox() if e["type"] == MADE]


def _claims(made: dict[str, Any], now: datetime = NOW) -> TokenClaims:
    """What the donor's link opens, read from the offer.made event as the API reads it."""
    return verify(SECRET, made["data"]["offer_token"], now.timestamp())


async def _load(m: Matching, donor_id: str) -> int:
    """The donor's load in the index once it caught up with what committed (as its poll does)."""
    await m.follower.catch_up()
    row = m.index.row_of(donor_id)
    assert row is not None
    return int(m.index.columns.load[row])


# Offers --------------------------------------------------------------------------------


async def test_the_best_candidate_is_offered_the_need_and_offer_made_is_in_the_outbox(
    open_service_database: Any,
) -> None:
    db, m = await _matching(open_service_database)
    await _learn(m, _donor("don_good", level="advanced"), _donor("don_best"), _donor("don_novice", level="beginner"))
    assert await db.outbox() == [], "learning donors offers nothing while no need waits"
    await _learn(m, _need("need_1"))

    [made] = await db.outbox()
    offer_id = made["data"]["offer_id"]
    assert made["type"] == MADE and made["data"]["donor_id"] == "don_best"
    assert (made["key"], made["subject"]) == ("need_1", f"offers/{offer_id}")
    assert made["data"]["accept_url"].startswith(f"{BASE}/v1/offers/{offer_id}/accept?token=v1.offer.{offer_id}.")
    explanation = made["data"]["explanation"]
    assert made["data"]["score"] == pytest.approx(sum(c["points"] for c in explanation), abs=0.01)
    assert any("social-media: expert" in c["why"] for c in explanation)
    ranked = await service.candidates(m, ORGANISER, "need_1", 10, NOW)
    offered = {c["donor_id"]: c["offer_status"] for c in ranked["candidates"]}
    assert offered == {"don_best": "pending", "don_good": None}, "a beginner is not eligible"
    assert (_claims(made).kind, _claims(made).subject) == ("offer", offer_id)
    assert await _load(m, "don_best") == 1, "the index learnt the offer from the tables once it committed"
    with pytest.raises(NotFound):
        await service.candidates(m, STRANGER, "need_1", 10, NOW)


async def test_a_redelivered_event_is_applied_once(open_service_database: Any) -> None:
    db, m = await _matching(open_service_database)
    donor, need = cloud_event(_donor("don_1")), cloud_event(_need("need_1"))
    assert await service.learn_donor(m, donor, _donor("don_1"), NOW)
    assert not await service.learn_donor(m, donor, _donor("don_1"), NOW)
    assert await service.learn_need(m, need, _need("need_1"), NOW)
    assert not await service.learn_need(m, need, _need("need_1"), NOW), "the inbox knows this CloudEvent id"
    assert await db.types_emitted() == [MADE]
    assert await _load(m, "don_1") == 1


async def test_a_donors_open_offers_stop_at_the_federations_cap(open_service_database: Any) -> None:
    db, m = await _matching(open_service_database)
    # Two pending offers allowed, so the load cap is what stops the third (the ask budget has its own tests).
    await service.set_policy(m, STAFF, PolicyDocument(max_open_per_donor=2, max_pending_per_donor=2))
    await _learn(m, _donor("don_1"), _need("need_1"), _need("need_2"), _need("need_3"))
    offers = await _offers_made(db)
    assert len(offers) == 2 and {o["data"]["donor_id"] for o in offers} == {"don_1"}
    assert await service.match_waiting(m, FED, NOW, force_all=True) == 0, "asked again, the cap still holds"
    # A second donor joins: at the next pass, the need left waiting is offered to them.
    await _learn(m, _donor("don_2"))
    assert await service.match_waiting(m, FED, NOW, force_all=True) == 1
    offers = await _offers_made(db)
    assert len(offers) == 3 and offers[-1]["data"]["donor_id"] == "don_2"
    assert {o["data"]["need_id"] for o in offers} == {"need_1", "need_2", "need_3"}


async def test_an_offer_is_answered_only_with_its_own_token_while_it_is_open(open_service_database: Any) -> None:
    db, m = await _matching(open_service_database)
    await service.set_policy(m, STAFF, PolicyDocument(max_open_per_donor=1))
    await _learn(m, _donor("don_1"), _donor("don_2"), _need("need_1"), _need("need_2"))
    first, second = await _offers_made(db)
    assert first["data"]["donor_id"] != second["data"]["donor_id"], "the assignment spreads asks over people"

    # Another offer's token opens nothing, said the same way as "no such offer".
    with pytest.raises(NotFound) as foreign:
        await service.accept_offer(m, second["data"]["offer_id"], _claims(first), NOW)
    assert foreign.value.problem_body() == {
        "type": "about:blank",
        "title": "Not found",
        "status": 404,
        "detail": f"No offer {second['data']['offer_id']} for this token.",
    }
    # A token stops working a week after its offer expires.
    expiry = datetime.fromisoformat(first["data"]["expires_at"])
    with pytest.raises(InvalidToken, match="the token has expired"):
        _claims(first, expiry + timedelta(days=7, seconds=1))
    # A pending offer past its time cannot be accepted, even before the clock expires it.
    with pytest.raises(OfferClosed) as late:
        await service.accept_offer(m, first["data"]["offer_id"], _claims(first), expiry + timedelta(seconds=1))
    assert late.value.problem_body() == {
        "type": "tag:pitchin.example,2026:problems/offer-closed",
        "title": "Offer no longer open",
        "status": 409,
        "detail": "This offer has expired.",
    }

    offer_id = first["data"]["offer_id"]
    accepted = await service.accept_offer(m, offer_id, _claims(first), NOW)
    assert accepted == {"offer_id": offer_id, "status": "accepted", "assignment_id": offer_id}
    assert await service.accept_offer(m, offer_id, _claims(first), NOW) == accepted, "a second click changes nothing"
    with pytest.raises(OfferClosed) as again:
        await service.decline_offer(m, offer_id, _claims(first), "changed my mind", NOW)
    assert again.value.detail == "This offer was already accepted."
    [acceptance] = [e for e in await db.outbox() if e["type"] == ACCEPTED]
    assert (acceptance["key"], acceptance["subject"]) == ("need_1", f"offers/{offer_id}")

    # The other donor declines with a donor token: nobody is left to ask for need_2 (the
    # first donor's assignment takes their one place).
    donor_token = second["data"]["offers_url"].rpartition("token=")[2]
    claims = verify(SECRET, donor_token, NOW.timestamp())
    assert (claims.kind, claims.subject) == ("donor", second["data"]["donor_id"])
    declined = await service.decline_offer(m, second["data"]["offer_id"], claims, "busy", NOW)
    assert declined == {"offer_id": second["data"]["offer_id"], "status": "declined"}
    assert await db.types_emitted() == [MADE, MADE, ACCEPTED, DECLINED]
    assert [e["data"]["reason"] for e in await db.outbox() if e["type"] == DECLINED] == ["busy"]


async def test_a_declined_or_expired_offer_goes_to_the_next_candidate(open_service_database: Any) -> None:
    db, m = await _matching(open_service_database)
    await service.set_policy(m, STAFF, PolicyDocument(offer_ttl_seconds=60))
    await _learn(m, _donor("don_1"), _donor("don_2", level="advanced"), _donor("don_3", level="advanced"))
    await _learn(m, _need("need_1"))
    [first] = await _offers_made(db)
    await service.decline_offer(m, first["data"]["offer_id"], _claims(first), "", NOW)
    second = (await _offers_made(db))[-1]
    assert second["data"]["donor_id"] not in {first["data"]["donor_id"]}
    assert await _load(m, first["data"]["donor_id"]) == 0

    later = NOW + timedelta(seconds=61)
    assert await service.expire_due(m, FED, later) == 1
    assert await service.expire_due(m, FED, later) == 0, "an offer expires once"
    third = (await _offers_made(db))[-1]
    assert await db.types_emitted() == [MADE, DECLINED, MADE, EXPIRED, MADE]
    assert len({o["data"]["donor_id"] for o in (first, second, third)}) == 3, "nobody is asked twice"


async def test_the_offer_clock_expires_what_is_due_and_asks_the_next_donor(open_service_database: Any) -> None:
    db, m = await _matching(open_service_database)
    await service.set_policy(m, STAFF, PolicyDocument(offer_ttl_seconds=1))
    await _learn(m, _donor("don_1"), _donor("don_2", level="advanced"), _need("need_1"))
    clock = OfferClock(m, poll_seconds=0.1, sweep_seconds=30)
    # The clock's time 1.1 s on (the offer lived 1 s): no waiting for it to pass.
    later = max(NOW, datetime.now(UTC)) + timedelta(seconds=1.1)
    assert await clock.tick(later) == 1
    assert await clock.tick(later) == 0, "the next offer is not due yet"
    assert await db.types_emitted() == [MADE, EXPIRED, MADE]
    assert [e["data"]["donor_id"] for e in await _offers_made(db)] == ["don_1", "don_2"]


async def test_a_withdrawal_or_a_closed_need_cancels_pending_offers(open_service_database: Any) -> None:
    db, m = await _matching(open_service_database)
    await _learn(m, _donor("don_1"), _donor("don_2", level="advanced"), _need("need_1"))
    [first] = await _offers_made(db)
    withdrawn = DonorWithdrawnV1(federation_id=FED, donor_id="don_1", withdrawn_at=NOW)
    assert await service.withdraw_donor(m, cloud_event(withdrawn), withdrawn, NOW)
    assert first["data"]["donor_id"] == "don_1"
    assert (await _offers_made(db))[-1]["data"]["donor_id"] == "don_2", "the next donor is asked"
    closed = NeedClosedV1(
        federation_id=FED, organisation_id=ORG, need_id="need_1", fight_id="fight-need_1", closed_at=NOW
    )
    assert await service.end_need(m, cloud_event(closed), closed, NOW)
    assert await db.types_emitted() == [MADE, CANCELLED, MADE, CANCELLED]
    reasons = [e["data"]["reason"] for e in await db.outbox() if e["type"] == CANCELLED]
    assert reasons == ["the donor withdrew", "the need is closed"]
    assert (await _load(m, "don_1"), await _load(m, "don_2")) == (0, 0)


# Assignments ---------------------------------------------------------------------------


async def _assignment(db: ServiceDatabase, m: Matching) -> str:
    """An accepted offer: its id is the assignment's."""
    await _learn(m, _donor("don_1"), _donor("don_2", level="advanced"), _need("need_1"))
    [made] = await _offers_made(db)
    await service.accept_offer(m, made["data"]["offer_id"], _claims(made), NOW)
    return str(made["data"]["offer_id"])


async def test_only_confirmed_work_is_marked_done_and_other_figures_are_a_conflict(
    open_service_database: Any,
) -> None:
    db, m = await _matching(open_service_database)
    assignment = await _assignment(db, m)
    with pytest.raises(Conflict) as early:
        await service.complete_assignment(m, ORGANISER, assignment, 3, "", NOW)
    assert early.value.problem_body() == {
        "type": "about:blank",
        "title": "Assignment not confirmed",
        "status": 409,
        "detail": "Only confirmed work can be marked done; this one is accepted.",
    }
    for stranger in (STRANGER, Caller(FED, "org-unite-wm", "organiser")):
        with pytest.raises(NotFound) as hidden:
            await service.confirm_assignment(m, stranger, assignment, NOW)
        assert hidden.value.detail == f"No assignment {assignment} here."
    assert await service.confirm_assignment(m, ORGANISER, assignment, NOW) == {
        "assignment_id": assignment,
        "status": "confirmed",
    }
    assert (await service.confirm_assignment(m, STAFF, assignment, NOW))["status"] == "confirmed"

    done = await service.complete_assignment(m, ORGANISER, assignment, 6.54, "Thank you!", NOW)
    assert (done["status"], done["hours_given"], done["thanks"]) == ("completed", 6.5, "Thank you!")
    again = await service.complete_assignment(m, ORGANISER, assignment, 6.5, "Thank you!", NOW + timedelta(hours=1))
    assert again["completed_at"] == NOW, "saying it again changes nothing"
    with pytest.raises(Conflict) as other:
        await service.complete_assignment(m, ORGANISER, assignment, 9, "Thank you!", NOW)
    assert (other.value.title, other.value.detail) == (
        "Assignment completed",
        "This work was already marked done with other figures.",
    )
    with pytest.raises(Conflict) as release:
        await service.release_assignment(m, ORGANISER, assignment, "", NOW)
    assert release.value.problem_body() == {
        "type": "about:blank",
        "title": "Assignment completed",
        "status": 409,
        "detail": "Work marked done cannot be released.",
    }
    assert (await service.confirm_assignment(m, ORGANISER, assignment, NOW))["status"] == "completed"

    assert await db.types_emitted() == [MADE, ACCEPTED, CONFIRMED, COMPLETED]
    completed = (await db.outbox())[-1]
    assert (completed["key"], completed["subject"]) == ("need_1", f"assignments/{assignment}")
    assert completed["data"]["need_title"] == "Social media for the bin strike"
    assert completed["data"]["hours_given"] == 6.5
    record = await service.donor_record(m, "don_1", None)
    assert (record["hours_given"], record["completed"], record["organisations"]) == (6.5, 1, [ORG])
    with pytest.raises(NotFound):
        await service.donor_record(m, "don_1", STRANGER)


async def test_a_released_assignment_frees_the_place_and_cannot_be_confirmed(open_service_database: Any) -> None:
    db, m = await _matching(open_service_database)
    assignment = await _assignment(db, m)
    assert await service.confirm_assignment(m, ORGANISER, assignment, NOW)
    released = await service.release_assignment(m, ORGANISER, assignment, "moved away", NOW)
    assert released == {"assignment_id": assignment, "status": "released"}
    assert await service.release_assignment(m, ORGANISER, assignment, "", NOW) == released, "twice is once"
    with pytest.raises(Conflict) as confirm:
        await service.confirm_assignment(m, ORGANISER, assignment, NOW)
    assert (confirm.value.status, confirm.value.title, confirm.value.detail) == (
        409,
        "Assignment released",
        "A released assignment cannot be confirmed.",
    )
    assert await db.types_emitted() == [MADE, ACCEPTED, CONFIRMED, RELEASED, MADE]
    events = await db.outbox()
    assert events[3]["data"]["reason"] == "moved away" and events[3]["subject"] == f"assignments/{assignment}"
    assert events[4]["data"]["donor_id"] == "don_2", "the freed place goes to the next donor"
    assert await _load(m, "don_1") == 0
