"""Offers to donors and the assignments they become: produced by matching on
pitchin.matches.v1, keyed by need id."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import Field

from pitchin_core.contracts.common import Contract, EventData, Identifier, Label, Url


class ScoreComponent(Contract):
    name: Label
    points: float
    why: str = Field(max_length=1000)


class OfferFacts(EventData):
    offer_id: Identifier
    need_id: Identifier
    fight_id: Identifier
    donor_id: Identifier


class OfferMadeV1(OfferFacts):
    """An offer to a donor. The links carry a donor credential (an HMAC-signed, expiring token)
    scoped to this offer (accept/decline) or to the donor (their offers): email them, never log them."""

    event_type: ClassVar[str] = "org.pitchin.offer.made.v1"
    need_title: Label
    score: float
    explanation: list[ScoreComponent] = Field(default_factory=list, max_length=30)
    expires_at: datetime
    made_at: datetime
    deadline: datetime | None = None
    estimated_hours: float | None = None
    urgency: Label | None = None
    offer_token: str | None = Field(default=None, max_length=1000)
    accept_url: Url | None = None
    decline_url: Url | None = None
    offers_url: Url | None = None


class OfferAcceptedV1(OfferFacts):
    event_type: ClassVar[str] = "org.pitchin.offer.accepted.v1"
    accepted_at: datetime


class OfferDeclinedV1(OfferFacts):
    event_type: ClassVar[str] = "org.pitchin.offer.declined.v1"
    reason: str = Field(default="", max_length=1000)
    declined_at: datetime


class OfferExpiredV1(OfferFacts):
    event_type: ClassVar[str] = "org.pitchin.offer.expired.v1"
    expired_at: datetime


class OfferCancelledV1(OfferFacts):
    """Withdrawn by Pitch In: the need closed or filled, or the donor left."""

    event_type: ClassVar[str] = "org.pitchin.offer.cancelled.v1"
    reason: str = Field(max_length=1000)
    cancelled_at: datetime


class AssignmentConfirmedV1(OfferFacts):
    """The organiser confirmed the donor who accepted; the assignment's id is the offer's id."""

    event_type: ClassVar[str] = "org.pitchin.assignment.confirmed.v1"
    confirmed_at: datetime


class AssignmentCompletedV1(OfferFacts):
    """The organisation marked the work done: the hours the donor gave and its thanks to them."""

    event_type: ClassVar[str] = "org.pitchin.assignment.completed.v1"
    need_title: Label = ""
    hours_given: float = Field(ge=0, le=1000)
    thanks: str = Field(default="", max_length=2000)
    completed_at: datetime


class AssignmentReleasedV1(OfferFacts):
    event_type: ClassVar[str] = "org.pitchin.assignment.released.v1"
    reason: str = Field(default="", max_length=1000)
    released_at: datetime


# Hours the donor logs on confirmed work (issue 22); only confirmed hours count on their record.


class HoursLoggedV1(OfferFacts):
    """The donor logged time given on confirmed work (`offer_id` is the assignment's): not counted
    until the organisation confirms it."""

    event_type: ClassVar[str] = "org.pitchin.hours.logged.v1"
    log_id: Identifier
    worked_on: date
    hours: float = Field(gt=0, le=24)
    note: str = Field(default="", max_length=1000)
    logged_at: datetime


class HoursConfirmedV1(OfferFacts):
    """The organisation confirmed logged hours, as logged or adjusted: from now they count."""

    event_type: ClassVar[str] = "org.pitchin.hours.confirmed.v1"
    log_id: Identifier
    worked_on: date
    hours_logged: float = Field(gt=0, le=24)
    hours: float = Field(ge=0, le=24)
    adjusted: bool = False
    reason: str = Field(default="", max_length=1000)
    confirmed_at: datetime


class NeedEscalatedV1(EventData):
    """A step of an urgent need's escalation, for its organiser to see: the first wave asked,
    the ask widened as the deadline nears, a donor reclaimed from a normal need, or the others
    stood down once the places were filled. Keyed by the need, with its offers."""

    event_type: ClassVar[str] = "org.pitchin.need.escalated.v1"
    need_id: Identifier
    fight_id: Identifier
    step: int = Field(ge=0)
    kind: Literal["first-wave", "widened", "reclaimed", "stood-down"]
    detail: str = Field(default="", max_length=1000)
    offers_wanted: int = Field(default=0, ge=0, description="Offers in flight per free place after this step")
    at: datetime
