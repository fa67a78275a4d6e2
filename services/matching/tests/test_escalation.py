"""Escalation of urgent needs as pure rules: when each step falls and what it widens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from pitchin_matching.domain.escalation import Escalation, describe, next_step_at, widened
from pitchin_matching.domain.policy import PolicyDocument
from pitchin_matching.domain.ranking import Policy

START = datetime(2026, 11, 23, 9, tzinfo=UTC)
DEADLINE = START + timedelta(hours=72)
RULES = Escalation(at=(0.25, 0.5, 0.75))


def test_steps_fall_at_the_set_fractions_of_the_time_to_the_deadline_then_stop() -> None:
    assert [next_step_at(RULES, START, DEADLINE, stage) for stage in range(4)] == [
        START + timedelta(hours=18),
        START + timedelta(hours=36),
        START + timedelta(hours=54),
        None,
    ]
    assert next_step_at(RULES, DEADLINE, START, 0) is None, "a deadline already passed takes no step"


def test_only_the_urgencies_named_escalate() -> None:
    assert RULES.applies("critical") and not RULES.applies("normal")
    assert Escalation(urgencies=frozenset({"critical", "high"})).applies("high")
    assert not Escalation(at=()).applies("critical"), "no steps: nothing escalates"


def test_the_first_wave_is_the_policy_itself_and_each_step_widens_the_ask() -> None:
    policy = Policy()
    assert widened(policy, RULES, "critical", 0) is policy
    first, second = widened(policy, RULES, "critical", 1), widened(policy, RULES, "critical", 2)
    assert first.weights.nice_to_have == 0.0 and policy.weights.nice_to_have == 10.0
    assert (first.fan_out["critical"], second.fan_out["critical"]) == (4.0, 5.0)
    assert first.fan_out["normal"] == policy.fan_out["normal"], "other urgencies keep theirs"
    assert first.max_distance_km == 75.0 and second.max_distance_km == pytest.approx(112.5)
    assert describe(policy, RULES, "critical", 1) == (
        "step 1: nice-to-have skills no longer count, reach 75 km, 4 offers at once per free place"
    )


@pytest.mark.parametrize("at", [[0.5, 0.25], [0.0, 0.5], [0.3, 1.0], [0.2, 0.2]])
def test_steps_that_are_not_increasing_fractions_inside_the_time_are_refused(at: list[float]) -> None:
    with pytest.raises(ValueError, match="increasing fractions"):
        Escalation(at=tuple(at))
    with pytest.raises(ValidationError, match=r"escalation\.at"):
        PolicyDocument.model_validate({"escalation": {"at": at}})


def test_the_federation_sets_its_rules_in_the_policy_document() -> None:
    rules = PolicyDocument.model_validate(
        {"escalation": {"urgencies": ["critical", "high"], "at": [0.1, 0.5], "more_per_step": 2}}
    ).escalation.to_rules()
    assert rules == Escalation(frozenset({"critical", "high"}), (0.1, 0.5), 2.0, 1.5)
    with pytest.raises(ValidationError, match="urgencies"):
        PolicyDocument.model_validate({"escalation": {"urgencies": ["whenever"]}})
