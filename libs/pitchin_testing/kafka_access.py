"""Kafka principals, ACLs and publisher topics on the local broker, made as its admin.

What each principal may do is `pitchin_core.kafka_auth`'s (derived from the topic table); this
module only applies it, for the tests and `make run` (in Kubernetes, Strimzi's KafkaUsers do).

Admin operations go through confluent-kafka's AdminClient: aiokafka 0.14 has no API for SCRAM
credentials or ACLs, and Kafka's Java CLIs cost a JVM start (1.3-2.4 s) per call, where
confluent-kafka takes ~0.07 s for a user and its ACLs (see the shared notes, kafka-security.md).
It is used here only, by the operator's tooling; no service depends on it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from pitchin_core.kafka_auth import (
    INGEST_PUBLISHER_PARTITIONS,
    Grant,
    KafkaCredentials,
    ingest_topic,
    publisher_grants,
    publisher_username,
    service_grants,
)

TIMEOUT_SECONDS = 30.0
SCRAM_ITERATIONS = 8192
# Kafka error codes an idempotent call may meet.
TOPIC_ALREADY_EXISTS = "TOPIC_ALREADY_EXISTS"
UNKNOWN_TOPIC = "UNKNOWN_TOPIC_OR_PART"
RESOURCE_NOT_FOUND = "RESOURCE_NOT_FOUND"

_RESOURCES = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactional-id": ResourceType.TRANSACTIONAL_ID,
    "cluster": ResourceType.BROKER,
}
_PATTERNS = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
_OPERATIONS = {
    "Read": AclOperation.READ,
    "Write": AclOperation.WRITE,
    "Describe": AclOperation.DESCRIBE,
    "Create": AclOperation.CREATE,
    "IdempotentWrite": AclOperation.IDEMPOTENT_WRITE,
    "Delete": AclOperation.DELETE,
}


def new_password() -> str:
    """Hex, 48 characters: passes the 32+ rule of secret settings outside local runs."""
    return secrets.token_hex(24)


def _wait(futures: Mapping[Any, Future[Any]], tolerated: Iterable[str] = ()) -> None:
    allowed = set(tolerated)
    for future in futures.values():
        try:
            future.result(timeout=TIMEOUT_SECONDS)
        except KafkaException as exc:
            error = exc.args[0]
            if error.name() not in allowed:
                raise


class KafkaAccess:
    """The admin's view of the broker: users, ACLs and topics."""

    def __init__(self, bootstrap: str, admin: KafkaCredentials) -> None:
        self.client = AdminClient(
            {
                "bootstrap.servers": bootstrap,
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": admin.username,
                "sasl.password": admin.password,
            }
        )

    # -- users ---------------------------------------------------------------------------------
    def set_user(self, username: str, password: str | None = None) -> KafkaCredentials:
        """Create the SCRAM user, or give it a new password (the old one stops working for new logins)."""
        password = password or new_password()
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
        upsert = UserScramCredentialUpsertion(username, info, password.encode())
        _wait(self.client.alter_user_scram_credentials([upsert]))
        return KafkaCredentials(username, password)

    def delete_user(self, username: str) -> None:
        """New logins fail at once; a connection already open keeps working until it closes."""
        deletion = UserScramCredentialDeletion(username, ScramMechanism.SCRAM_SHA_512)
        _wait(self.client.alter_user_scram_credentials([deletion]), tolerated=(RESOURCE_NOT_FOUND,))

    # -- ACLs ----------------------------------------------------------------------------------
    @staticmethod
    def _binding(username: str, grant: Grant) -> AclBinding:
        return AclBinding(
            _RESOURCES[grant.resource],
            "kafka-cluster" if grant.resource == "cluster" else grant.name,
            _PATTERNS[grant.pattern],
            f"User:{username}",
            "*",
            _OPERATIONS[grant.operation],
            AclPermissionType.ALLOW,
        )

    def grant(self, username: str, grants: Iterable[Grant]) -> None:
        bindings = [self._binding(username, g) for g in grants]
        if bindings:
            _wait(self.client.create_acls(bindings))

    def revoke(self, username: str, grants: Iterable[Grant]) -> None:
        """Takes effect on the principal's next request, on connections already open too."""
        filters = [
            AclBindingFilter(
                b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type
            )
            for b in (self._binding(username, g) for g in grants)
        ]
        if filters:
            _wait(self.client.delete_acls(filters))

    def acls_of(self, username: str) -> set[Grant]:
        """What the broker holds for `username` (to compare with what kafka_auth derives)."""
        found = self.client.describe_acls(
            AclBindingFilter(
                ResourceType.ANY,
                None,  # type: ignore[arg-type]  # None matches any name (librdkafka's filter)
                ResourcePatternType.ANY,
                f"User:{username}",
                None,  # type: ignore[arg-type]  # any host
                AclOperation.ANY,
                AclPermissionType.ANY,
            )
        ).result(timeout=TIMEOUT_SECONDS)
        resources = {v: k for k, v in _RESOURCES.items()}
        patterns = {v: k for k, v in _PATTERNS.items()}
        operations = {v: k for k, v in _OPERATIONS.items()}
        return {
            Grant(
                resources[b.restype],  # type: ignore[arg-type]
                b.name,
                patterns[b.resource_pattern_type],  # type: ignore[arg-type]
                operations[b.operation],  # type: ignore[arg-type]
            )
            for b in found
        }

    # -- topics --------------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int) -> None:
        topic = NewTopic(name, num_partitions=partitions, replication_factor=1)
        _wait(self.client.create_topics([topic]), tolerated=(TOPIC_ALREADY_EXISTS,))

    def delete_topic(self, name: str) -> None:
        _wait(self.client.delete_topics([name]), tolerated=(UNKNOWN_TOPIC,))

    # -- the principals of Pitch In ----------------------------------------------------------
    def provision_service(self, service: str) -> KafkaCredentials:
        """The service's principal with a fresh password and exactly the ACLs the topic table gives it."""
        credentials = self.set_user(service)
        stale = self.acls_of(service) - set(service_grants(service))
        self.revoke(service, stale)
        self.grant(service, service_grants(service))
        return credentials

    def provision_publisher(self, source: str) -> KafkaCredentials:
        """A publisher's principal, its own topic and the one ACL that lets it write there."""
        username = publisher_username(source)
        self.create_topic(ingest_topic(source), INGEST_PUBLISHER_PARTITIONS)
        credentials = self.set_user(username)
        self.grant(username, publisher_grants(source))
        return credentials

    def remove_publisher(self, source: str) -> None:
        """Cut a publisher off: its ACL first (an open connection is refused on its next request),
        then its credential (no new login), then its topic."""
        username = publisher_username(source)
        self.revoke(username, publisher_grants(source))
        self.delete_user(username)
        self.delete_topic(ingest_topic(source))
