"""A series' RRULE is checked before it is expanded: no rule a member sends can hold the event loop."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from pitchin_scheduling.domain.events import EventRefused
from pitchin_scheduling.domain.series import MAX_OCCURRENCES, SeriesDraft, occurrences

NOW = datetime(2027, 1, 1, 12, tzinfo=UTC)
EVENT: dict[str, Any] = {
    "kind": "training",
    "title": "Steward training",
    "starts_at": "2027-01-05T18:00:00",
    "ends_at": "2027-01-05T19:00:00",
    "time_zone": "Europe/London",
    "venue_name": "Hall",
    "organiser_email": "e@example.org",
}
# CPU time, not wall time: the box is shared, and what matters is how long the loop is held.
BUDGET_SECONDS = 0.05


def _expand_once(rule: str, event: dict[str, Any]) -> tuple[list[Any] | EventRefused, float]:
    began = time.thread_time()
    try:
        result: list[Any] | EventRefused = occurrences(SeriesDraft.model_validate({"event": event, "rrule": rule}), NOW)
    except EventRefused as refused:
        result = refused
    return result, time.thread_time() - began


def _expand(rule: str, event: dict[str, Any] = EVENT, runs: int = 3) -> tuple[list[Any] | EventRefused, float]:
    """The rule's result and the least CPU it took over `runs` runs: a runaway rule is slow every
    time, while a garbage collection or a busy neighbour only slows one run."""
    results = [_expand_once(rule, event) for _ in range(runs)]
    return results[0][0], min(spent for _, spent in results)


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=SECONDLY;COUNT=200000",  # measured: 0.5 s of the event loop before this check
        "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30",  # measured: 9 s searching to the year 9999
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",  # measured: 6 s
        "FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=2,4",
        "FREQ=MONTHLY;BYMONTHDAY=1;BYDAY=5MO",
        "FREQ=WEEKLY;BYDAY=MO;BYSETPOS=5",
        "FREQ=DAILY;INTERVAL=7;BYDAY=TU",
        "FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=30",
        "FREQ=DAILY;COUNT=1000",
        "FREQ=DAILY;BYHOUR=1,2,3",
        "FREQ=WEEKLY;FREQ=DAILY",
    ],
)
def test_a_runaway_rule_is_refused_on_the_rrule_field_within_the_budget(rule: str) -> None:
    result, spent = _expand(rule)
    assert isinstance(result, EventRefused), f"{rule} was expanded to {len(result)} occurrences"
    assert result.field == "rrule"
    assert spent < BUDGET_SECONDS, f"{rule} took {spent * 1000:.1f} ms of CPU"


def test_a_series_starting_in_1900_is_refused_before_any_walk() -> None:
    old = {**EVENT, "starts_at": "1900-01-02T18:00:00", "ends_at": "1900-01-02T19:00:00"}
    result, spent = _expand("FREQ=DAILY", old)
    assert isinstance(result, EventRefused) and result.field == "event.starts_at"
    assert spent < BUDGET_SECONDS


def test_the_rules_calendars_make_still_work() -> None:
    for rule, expected in [
        ("FREQ=WEEKLY;BYDAY=TU;COUNT=6", 6),
        ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=12", 12),
        ("FREQ=MONTHLY;BYDAY=1TU;COUNT=3", 3),
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;COUNT=8", 8),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", 0),  # no leap day in the coming year
        ("FREQ=DAILY", MAX_OCCURRENCES),
    ]:
        result, _ = _expand(rule)
        if expected == 0:
            assert isinstance(result, EventRefused), rule
        else:
            assert not isinstance(result, EventRefused) and len(result) == expected, (rule, result)


def test_no_rule_the_grammar_allows_holds_the_loop() -> None:
    """Thousands of rules drawn from every part taken here: each is answered within the budget."""
    rng = random.Random(23)
    weekdays = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
    slowest, slowest_rule = 0.0, ""
    for _ in range(3000):
        parts = [f"FREQ={rng.choice(['DAILY', 'WEEKLY', 'MONTHLY', 'YEARLY'])}"]
        if rng.random() < 0.4:
            parts.append(f"INTERVAL={rng.randint(1, 52)}")
        if rng.random() < 0.5:
            days = rng.sample(weekdays, rng.randint(1, 3))
            parts.append("BYDAY=" + ",".join(rng.choice(["", "1", "-1", "5", "-5", "3"]) + d for d in days))
        if rng.random() < 0.4:
            parts.append("BYMONTH=" + ",".join(str(m) for m in rng.sample(range(1, 13), rng.randint(1, 2))))
        if rng.random() < 0.4:
            parts.append(f"BYMONTHDAY={rng.choice([1, 15, 28, 29, 30, 31, -1, -29])}")
        if rng.random() < 0.3:
            parts.append(f"BYSETPOS={rng.choice([1, 2, -1, 5, -5])}")
        if rng.random() < 0.3:
            parts.append(f"COUNT={rng.randint(1, 100)}")
        rule = ";".join(parts)
        _, spent = _expand(rule, runs=1)
        if spent > slowest:
            slowest, slowest_rule = spent, rule
    # The slowest of 3,000 single runs may have met a collection: measured again, at its best.
    _, slowest = _expand(slowest_rule, runs=5)
    assert slowest < BUDGET_SECONDS, f"{slowest_rule} took {slowest * 1000:.1f} ms of CPU"
