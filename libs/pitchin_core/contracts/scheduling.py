"""Events of organisations (training, panels, livestreams, meet-ups): produced by scheduling
on pitchin.events.v1."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import EmailStr, Field

from pitchin_core.contracts.common import EventData, Identifier, TimeZoneName


class EventKind(StrEnum):
    conference = "conference"
    training = "training"
    panel = "panel"
    livestream = "livestream"
    book_launch = "book-launch"
    meet_up = "meet-up"
    action = "action"


class EventCreatedV1(EventData):
    event_type: ClassVar[str] = "org.pitchin.event.created.v1"
    event_id: Identifier
    kind: EventKind
    title: str = Field(min_length=1, max_length=200)
    starts_at: datetime
    ends_at: datetime
    time_zone: TimeZoneName
    venue_name: str | None = None
    online_url: str | None = None
    capacity: int | None = Field(default=None, ge=1)
    free_places: bool = True
    organiser_email: EmailStr
