"""A person's erasure (issue 19): requested in signups on pitchin.privacy.v1, keyed by request id;
every service that holds the person erases its part and says so on the same topic.

The request never carries the person's email, name or phone in clear: Kafka keeps records for
days (and dead-letter topics for months), longer than an erasure may take. It carries the
ids signups knows the person by and a keyed hash of their email (HMAC-SHA256 with a key
derived from the platform's donor-link secret, `pitchin_core.erasure`), by which a service finds
rows that hold the address but no id (a mail to someone who only RSVPed, a calendar feed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import Field

from pitchin_core.contracts.common import EventData, Identifier, Slug

TOPIC = "pitchin.privacy.v1"

PersonHash = Annotated[
    str,
    Field(
        min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$", description="HMAC-SHA256 of the lower-cased email, hex"
    ),
]
# A person's bookings over the years: bounded so the event stays far below Kafka's 1 MB.
MAX_BOOKINGS = 5000
MAX_DONORS = 50
MAX_TABLES = 40
TableName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]


class ErasureRequestedV1(EventData):
    """Forget this person: every service erases or anonymises each row that holds them, then
    answers with `erasure.completed`. Counts and hours stay, no longer attached to anyone."""

    event_type: ClassVar[str] = "org.pitchin.privacy.erasure-requested.v1"
    request_id: Identifier
    person_hash: PersonHash
    donor_ids: list[Identifier] = Field(default_factory=list, max_length=MAX_DONORS)
    booking_ids: list[Identifier] = Field(default_factory=list, max_length=MAX_BOOKINGS)
    pending_ids: list[Identifier] = Field(
        default_factory=list, max_length=MAX_DONORS, description="Sign-ups held for confirmation"
    )
    requested_at: datetime


class ErasureCompletedV1(EventData):
    """One service erased its part of a request: how many rows, per table, it erased or anonymised."""

    event_type: ClassVar[str] = "org.pitchin.privacy.erasure-completed.v1"
    request_id: Identifier
    service: Slug
    counts: dict[TableName, Annotated[int, Field(ge=0)]] = Field(default_factory=dict, max_length=MAX_TABLES)
    completed_at: datetime
