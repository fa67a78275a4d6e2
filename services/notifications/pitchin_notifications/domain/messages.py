"""From a domain event to the messages it causes. Pure: templates are rendered by the caller."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.donors import DonorRegisteredV1
from pitchin_core.contracts.scheduling import EventCreatedV1


@dataclass(frozen=True)
class PlannedMessage:
    """A message to send: which template, to whom, on which channel, with what context."""

    template: str
    channel: str
    recipient: str
    language: str
    context: dict[str, Any] = field(default_factory=dict)

    def idempotency_key(self, event_id: str) -> str:
        return f"{event_id}:{self.recipient.lower()}:{self.channel}"


def plan_messages(data: EventData, *, public_base_url: str) -> list[PlannedMessage]:
    if isinstance(data, DonorRegisteredV1):
        if not data.contact.email:
            return []
        return [
            PlannedMessage(
                template="donor_welcome",
                channel="email",
                recipient=str(data.email),
                language=data.contact.language,
                context={
                    "name": data.name,
                    "skills": [s.skill.replace("-", " ") for s in data.skills],
                    "profile_url": f"{public_base_url}/donors/{data.donor_id}",
                },
            )
        ]
    if isinstance(data, EventCreatedV1):
        return [
            PlannedMessage(
                template="event_created",
                channel="email",
                recipient=str(data.organiser_email),
                language="en",
                context={
                    "title": data.title,
                    "starts_at": data.starts_at.isoformat(),
                    "time_zone": data.time_zone,
                    "venue": data.venue_name or "online",
                    "event_url": f"{public_base_url}/events/{data.event_id}",
                    "calendar_url": f"{public_base_url}/v1/events/{data.event_id}.ics",
                },
            )
        ]
    return []


def message_id(idempotency_key: str, domain: str) -> str:
    """The same Message-ID for every attempt, so a mail client folds a repeat into one."""
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


def next_attempt(now: datetime, attempts: int, rng: random.Random, base: float = 2.0, cap: float = 900.0) -> datetime:
    """Exponential backoff with full jitter (AWS architecture blog's variant)."""
    ceiling = min(cap, base * (2 ** max(attempts - 1, 0)))
    return now + timedelta(seconds=rng.uniform(base / 2, max(ceiling, base / 2)))
