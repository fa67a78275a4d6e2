"""Hours the donor logs on confirmed work, and what counts of them: pure rules, no I/O, `now` passed in.

A donor logs time given on a day, with a note, on work the organisation confirmed. The hours
count (on the donor's record and in the federation's totals) only once the organisation
confirmed them, as logged or adjusted. Work marked done carries the organisation's final figure
for the whole of it (`hours_given`), which then stands instead of its logs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pydantic import Field

from pitchin_core.contracts.common import Contract
from pitchin_core.errors import Conflict, Refused

# The most anyone gives in a day, across all their work.
DAY_HOURS = 24.0
# A day "today" somewhere on Earth: UTC+14 is the furthest ahead, so a donor there may log a day
# that is still tomorrow in UTC.
AHEAD_OF_UTC = timedelta(hours=14)
# How far back a donor may log: a slip of memory is fine, a year-old claim is not this form's job.
OLDEST_LOG = timedelta(days=180)


def tenths(hours: float) -> float:
    """The record keeps tenths of an hour (as marking work done does)."""
    return round(hours + 1e-9, 1)


class HoursLog(Contract):
    """The donor's own account of time given on a day."""

    worked_on: date = Field(description="The day the donor worked (their own calendar day)")
    hours: float = Field(gt=0, le=DAY_HOURS, description="Hours given that day, to a tenth of an hour")
    # No NUL: PostgreSQL cannot store it.
    note: str = Field(default="", max_length=1000, pattern=r"^[^\x00]*$", description="What was done")


class HoursConfirmation(Contract):
    """The organisation confirms logged hours; `hours` adjusts them (0: none of it counts)."""

    hours: float | None = Field(default=None, ge=0, le=DAY_HOURS, description="The hours to count, if not as logged")
    reason: str = Field(default="", max_length=1000, pattern=r"^[^\x00]*$", description="Why, told to the donor")


class HoursRefused(Conflict):
    """The work or the log is not in a state where this can be done."""

    default_title = "Hours refused"


def check_can_log(
    assignment_status: str,
    accepted_at: datetime,
    log: HoursLog,
    logged_that_day: float,
    now: datetime,
) -> float:
    """The hours to store for `log` (in tenths), or the refusal naming the field.

    `logged_that_day`: what the donor already logged for that day on any of their work (each
    log's confirmed hours once confirmed), so no day holds more than 24 hours.
    """
    if assignment_status != "confirmed":
        raise HoursRefused(f"Hours are logged on confirmed work; this work is {assignment_status}.")
    hours = tenths(log.hours)
    if hours <= 0:
        raise Refused("hours", "at least a tenth of an hour")
    latest = (now + AHEAD_OF_UTC).date()
    if log.worked_on > latest:
        raise Refused("worked_on", "a day still to come")
    # A day before the donor took the work on (a day's grace for their time zone) is not this work's.
    if log.worked_on < (accepted_at - timedelta(days=1)).date():
        raise Refused("worked_on", "before the donor took this work on")
    if log.worked_on < (now - OLDEST_LOG).date():
        raise Refused("worked_on", f"more than {OLDEST_LOG.days} days ago")
    if tenths(logged_that_day + hours) > DAY_HOURS:
        already = tenths(logged_that_day)
        raise Refused(
            "hours", f"more than {DAY_HOURS:g} hours on {log.worked_on.isoformat()} ({already:g} logged already)"
        )
    return hours


@dataclass(frozen=True)
class Confirmed:
    """What a confirmation stores: the hours that count, and whether they differ from the log."""

    hours: float
    adjusted: bool
    reason: str


def confirm(
    status: str,
    hours_logged: float,
    hours_confirmed: float | None,
    confirmation: HoursConfirmation,
    others_that_day: float,
) -> Confirmed | None:
    """What confirming a log stores (None: it was confirmed so already, a retried form).

    Confirmed hours are final: other figures for a confirmed log are a conflict, not a rewrite.
    `others_that_day`: the donor's other logs that day, so an adjustment upwards keeps the day within 24 hours.
    """
    hours = tenths(confirmation.hours) if confirmation.hours is not None else tenths(hours_logged)
    reason = confirmation.reason.strip()
    if status == "confirmed":
        if hours_confirmed is not None and tenths(hours_confirmed) == hours:
            return None
        raise HoursRefused("These hours were confirmed already with other figures.", title="Hours confirmed")
    if hours > hours_logged and tenths(others_that_day + hours) > DAY_HOURS:
        raise Refused("hours", f"more than {DAY_HOURS:g} hours in the day with the donor's other logs")
    return Confirmed(hours=hours, adjusted=hours != tenths(hours_logged), reason=reason)


@dataclass(frozen=True)
class WorkHours:
    """One piece of work as the record counts it."""

    status: str  # the assignment's
    hours_given: float | None  # the organisation's final figure, once marked done
    confirmed_logs: float  # confirmed hours logged on it
    pending_logs: float  # logged, not confirmed yet


def counted(work: WorkHours) -> float:
    """What one piece of work adds to the record: the final figure once done, else its confirmed logs."""
    if work.status == "completed" and work.hours_given is not None:
        return tenths(work.hours_given)
    return tenths(work.confirmed_logs)


def awaiting(work: WorkHours) -> float:
    """Hours logged on it that the organisation has still to confirm (none once it is marked done)."""
    return 0.0 if work.status == "completed" else tenths(work.pending_logs)


def total(works: Iterable[WorkHours]) -> float:
    return tenths(sum(counted(w) for w in works))
