"""Offers to donors and the assignments they become: produced by matching on
pitchin.matches.v1, keyed by need id."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

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
