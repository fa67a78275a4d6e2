from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from pitchin_matching.domain.budget import (
    RECENT_ASKS,
    WEEK_SECONDS,
    AskBudget,
    asks_in_week,
    note_ask,
    spare_asks,
    weekly_counts,
    within_budget,
)
from pitchin_matching.domain.donors import DonorProfile
from pitchin_matching.domain.needs import NeedState
from pitchin_matching.domain.ranking import Policy, explain, rank, slots_of
from pitchin_matching.index import DonorIndex

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
DEFAULT = AskBudget()


def test_the_default_budget_is_one_pending_offer_and_three_asks_a_week() -> None:
    assert (DEFAULT.max_pending, DEFAULT.weekly_asks) == (1, 3)
    with pytest.raises(ValueError, match="at least one"):
        AskBudget(max_pending=0)
    with pytest.raises(ValueError, match="at least one"):
        AskBudget(weekly_asks=0)
    with pytest.raises(ValueError, match="at most"):
        AskBudget(weekly_asks=RECENT_ASKS + 1)  # the index could not count them


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


def _ranked(policy: Policy, pending: list[int] | None, asked: list[int] | None, days_ago: float = 1.0) -> list[str]:
    index = DonorIndex(capacity=4)
    for name in ("free", "waiting", "asked-thrice"):
        index.upsert(_donor(name), NOW - timedelta(days=365))
    columns = index.columns
    if pending is not None and asked is not None:
        assert columns.pending is not None and columns.recent_asks is not None
        columns.pending[:3] = pending
        for row, times in enumerate(asked):
            for n in range(times):
                note_ask(columns.recent_asks[row], NOW.timestamp() - days_ago * 86_400 - n)
    else:
        columns.pending = columns.recent_asks = None
    query = index.query(NEED, policy, slots_of(policy.collaboration_utc))
    return sorted(index.donor_at(r) for r in rank(columns, query, policy, NOW.timestamp(), limit=10).rows.tolist())


def test_ranking_leaves_out_donors_past_their_budget() -> None:
    budgeted = Policy(ask_budget=DEFAULT)
    assert _ranked(budgeted, pending=[0, 1, 0], asked=[0, 1, 3]) == ["free"]
    # A looser budget lets the thrice-asked donor in; the one waiting on an answer stays out.
    looser = replace(budgeted, ask_budget=AskBudget(max_pending=1, weekly_asks=4))
    assert _ranked(looser, pending=[0, 1, 0], asked=[0, 1, 3]) == ["asked-thrice", "free"]


def test_asks_age_out_of_the_week_without_anything_re_reading_the_donor() -> None:
    budgeted = Policy(ask_budget=DEFAULT)
    # The same three asks, eight days ago: the thrice-asked donor may be asked again.
    assert _ranked(budgeted, pending=[0, 1, 0], asked=[0, 1, 3], days_ago=8) == ["asked-thrice", "free"]


def test_weekly_counts_and_note_ask_keep_the_latest_asks() -> None:
    now = NOW.timestamp()
    recent = np.full((2, 4), np.nan)
    for at in (now - 9 * 86_400, now - 3600, now - 60):
        note_ask(recent[0], at)
    assert weekly_counts(recent, now).tolist() == [2, 0]
    for at in (now - 5, now - 4, now - 3):  # a fifth and sixth ask replace the oldest ones
        note_ask(recent[0], at)
    assert sorted(recent[0].tolist()) == [now - 60, now - 5, now - 4, now - 3]
    assert weekly_counts(recent, now).tolist() == [4, 0]


def test_each_ask_this_week_lowers_a_donors_rank_for_the_next() -> None:
    index = DonorIndex(capacity=4)
    for name in ("asked-twice", "asked-never"):
        index.upsert(_donor(name), NOW - timedelta(days=365))
    assert index.columns.recent_asks is not None
    for n in range(2):
        note_ask(index.columns.recent_asks[0], NOW.timestamp() - 86_400 * (n + 1))
    policy = Policy(ask_budget=DEFAULT, recency_days=0.5)  # recency alone would not tell them apart
    query = index.query(NEED, policy, slots_of(policy.collaboration_utc))
    ranking = rank(index.columns, query, policy, NOW.timestamp(), limit=10)
    assert [index.donor_at(r) for r in ranking.rows.tolist()] == ["asked-never", "asked-twice"]
    spread = ranking.values["spread"].tolist()
    assert spread == pytest.approx([0.0, -2 / 3])
    components = explain(
        index.columns,
        int(ranking.rows[1]),
        {k: float(v[1]) for k, v in ranking.values.items()},
        query,
        policy,
        NOW.timestamp(),
    )
    [why] = [c.why for c in components if c.name == "spread"]
    assert why == "asked 2 time(s) in the last 7 days of at most 3"


def test_without_a_budget_or_its_counts_only_the_load_cap_applies() -> None:
    everyone = ["asked-thrice", "free", "waiting"]
    assert _ranked(Policy(), pending=[0, 1, 0], asked=[0, 1, 3]) == everyone
    assert _ranked(Policy(ask_budget=DEFAULT), pending=None, asked=None) == everyone
