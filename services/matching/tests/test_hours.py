"""Hours the donor logs and what counts of them (domain.hours)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from pitchin_core.errors import Refused
from pitchin_matching.domain.hours import (
    Confirmed,
    HoursConfirmation,
    HoursLog,
    HoursRefused,
    WorkHours,
    awaiting,
    check_can_log,
    confirm,
    counted,
    total,
)

NOW = datetime(2027, 10, 4, 12, 0, tzinfo=UTC)
ACCEPTED = NOW - timedelta(days=7)


def log(hours: float = 2.0, worked_on: date = date(2027, 10, 3), note: str = "") -> HoursLog:
    return HoursLog(worked_on=worked_on, hours=hours, note=note)


def test_hours_are_logged_on_confirmed_work_in_tenths() -> None:
    assert check_can_log("confirmed", ACCEPTED, log(2.46), 0.0, NOW) == 2.5
    for status in ("accepted", "completed", "released"):
        with pytest.raises(HoursRefused, match=status):
            check_can_log(status, ACCEPTED, log(), 0.0, NOW)


def test_bad_hours_name_the_field() -> None:
    for hours in (0, -1, 24.5):
        with pytest.raises(ValidationError, match="hours"):
            log(hours)
    with pytest.raises(Refused) as tiny:
        check_can_log("confirmed", ACCEPTED, log(0.04), 0.0, NOW)
    assert tiny.value.errors[0].field == "hours"


def test_no_day_holds_more_than_24_hours_across_all_the_donors_work() -> None:
    assert check_can_log("confirmed", ACCEPTED, log(4), 20.0, NOW) == 4.0
    with pytest.raises(Refused, match="more than 24 hours on 2027-10-03") as refused:
        check_can_log("confirmed", ACCEPTED, log(4.1), 20.0, NOW)
    assert refused.value.errors[0].field == "hours"


def test_the_day_worked_is_not_to_come_nor_before_the_work_was_taken_on() -> None:
    # UTC+14 is already tomorrow: that day may be logged, the day after not.
    assert check_can_log("confirmed", ACCEPTED, log(worked_on=date(2027, 10, 5)), 0.0, NOW) == 2.0
    cases = (date(2027, 10, 6), (ACCEPTED - timedelta(days=2)).date())
    for day in cases:
        with pytest.raises(Refused) as refused:
            check_can_log("confirmed", ACCEPTED, log(worked_on=day), 0.0, NOW)
        assert refused.value.errors[0].field == "worked_on"
    long_ago = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(Refused, match="180 days"):
        check_can_log("confirmed", long_ago, log(worked_on=date(2026, 3, 1)), 0.0, NOW)


def test_confirming_as_logged_or_adjusted_and_a_confirmed_log_is_final() -> None:
    assert confirm("logged", 3.0, None, HoursConfirmation(), 0.0) == Confirmed(3.0, adjusted=False, reason="")
    assert confirm("logged", 3.0, None, HoursConfirmation(hours=2.5, reason=" one break "), 0.0) == Confirmed(
        2.5, adjusted=True, reason="one break"
    )
    assert confirm("logged", 3.0, None, HoursConfirmation(hours=0), 0.0) == Confirmed(0.0, adjusted=True, reason="")
    assert confirm("confirmed", 3.0, 2.5, HoursConfirmation(hours=2.5), 0.0) is None, "a retried form"
    with pytest.raises(HoursRefused, match="other figures"):
        confirm("confirmed", 3.0, 2.5, HoursConfirmation(), 0.0)
    with pytest.raises(Refused) as over:
        confirm("logged", 3.0, None, HoursConfirmation(hours=5), 20.0)
    assert over.value.errors[0].field == "hours"
    with pytest.raises(ValidationError, match="hours"):
        HoursConfirmation(hours=-1)


def test_only_confirmed_hours_count_and_work_marked_done_counts_its_final_figure() -> None:
    in_progress = WorkHours("confirmed", None, confirmed_logs=3.0, pending_logs=2.0)
    assert (counted(in_progress), awaiting(in_progress)) == (3.0, 2.0)
    done = WorkHours("completed", 6.5, confirmed_logs=3.0, pending_logs=2.0)
    assert (counted(done), awaiting(done)) == (6.5, 0.0)
    released = WorkHours("released", None, confirmed_logs=1.5, pending_logs=0.0)
    assert counted(released) == 1.5, "confirmed hours stay counted when the work was later released"
    assert total([in_progress, done, released]) == 11.0
