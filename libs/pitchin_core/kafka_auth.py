"""Who a Kafka client is and what it may do: SASL/SCRAM credentials and the ACLs of each principal.

Every client (each service's broker, relay producer, lag reader and admin client, the test
tooling, `make run`) authenticates with SCRAM-SHA-512 as its own principal. What each principal
may do is derived here from the one topic table (`pitchin_core.contracts.topics`), never kept
as a hand list: the local broker (pitchin_testing) creates exactly these ACLs, and the chart's
Strimzi KafkaUsers are tested against them.

Publishers (other systems, docs/ingest.md) each write their own topic
`pitchin.ingest.v1.<slug>`, with an exact-name WRITE ACL: the topic name is the proof of who
wrote a record, because Kafka stamps no producer identity on records and a `ce_source` header
is whatever the client sent. The ingest consumers read every publisher's topic through a prefix
READ ACL and a pattern subscription.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pitchin_core.contracts import topics

if TYPE_CHECKING:
    from pitchin_core.settings import ServiceSettings

SCRAM_MECHANISM = "SCRAM-SHA-512"

# Each registered publisher's own topic; the base topic `pitchin.ingest.v1` stays, written only
# by signups (what its HTTP door accepted for scheduling, relayed through its outbox).
INGEST_PUBLISHER_PREFIX = f"{topics.INGEST.name}."
# The base topic and every publisher topic, but no dead-letter topic (`….<group>.dlq` has a dot
# more) and no other topic: what the ingest consumers subscribe to.
INGEST_SUBSCRIPTION = rf"^{re.escape(topics.INGEST.name)}(\.[a-z0-9][a-z0-9-]*)?$"
_PUBLISHER_TOPIC = re.compile(rf"^{re.escape(INGEST_PUBLISHER_PREFIX)}[a-z0-9][a-z0-9-]*$")
# A publisher's records are keyed by its source: one partition keeps them in order and costs
# the cluster one partition per publisher, not twelve.
INGEST_PUBLISHER_PARTITIONS = 1
# How soon a pattern subscription sees a publisher's new topic (aiokafka's default is 5 minutes;
# 3 s measured 1.5 s from topic creation to the first record consumed, see the shared notes).
METADATA_MAX_AGE_MS = 3000
# The service that deletes what every ingest consumer has applied from the ingest topics, which
# hold people in clear as publishers sent them (issue 19; pitchin_signups.ingest_trim).
INGEST_TRIMMER = "signups"


@dataclass(frozen=True)
class KafkaCredentials:
    """A SCRAM principal. `repr` leaves the password out: these end up in logs and reprs of settings."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"KafkaCredentials(username={self.username!r})"


def kafka_credentials(settings: ServiceSettings) -> KafkaCredentials | None:
    """The service's principal from PITCHIN_KAFKA_USERNAME / PITCHIN_KAFKA_PASSWORD, if set."""
    if not settings.kafka_username:
        return None
    return KafkaCredentials(settings.kafka_username, settings.kafka_password)


def client_options(bootstrap: str, credentials: KafkaCredentials | None) -> dict[str, Any]:
    """aiokafka's keyword arguments (producer, consumer, admin client) for one principal.

    Without credentials the client speaks PLAINTEXT: only a broker without authentication takes
    that (none that Pitch In starts; the tests use it to show it is refused)."""
    options: dict[str, Any] = {"bootstrap_servers": bootstrap}
    if credentials is not None:
        options.update(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism=SCRAM_MECHANISM,
            sasl_plain_username=credentials.username,
            sasl_plain_password=credentials.password,
        )
    return options


def ingest_topic(source: str) -> str:
    """The topic a publisher writes: a readable slug of its source and a hash of the whole source.

    A source is a URI (`/crm/acme`, `urn:crm:acme`), which has characters a topic name cannot
    have; the hash keeps two sources that slug alike (`/crm/a.b`, `/crm/a-b`) on two topics.
    Topic names are at most 249 characters; the slug is cut to leave room.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-")[:160] or "source"
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]
    return f"{INGEST_PUBLISHER_PREFIX}{slug}-{digest}"


def is_publisher_topic(topic: str) -> bool:
    return bool(_PUBLISHER_TOPIC.match(topic))


def topic_of_record(topic: str) -> str:
    """The topic-table topic a record's topic belongs to: a publisher's topic is `pitchin.ingest.v1`'s
    (its records share that topic's dead-letter topic, one per consumer group)."""
    return topics.INGEST.name if is_publisher_topic(topic) else topic


Resource = Literal["topic", "group", "transactional-id", "cluster"]
Pattern = Literal["literal", "prefixed"]
Operation = Literal["Read", "Write", "Describe", "Create", "IdempotentWrite", "Delete"]


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL of a principal: `operation` on the `resource` named `name` (`pattern`)."""

    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation


def service_grants(service: str) -> tuple[Grant, ...]:
    """What a service's principal may do, from the topic table.

    - WRITE the topics it writes (`TopicSpec.written_by`) and the dead-letter topic of each topic
      it consumes (its group's);
    - READ the topics it consumes, as consumer group `<service>` (the group is the service's
      name, `Runtime.subscribe`); a consumer of `pitchin.ingest.v1` reads every publisher's
      topic too (prefix ACL);
    - no CREATE: the operator (the admin principal, Strimzi's topic operator) makes topics, so a
      service cannot make a topic that another principal's prefix ACL would then cover.

    READ and WRITE imply DESCRIBE (metadata, committed offsets for the lag gauges); WRITE on a
    topic implies IDEMPOTENT_WRITE. No transactional ids: no client uses transactions.
    """
    grants: set[Grant] = set()
    for spec in topics.TOPICS:
        if spec.written_by(service):
            grants.add(Grant("topic", spec.name, "literal", "Write"))
        if service in spec.consumers:
            grants.add(Grant("topic", spec.name, "literal", "Read"))
            grants.add(Grant("topic", spec.dead_letter(service), "literal", "Write"))
            if spec is topics.INGEST:
                grants.add(Grant("topic", INGEST_PUBLISHER_PREFIX, "prefixed", "Read"))
    if any(service in spec.consumers for spec in topics.TOPICS):
        grants.add(Grant("group", service, "literal", "Read"))
    if service == INGEST_TRIMMER:
        # DeleteRecords on the ingest topics, up to what every ingest consumer group has
        # committed, which it reads with DESCRIBE on those groups. The prefix also covers the
        # ingest dead-letter topics; the trimmer deletes only from the base and publisher topics.
        grants.add(Grant("topic", topics.INGEST.name, "literal", "Delete"))
        grants.add(Grant("topic", INGEST_PUBLISHER_PREFIX, "prefixed", "Delete"))
        grants |= {Grant("group", g, "literal", "Describe") for g in topics.INGEST.consumers if g != service}
    return tuple(sorted(grants))


def publisher_grants(source: str) -> tuple[Grant, ...]:
    """A publisher may write its own topic and nothing else. LITERAL: a prefix ACL on its topic
    would also cover a topic whose slug starts the same (`…-acme` and `…-acmecorp`)."""
    return (Grant("topic", ingest_topic(source), "literal", "Write"),)


def publisher_username(source: str) -> str:
    """A publisher's principal: its topic's slug (SCRAM user names are safest without URI characters)."""
    return "publisher-" + ingest_topic(source).removeprefix(INGEST_PUBLISHER_PREFIX)
