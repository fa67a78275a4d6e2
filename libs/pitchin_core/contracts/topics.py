"""The one table of topics: it drives subscriber wiring, the AsyncAPI document and the README.

Each topic carries the event types of one domain module in `pitchin_core.contracts`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pitchin_core.contracts import bookings, donors, fights, ingest, keys, matching, privacy, publishers, scheduling
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.registry import declared_in

# Partitions of an event topic: no consumer group can usefully run more consumers than this
# (the rest stay idle). Locally `REPLICAS=2 make run` runs 2 processes x 2 workers = 4
# consumers per group; 12 gives 1, 2, 3, 4 or 6 of them an even share and leaves room. The
# chart takes at least these counts (kafka.topics.defaults, sized for maxReplicas x workers).
EVENT_TOPIC_PARTITIONS = 12
# A dead-letter topic is read by people replaying it, never by a scaled-out group: one.
DEAD_LETTER_PARTITIONS = 1


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    producer: str
    consumers: tuple[str, ...]
    event_types: tuple[type[EventData], ...]
    partitions: int = EVENT_TOPIC_PARTITIONS
    description: str = ""
    # The services that write to the topic, when that is not just `producer`: their Kafka
    # credentials (chart KafkaUsers) must allow it.
    writers: tuple[str, ...] = ()
    # Read outside Pitch In only (no consumer group here, so no dead-letter topic): who and why.
    read_outside: str = ""

    def written_by(self, service: str) -> bool:
        return service in (self.writers or (self.producer,))

    def dead_letter(self, consumer_group: str) -> str:
        return dead_letter_topic(self.name, consumer_group)


def dead_letter_topic(topic: str, consumer_group: str) -> str:
    return f"{topic}.{consumer_group}.dlq"


DONORS = TopicSpec(
    name="pitchin.donors.v1",
    key="donor id",
    producer="signups",
    consumers=("matching", "notifications"),
    event_types=declared_in(donors),
    description="Knowledge donors joining, changing and leaving.",
)
NEEDS = TopicSpec(
    name="pitchin.needs.v1",
    key="need id (fight events: fight id)",
    producer="signups",
    consumers=("matching", "notifications"),
    event_types=declared_in(fights),
    description="Fights of member organisations and the skills they need.",
)
BOOKINGS = TopicSpec(
    name="pitchin.bookings.v1",
    key="event id",
    producer="signups",
    consumers=("notifications", "scheduling"),
    event_types=declared_in(bookings),
    description="Places at events: confirmed, waitlisted, freed ones offered to the waitlist, cancelled.",
)
MATCHES = TopicSpec(
    name="pitchin.matches.v1",
    key="need id",
    producer="matching",
    consumers=("signups", "notifications"),
    event_types=declared_in(matching),
    description="Offers to donors and the assignments they become.",
)
EVENTS = TopicSpec(
    name="pitchin.events.v1",
    key="event id",
    producer="scheduling",
    consumers=("signups", "notifications"),
    event_types=declared_in(scheduling),
    description="Training events, panels, livestreams and meet-ups, their changes and reminders.",
    # A few hundred a day per federation (a reminder is one record; its fan-out is notifications'):
    # 6 is what production's chart values give it.
    partitions=6,
)

INGEST = TopicSpec(
    name=ingest.TOPIC,
    key="source id (ce_source)",
    producer="other-systems",
    # signups relays what the HTTP door accepted for scheduling's types through its outbox.
    writers=("signups",),
    consumers=("signups", "scheduling"),
    event_types=ingest.PUBLISHABLE,
    description="What other systems publish into Pitch In (docs/ingest.md): people, fights, events, RSVPs.",
)
INGEST_REJECTIONS = TopicSpec(
    name=ingest.REJECTIONS_TOPIC,
    key="source id (ce_source)",
    producer="signups-and-scheduling",
    writers=("signups", "scheduling"),
    consumers=(),
    read_outside="the publishers, each reading the records keyed by its own source",
    event_types=(ingest.IngestRejectedV1,),
    description="Published events Pitch In refused, with the original id and the reasons: read by their publishers.",
)
PUBLISHERS = TopicSpec(
    name=publishers.TOPIC,
    key="source id",
    producer="signups",
    consumers=("scheduling",),
    event_types=declared_in(publishers),
    description="Publishing systems registered and revoked by federation staff (scope only, never credentials).",
)

API_KEYS = TopicSpec(
    name=keys.TOPIC,
    key="key id",
    producer="signups",
    consumers=("matching", "notifications", "scheduling"),
    event_types=declared_in(keys),
    # A handful a day per federation; keyed by key id, so each key's facts stay in order.
    partitions=3,
    description="API keys issued, rotated and revoked by federation staff (their hashes and scope, never the keys).",
)

# Every service that holds people reads the request and answers on the same topic; signups
# (which asks) reads the answers. Ids and a keyed hash only, never an address (contracts.privacy).
PRIVACY = TopicSpec(
    name=privacy.TOPIC,
    key="erasure request id",
    producer="signups",
    writers=("signups", "matching", "notifications", "scheduling"),
    consumers=("signups", "matching", "notifications", "scheduling"),
    event_types=declared_in(privacy),
    # A handful a day per federation; keyed by request, so a request and its answers stay in order.
    partitions=3,
    description="Erasure requests for a person (by ids and a keyed hash of their email) and each service's answer.",
)

TOPICS: tuple[TopicSpec, ...] = (
    DONORS,
    NEEDS,
    BOOKINGS,
    MATCHES,
    EVENTS,
    INGEST,
    INGEST_REJECTIONS,
    PUBLISHERS,
    API_KEYS,
    PRIVACY,
)


def topic_for(event_type: type[EventData]) -> TopicSpec:
    for spec in TOPICS:
        if event_type in spec.event_types:
            return spec
    raise LookupError(f"no topic carries {event_type.event_type}")


def consumed_by(service: str) -> tuple[TopicSpec, ...]:
    return tuple(spec for spec in TOPICS if service in spec.consumers)


def all_topic_names() -> list[str]:
    """Every topic a cluster needs, dead-letter topics included."""
    return list(all_topic_partitions())


def all_topic_partitions() -> dict[str, int]:
    """Every topic a cluster needs, dead-letter topics included, and its partition count:
    what `kafka_admin.ensure_topics` creates locally and the least the chart may give."""
    partitions: dict[str, int] = {}
    for spec in TOPICS:
        partitions[spec.name] = spec.partitions
        partitions.update((spec.dead_letter(group), DEAD_LETTER_PARTITIONS) for group in spec.consumers)
    return partitions
