"""The newcomers' share and the need-side spreading term of the global assignment."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from pitchin_matching.domain.assignment import Demand, assign
from pitchin_matching.domain.budget import AskBudget
from pitchin_matching.domain.policy import PolicyDocument
from pitchin_matching.domain.spread import keep_newcomers_share, newcomers_owed

NOW = 1_800_000_000.0
DAY = 86_400.0


@pytest.mark.parametrize(
    ("offered", "to_newcomers", "planned", "planned_new", "owed"),
    [
        (0, 0, 10, 0, 3),  # nothing this week yet: 3 of 10
        (90, 30, 10, 0, 0),  # the week is ahead of the share
        (90, 20, 10, 0, 10),  # far behind: at most the whole pass
        (90, 25, 10, 2, 3),  # 30 of 100 wanted; 27 there or planned
        (7, 2, 1, 0, 1),
        (0, 0, 0, 0, 0),
    ],
)
def test_newcomers_owed_keeps_the_share_over_the_week(
    offered: int, to_newcomers: int, planned: int, planned_new: int, owed: int
) -> None:
    assert newcomers_owed(0.3, offered, to_newcomers, planned, planned_new) == owed
    assert newcomers_owed(0.0, offered, to_newcomers, planned, planned_new) == 0


def _demand(need_id: str, candidates: list[tuple[str, float]], places: int = 1, accepted: int = 0) -> Demand:
    return Demand(need_id, "normal", NOW + 5 * DAY, places, candidates, accepted)


def test_the_cheapest_swaps_make_room_for_newcomers_within_their_spare_asks() -> None:
    demands = [
        _demand("a", [("vet1", 100.0), ("new1", 99.0), ("new2", 50.0)]),
        _demand("b", [("vet2", 100.0), ("new2", 60.0)]),
    ]
    plan = {"a": ["vet1"], "b": ["vet2"]}
    made = keep_newcomers_share(plan, demands, {"new1", "new2"}, {"new1": 1, "new2": 1}, owed=1)
    assert made == 1 and plan == {"a": ["new1"], "b": ["vet2"]}, "a loses 1 point, b would lose 40"
    plan = {"a": ["vet1"], "b": ["vet2"]}
    assert keep_newcomers_share(plan, demands, {"new1", "new2"}, {"new1": 1, "new2": 1}, owed=2) == 2
    assert plan == {"a": ["new1"], "b": ["new2"]}
    # A newcomer with no spare ask is never planned twice.
    plan = {"a": ["vet1"], "b": ["vet2"]}
    demands = [_demand("a", [("vet1", 100.0), ("new1", 99.0)]), _demand("b", [("vet2", 100.0), ("new1", 98.0)])]
    assert keep_newcomers_share(plan, demands, {"new1"}, {"new1": 1}, owed=2) == 1
    assert sum(d == "new1" for donors in plan.values() for d in donors) == 1


def test_nothing_is_swapped_when_nothing_is_owed_or_no_newcomer_fits() -> None:
    demands = [_demand("a", [("vet1", 100.0), ("vet2", 90.0)])]
    plan = {"a": ["vet1"]}
    assert keep_newcomers_share(plan, demands, set(), {}, owed=3) == 0
    assert keep_newcomers_share(plan, demands, {"vet2"}, {"vet2": 1}, owed=0) == 0
    assert plan == {"a": ["vet1"]}


def test_a_need_with_no_acceptance_yet_pulls_harder_than_one_already_answered() -> None:
    # One donor, two needs alike but for the places already taken: the unanswered one gets them.
    answered = _demand("answered", [("don", 100.0)], places=1, accepted=2)
    unanswered = _demand("unanswered", [("don", 100.0)], places=1, accepted=0)
    assert assign([answered, unanswered], {"don": 1}, NOW) == {"answered": [], "unanswered": ["don"]}
    assert assign([unanswered, answered], {"don": 1}, NOW) == {"answered": [], "unanswered": ["don"]}


def test_the_budget_and_share_are_federation_settings_with_bounds_named_on_refusal() -> None:
    policy = PolicyDocument.model_validate({"max_pending_per_donor": 2, "weekly_asks": 5, "newcomer_share": 0.4})
    assert policy.to_policy(datetime.now(UTC)).ask_budget == AskBudget(2, 5)
    for body, field in (
        ({"weekly_asks": 0}, "weekly_asks"),
        ({"weekly_asks": 21}, "weekly_asks"),
        ({"max_pending_per_donor": 0}, "max_pending_per_donor"),
        ({"newcomer_share": 1.5}, "newcomer_share"),
    ):
        with pytest.raises(ValidationError, match=field):
            PolicyDocument.model_validate(body)
