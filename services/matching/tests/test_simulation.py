"""A small seeded strike week (`make simulate` at full size): invariants its figures must keep."""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import numpy as np
import pytest

from pitchin_matching.domain.budget import AskBudget
from pitchin_matching.simulation import (
    EVERYONE,
    GREEDY,
    PITCH_IN,
    UNBUDGETED,
    Comparison,
    compare,
    default_policy,
    default_rules,
)
from pitchin_matching.simulation.metrics import gini, lowest_gini, measure, most_asks_in_a_week
from pitchin_matching.simulation.model import generate
from pitchin_matching.simulation.policies import PitchIn
from pitchin_matching.simulation.week import run

SEED = 7
DONORS, NEEDS, CRITICAL = 500, 40, 4


def small_week(seed: int) -> Comparison:
    return compare(seed, donors=DONORS, needs=NEEDS, critical=CRITICAL)


@cache
def week() -> Comparison:
    return small_week(SEED)


def test_gini_is_zero_when_even_and_grows_as_one_holds_more() -> None:
    assert gini([2, 2, 2, 2]) == 0.0
    assert gini([0, 0, 0, 3]) == pytest.approx(0.75)
    assert gini([0, 1, 1, 2]) == pytest.approx(0.375)
    # Two offers over four people: at best two people get one each, two get none.
    assert lowest_gini(2, 4) == pytest.approx(gini([1, 1, 0, 0])) == pytest.approx(0.5)
    assert lowest_gini(8, 4) == 0.0


def test_the_same_seed_gives_the_same_table_and_another_seed_another() -> None:
    again = small_week(SEED)
    assert again.table() == week().table()
    assert small_week(SEED + 1).table() != week().table()


def test_offering_everyone_who_fits_sends_the_most_offers_per_place() -> None:
    m = week().metrics
    assert m[EVERYONE].offers_per_place > m[GREEDY].offers_per_place
    assert m[EVERYONE].offers_per_place > m[PITCH_IN].offers_per_place
    assert m[EVERYONE].distinct_per_offer < m[PITCH_IN].distinct_per_offer


def test_spread_figures_stay_in_range_and_above_the_lowest_achievable() -> None:
    for name, m in zip(week().names, week().metrics, strict=True):
        assert 0.0 <= m.gini_lowest <= m.gini <= 1.0, name
        assert 0.0 < m.top10_share <= 1.0, name
        assert 0.0 <= m.newcomer_share <= 1.0, name
        assert 0.0 < m.distinct_per_offer <= 1.0, name


def test_no_policy_fills_more_places_than_wanted_or_than_donors_fit() -> None:
    for name, outcome, m in zip(week().names, week().outcomes, week().metrics, strict=True):
        assert m.places_filled <= m.places_fillable <= m.places_wanted, name
        assert m.critical_needs_answered <= m.critical_needs == CRITICAL, name
        for opened, accepted in zip(outcome.world.needs, outcome.accepted_at, strict=True):
            assert len(accepted) <= opened.need.donors_wanted, name
            assert all(opened.opened_at <= at < opened.need.deadline.timestamp() for at in accepted), name


def test_pitch_in_never_asks_a_donor_beyond_the_cap_it_is_configured_with() -> None:
    assert week().metrics[PITCH_IN].max_load <= default_policy().max_open_per_donor
    # The baselines have no cap, so the same week shows someone holding more than Pitch In allows.
    assert week().metrics[EVERYONE].max_load > default_policy().max_open_per_donor
    world = generate(SEED, donors=DONORS, needs=NEEDS, critical=CRITICAL)
    one_at_a_time = replace(default_policy(), max_open_per_donor=1)
    outcome = run(world, PitchIn(one_at_a_time, default_rules()), one_at_a_time)
    assert outcome.max_load == 1
    assert outcome.offers, "a cap of one still asks people"


def test_most_asks_in_a_week_counts_a_sliding_seven_days_per_donor() -> None:
    day = 86_400.0
    rows = np.array([1, 1, 1, 1, 2, 2], dtype=np.int64)
    made_at = np.array([0.0, 1 * day, 6 * day, 8 * day, 0.0, 0.5 * day])
    # Donor 1: days 0, 1, 6 fall in one week; day 8 is a week after day 1. Donor 2 has two.
    assert most_asks_in_a_week(rows, made_at) == 3
    assert most_asks_in_a_week(np.array([1, 2, 3], dtype=np.int64), np.zeros(3)) == 1


def test_the_ask_budget_the_service_applies_holds_in_the_week_and_is_tighter_than_the_load_cap_alone() -> None:
    budget = default_policy().ask_budget
    assert budget == AskBudget(max_pending=1, weekly_asks=3), "the federation's default"
    pitch_in = week().outcomes[PITCH_IN]
    assert pitch_in.policy == "Pitch In"
    assert pitch_in.max_pending <= budget.max_pending
    assert week().metrics[PITCH_IN].max_weekly_asks <= budget.weekly_asks
    # Without the budget the load cap alone lets a donor hold two unanswered offers in the same week:
    # the budget, not the cap, is what keeps it to one.
    assert week().outcomes[UNBUDGETED].max_pending > budget.max_pending


def test_a_tighter_weekly_cap_is_kept_and_asks_fewer_times_per_donor() -> None:
    world = generate(SEED, donors=DONORS, needs=NEEDS, critical=CRITICAL)
    once = replace(default_policy(), ask_budget=AskBudget(max_pending=1, weekly_asks=1))
    outcome = run(world, PitchIn(once, default_rules()), once)
    assert measure(outcome).max_weekly_asks == 1
    assert week().metrics[PITCH_IN].max_weekly_asks > 1, "the default cap lets someone be asked twice"


def test_the_newcomers_share_is_kept_and_lifts_their_share_over_the_engine_without_it() -> None:
    m = week().metrics
    share = default_policy().newcomer_share
    assert share == 0.3
    # The engine keeps the share of offers to those it ranks as newcomers when offered; the metric
    # counts those who were newcomers when the week began (a few have served or aged out since).
    assert m[PITCH_IN].newcomer_share >= share - 0.01
    assert m[PITCH_IN].newcomer_share > m[UNBUDGETED].newcomer_share


def test_escalation_brings_the_first_yes_for_critical_needs_sooner() -> None:
    # Ten critical needs: with four, one slow donor decides the p90.
    world = generate(SEED, donors=2_000, needs=100, critical=10)
    policy = default_policy()
    escalated = measure(run(world, PitchIn(policy, default_rules()), policy))
    flat = measure(run(world, PitchIn(policy, None), policy))
    assert escalated.critical_first_p90_h < flat.critical_first_p90_h
    assert escalated.critical_places_filled >= flat.critical_places_filled
