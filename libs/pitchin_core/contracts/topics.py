"""The one table of topics: it drives subscriber wiring, the AsyncAPI document and the README."""

from __future__ import annotations

from dataclasses import dataclass

from pitchin_core.contracts.events import DonorRegisteredV1, EventCreatedV1, EventData


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    producer: str
    consumers: tuple[str, ...]
    event_types: tuple[type[EventData], ...]
    partitions: int = 3
    description: str = ""

    def dead_letter(self, consumer_group: str) -> str:
        return dead_letter_topic(self.name, consumer_group)


def dead_letter_topic(topic: str, consumer_group: str) -> str:
    return f"{topic}.{consumer_group}.dlq"


DONORS = TopicSpec(
    name="pitchin.donors.v1",
    key="donor id",
    producer="signups",
    consumers=("matching", "notifications"),
    event_types=(DonorRegisteredV1,),
    description="Knowledge donors joining, changing and leaving.",
)
EVENTS = TopicSpec(
    name="pitchin.events.v1",
    key="event id",
    producer="scheduling",
    consumers=("signups", "notifications"),
    event_types=(EventCreatedV1,),
    description="Training events, panels, livestreams and meet-ups, and their changes.",
)

TOPICS: tuple[TopicSpec, ...] = (DONORS, EVENTS)


def topic_for(event_type: type[EventData]) -> TopicSpec:
    for spec in TOPICS:
        if event_type in spec.event_types:
            return spec
    raise LookupError(f"no topic carries {event_type.event_type}")


def consumed_by(service: str) -> tuple[TopicSpec, ...]:
    return tuple(spec for spec in TOPICS if service in spec.consumers)


def all_topic_names() -> list[str]:
    """Every topic a cluster needs, dead-letter topics included."""
    names: list[str] = []
    for spec in TOPICS:
        names.append(spec.name)
        names.extend(spec.dead_letter(group) for group in spec.consumers)
    return names
