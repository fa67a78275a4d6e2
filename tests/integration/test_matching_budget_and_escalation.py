"""The ask budget, escalation and reclaiming a donor, on the offer engine against the real PostgreSQL.

As in test_matching_rules.py: the use cases are called as the consumers and the API call them,
and what they decided is read back from the outbox and the tables.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from pitchin_matching import service
from pitchin_matching.domain.policy import PolicyDocument
from tests.integration.tenancy import FED, ORGANISER, STAFF
from tests.integration.test_matching_rules import (
    CANCELLED,
    NOW,
    _claims,
    _donor,
    _learn,
    _matching,
    _need,
    _offers_made,
)

pytestmark = pytest.mark.integration
ESCALATED = "org.pitchin.need.escalated.v1"


async def test_one_pending_offer_at_a_time_and_three_asks_a_week_then_the_week_rolls_on(
    open_service_database: Any,
) -> None:
    db, m = await _matching(open_service_database)
    await _learn(m, _donor("don_1"), *(_need(f"need_{n}") for n in range(1, 6)))
    [first] = await _offers_made(db)
    assert first["data"]["donor_id"] == "don_1", "one pending offer: the other needs wait"
    assert await service.match_waiting(m, FED, NOW, force_all=True) == 0, "asked again, the budget still holds"
    # Each answer frees the pending place: the second and third asks of the week follow at once.
    for _ in range(2):
        latest = (await _offers_made(db))[-1]
        await service.decline_offer(m, latest["data"]["offer_id"], _claims(latest), "busy", NOW)
    third = (await _offers_made(db))[-1]
    assert len(await _offers_made(db)) == 3
    await service.decline_offer(m, third["data"]["offer_id"], _claims(third), "busy", NOW)
    assert len(await _offers_made(db)) == 3, "three asks this week: nothing pending, still not asked"
    assert await service.match_waiting(m, FED, NOW + timedelta(days=6), force_all=True) == 0
    # A week after the first ask it no longer counts: one more may be made.
    assert await service.match_waiting(m, FED, NOW + timedelta(days=7, seconds=1), force_all=True) == 1
    assert {o["data"]["donor_id"] for o in await _offers_made(db)} == {"don_1"}


async def test_a_looser_budget_set_by_the_federation_is_what_the_engine_applies(open_service_database: Any) -> None:
    db, m = await _matching(open_service_database)
    await service.set_policy(m, STAFF, PolicyDocument(max_pending_per_donor=2, weekly_asks=5))
    await _learn(m, _donor("don_1"), _need("need_1"), _need("need_2"), _need("need_3"))
    assert len(await _offers_made(db)) == 2, "two pending at once (the load cap of 2 holds the third)"


def _critical(need_id: str, seconds: int = 100, **overrides: Any) -> Any:
    return _need(need_id, urgency="critical", deadline=NOW + timedelta(seconds=seconds), **overrides)


async def test_a_critical_need_asks_a_first_wave_widens_when_due_and_stands_the_others_down(
    open_service_database: Any,
) -> None:
    db, m = await _matching(open_service_database)
    await service.set_policy(m, STAFF, PolicyDocument(escalation={"at": [0.1, 0.5]}))
    await _learn(m, *(_donor(f"don_{n}") for n in range(6)), _critical("need_c"))
    wave = await _offers_made(db)
    assert len(wave) == 3, "the best-fit few: three per place"
    [step] = [e for e in await db.outbox() if e["type"] == ESCALATED]
    assert (step["data"]["kind"], step["data"]["step"], step["data"]["offers_wanted"]) == ("first-wave", 0, 3)
    assert step["key"] == "need_c"

    # A decline is replaced at once, by someone not yet asked.
    await service.decline_offer(m, wave[0]["data"]["offer_id"], _claims(wave[0]), "away", NOW)
    made = await _offers_made(db)
    assert len(made) == 4 and len({o["data"]["donor_id"] for o in made}) == 4

    # Not due yet; then due (10 s of the 100 s): one more offer in flight per free place.
    assert await service.escalate_due(m, FED, NOW + timedelta(seconds=9)) == 0
    assert await service.escalate_due(m, FED, NOW + timedelta(seconds=11)) == 1
    assert await service.escalate_due(m, FED, NOW + timedelta(seconds=11)) == 0, "a step is taken once"
    made = await _offers_made(db)
    assert len(made) == 5
    view = await service.need_escalation(m, ORGANISER, "need_c")
    assert view["stage"] == 1 and view["next_step_at"] == NOW + timedelta(seconds=50)

    # One says yes: the place is filled, the three others still pending are stood down, escalation stops.
    pending = [o for o in made if o["data"]["offer_id"] != wave[0]["data"]["offer_id"]]
    await service.accept_offer(m, pending[0]["data"]["offer_id"], _claims(pending[0]), NOW + timedelta(seconds=12))
    cancelled = [e for e in await db.outbox() if e["type"] == CANCELLED]
    assert len(cancelled) == 3 and {e["data"]["reason"] for e in cancelled} == {"the need is filled"}
    view = await service.need_escalation(m, ORGANISER, "need_c")
    assert [s["kind"] for s in view["steps"]] == ["first-wave", "widened", "stood-down"]
    assert view["next_step_at"] is None
    assert "3 other donor(s) stood down" in view["steps"][2]["detail"]
    assert await service.escalate_due(m, FED, NOW + timedelta(seconds=60)) == 0, "a filled need is not widened"
    assert [e["data"]["kind"] for e in await db.outbox() if e["type"] == ESCALATED] == [
        "first-wave",
        "widened",
        "stood-down",
    ]


async def test_a_critical_need_reclaims_a_donor_from_a_normal_need_which_is_offered_again(
    open_service_database: Any,
) -> None:
    db, m = await _matching(open_service_database)
    expert = [{"skill": "social-media", "min_level": "expert"}]
    await _learn(m, _donor("don_expert"), _donor("don_advanced", level="advanced"), _need("need_normal"))
    [normal] = await _offers_made(db)
    assert normal["data"]["donor_id"] == "don_expert"

    # Only the expert fits the critical need, and they are holding the normal need's offer.
    await _learn(m, _critical("need_c", seconds=3600, required_skills=expert))
    made = await _offers_made(db)
    by_need = {o["data"]["need_id"]: o["data"]["donor_id"] for o in made[1:]}
    assert by_need == {"need_c": "don_expert", "need_normal": "don_advanced"}
    [withdrawn] = [e for e in await db.outbox() if e["type"] == CANCELLED]
    assert withdrawn["data"]["offer_id"] == normal["data"]["offer_id"]
    assert withdrawn["data"]["reason"].startswith("a more urgent need asked for you; thank you")
    view = await service.need_escalation(m, ORGANISER, "need_c")
    assert [s["kind"] for s in view["steps"]] == ["first-wave", "reclaimed"]
