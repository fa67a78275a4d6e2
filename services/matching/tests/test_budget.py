from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from pitchin_matching.domain.budget import WEEK_SECONDS, AskBudget, asks_in_week, spare_asks, within_budget
from pitchin_matching.domain.donors import DonorProfile
from pitchin_matching.domain.needs import NeedState
from pitchin_matching.domain.ranking import Policy, rank, slots_of
from pitchin_matching.index import DonorIndex

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
DEFAULT = AskBudget()


def test_the_default_budget_is_one_pending_offer_and_three_asks_a_week() -> None:
    assert (DEFAULT.max_pending, DEFAULT.weekly_asks) == (1, 3)
    with pytest.raises(ValueError, match="at least one"):
        AskBudget(max_pending=0)
    with pytest.raises(ValueError, match="at least one"):
        AskBudget(weekly_asks=0)


@pytest.mark.parametrize(
    ("pending", "asked", "budget", "spare"),
    [
        (0, 0, DEFAULT, 1),
        (1, 1, DEFAULT, 0),  # an offer waiting for an answer: nothing else until it is answered
        (0, 3, DEFAULT, 0),  # the week's asks are used up, even with nothing pending
        (0, 2, DEFAULT, 1),
        (0, 1, AskBudget(max_pending=2, weekly_asks=5), 2),
        (1, 4, AskBudget(max_pending=3, weekly_asks=5), 1),  # the tighter limit wins
        (2, 9, DEFAULT, 0),  # over a budget lowered since: none, never negative
    ],
)
def test_spare_asks_are_the_tighter_of_the_two_limits(pending: int, asked: int, budget: AskBudget, spare: int) -> None:
    assert spare_asks(pending, asked, budget) == spare


def test_a_week_is_the_seven_days_up_to_now() -> None:
    now = NOW.timestamp()
    asked = [now - WEEK_SECONDS, now - WEEK_SECONDS + 1, now - 3600, now, now + 1]
    assert asks_in_week(asked, now) == 3  # exactly a week ago has aged out; later ones are not yet
    assert asks_in_week([], now) == 0


def test_within_budget_per_donor() -> None:
    pending = np.array([0, 1, 0, 0], dtype=np.int16)
    asked = np.array([0, 1, 3, 2], dtype=np.int16)
    assert within_budget(pending, asked, DEFAULT).tolist() == [True, False, False, True]


def _donor(donor_id: str) -> DonorProfile:
    return DonorProfile(
        donor_id=donor_id,
        federation_id="fed-wm",
        organisation_id=None,
        status="active",
        version=0,
        time_zone="UTC",
        hours_per_week=4.0,
        remote=True,
        latitude=None,
        longitude=None,
        country="GB",
        languages=("en",),
        causes=("labour",),
        skills={"social-media": 3},
        windows_utc=(),
    )


NEED = NeedState(
    need_id="need_1",
    fight_id="fight_1",
    federation_id="fed-wm",
    organisation_id="org-1",
    title="Strike comms",
    required_skills=(("social-media", 2),),
    nice_to_have=(),
    estimated_hours=8.0,
    deadline=NOW + timedelta(days=14),
    urgency="normal",
    remote=True,
    latitude=None,
    longitude=None,
    country=None,
    language="en",
    causes=("labour",),
    donors_wanted=1,
    status="open",
    version=1,
)


def _ranked(policy: Policy, pending: list[int] | None, asked: list[int] | None) -> list[str]:
    index = DonorIndex(capacity=4)
    for name in ("free", "waiting", "asked-thrice"):
        index.upsert(_donor(name), NOW - timedelta(days=365))
    columns = index.columns
    if pending is not None and asked is not None:
        columns.pending = np.array(pending, dtype=np.int16)
        columns.asked_this_week = np.array(asked, dtype=np.int16)
    query = index.query(NEED, policy, slots_of(policy.collaboration_utc))
    return sorted(index.donor_at(r) for r in rank(columns, query, policy, NOW.timestamp(), limit=10).rows.tolist())


def test_ranking_leaves_out_donors_past_their_budget() -> None:
    budgeted = Policy(ask_budget=DEFAULT)
    assert _ranked(budgeted, pending=[0, 1, 0], asked=[0, 1, 3]) == ["free"]
    # A looser budget lets the thrice-asked donor in; the one waiting on an answer stays out.
    looser = replace(budgeted, ask_budget=AskBudget(max_pending=1, weekly_asks=4))
    assert _ranked(looser, pending=[0, 1, 0], asked=[0, 1, 3]) == ["asked-thrice", "free"]


def test_without_a_budget_or_its_counts_only_the_load_cap_applies() -> None:
    everyone = ["asked-thrice", "free", "waiting"]
    assert _ranked(Policy(), pending=[0, 1, 0], asked=[0, 1, 3]) == everyone
    assert _ranked(Policy(ask_budget=DEFAULT), pending=None, asked=None) == everyone
