"""The core pieces every use case stands on: the fake unit of work, domain errors, signing, secret settings."""

from __future__ import annotations

import time

import pytest

from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.errors import Conflict, FieldError, Invalid, NotFound, Refused, Unavailable
from pitchin_core.settings import ServiceSettings, local_secret
from pitchin_core.signing import (
    BadToken,
    new_webhook_secret,
    read_expiring,
    seal,
    sign_expiring,
    unseal,
    verify_webhook,
    webhook_signature,
)
from pitchin_core.uow import FakeUnitOfWork, Tenant


def _event(ident: str) -> CloudEvent:
    return CloudEvent(id=ident, source="/test", type="org.pitchin.test.v1", data={})


async def test_after_commit_runs_only_when_the_block_commits() -> None:
    uow = FakeUnitOfWork()
    ran: list[str] = []
    async with uow(Tenant("fed-1")) as tx:
        tx.after_commit(lambda: ran.append("committed"))
    with pytest.raises(Conflict):
        async with uow(Tenant("fed-1")) as tx:
            tx.after_commit(lambda: ran.append("rolled back"))
            raise Conflict("no")
    assert ran == ["committed"]
    assert uow.rolled_back == 1
    assert uow.tenants == [Tenant("fed-1"), Tenant("fed-1")]


async def test_a_redelivered_event_is_not_a_first_delivery_once_committed() -> None:
    uow = FakeUnitOfWork()
    async with uow() as tx:
        assert await tx.first_delivery(_event("e-1"))
    async with uow() as tx:
        assert not await tx.first_delivery(_event("e-1"))
    # A rolled-back claim is forgotten, as the real inbox row would be.
    with pytest.raises(RuntimeError):
        async with uow() as tx:
            assert await tx.first_delivery(_event("e-2"))
            raise RuntimeError
    async with uow() as tx:
        assert await tx.first_delivery(_event("e-2"))


async def test_the_fake_has_no_database() -> None:
    async with FakeUnitOfWork()() as tx:
        with pytest.raises(AssertionError, match="no database"):
            await tx.conn.fetch("SELECT 1")


def test_domain_errors_answer_as_problem_details() -> None:
    refused = Refused("skills.0.skill", "not in the federation's skills", title="Sign-up refused")
    assert refused.problem_body() == {
        "type": "tag:pitchin.example,2026:problems/validation",
        "title": "Sign-up refused",
        "status": 422,
        "detail": "skills.0.skill: not in the federation's skills",
        "errors": [{"field": "skills.0.skill", "message": "not in the federation's skills"}],
    }
    assert str(refused) == "not in the federation's skills"
    assert NotFound("event", "ev_1").problem_body()["detail"] == "No event ev_1 here."
    clash = Conflict("Booked twice", title="Booked twice", kind="/problems/clash", clashes=[{"what": "room"}])
    assert clash.problem_body()["clashes"] == [{"what": "room"}]
    assert clash.status == 409
    many = Invalid([FieldError("a", "x"), FieldError("b", "y")])
    assert many.problem_body()["detail"] == "These fields are not valid: a, b"
    assert Unavailable("catching up", retry_after=2).retry_after == 2


def test_expiring_tokens_open_only_their_own_kind_until_they_expire() -> None:
    now = time.time()
    token = sign_expiring("s" * 32, ["v1", "offer", "of_1.2"], int(now) + 60)
    assert read_expiring("s" * 32, token, now, prefix=["v1", "offer"]) == ("of_1.2", int(now) + 60)
    with pytest.raises(BadToken, match="kind"):
        read_expiring("s" * 32, token, now, prefix=["v1", "donor"])
    with pytest.raises(BadToken, match="signature"):
        read_expiring("t" * 32, token, now, prefix=["v1", "offer"])
    with pytest.raises(BadToken, match="expired"):
        read_expiring("s" * 32, token, now + 61, prefix=["v1", "offer"])
    with pytest.raises(BadToken, match="signature"):
        read_expiring("s" * 32, token.replace("of_1.2", "of_9.2"), now, prefix=["v1", "offer"])
    with pytest.raises(ValueError):
        sign_expiring("s" * 32, ["v.1", "x"], 1)


def test_sealed_bodies_cannot_be_changed() -> None:
    token = seal(b"key", "body.with.dots", length=16)
    assert unseal(b"key", token, length=16) == "body.with.dots"
    with pytest.raises(BadToken):
        unseal(b"key", "other" + token, length=16)


def test_standard_webhooks_signatures_verify_and_expire() -> None:
    secret = new_webhook_secret(b"0" * 24)
    signature = webhook_signature(secret, "msg_1", 1_700_000_000, b"{}")
    assert verify_webhook(secret, "msg_1", "1700000000", b"{}", f"v1,bogus {signature}", 1_700_000_010) is None
    assert verify_webhook(secret, "msg_1", "1700000000", b"{ }", signature, 1_700_000_010) is not None
    late = verify_webhook(secret, "msg_1", "1700000000", b"{}", signature, 1_700_001_000)
    assert late is not None and late.startswith("webhook-timestamp")


class _WithASecret(ServiceSettings):
    offer_token_secret: str = local_secret("offer-token-secret")


def test_every_secret_setting_follows_one_rule() -> None:
    assert _WithASecret(environment="local").offer_token_secret.startswith("local-only-")
    with pytest.raises(ValueError, match="PITCHIN_OFFER_TOKEN_SECRET"):
        _WithASecret(environment="production")
    with pytest.raises(ValueError, match="PITCHIN_OFFER_TOKEN_SECRET"):
        _WithASecret(environment="staging", offer_token_secret="short")
    assert _WithASecret(environment="production", offer_token_secret="x" * 40).offer_token_secret == "x" * 40
    # Fails closed: only an explicit local environment takes a built-in secret; not tests, not the default.
    for environment in ("test", None):
        with pytest.raises(ValueError, match="PITCHIN_ENVIRONMENT=local"):
            _WithASecret() if environment is None else _WithASecret(environment=environment)


def test_an_event_too_large_for_kafka_is_refused_before_it_enters_the_outbox() -> None:
    from datetime import UTC, datetime
    from typing import ClassVar

    from pitchin_core.contracts.common import EventData
    from pitchin_core.contracts.donors import DonorWithdrawnV1
    from pitchin_core.outbox import MAX_EVENT_BYTES, stage_event

    class Oversized(DonorWithdrawnV1):
        # A subclass with a field no contract has: what a missing bound would let through.
        event_type: ClassVar[str] = DonorWithdrawnV1.event_type
        filler: str = ""

    def of(size: int) -> EventData:
        return Oversized(federation_id="fed-1", donor_id="d-1", withdrawn_at=datetime.now(UTC), filler="é" * size)

    ordinary = DonorWithdrawnV1(federation_id="fed-1", donor_id="d-1", withdrawn_at=datetime.now(UTC))
    assert stage_event(ordinary, source="/test", key="d-1").values[7] == ordinary.model_dump_json()
    with pytest.raises(LookupError):  # under the limit, the oversized type gets as far as its topic
        stage_event(of(1000), source="/test", key="d-1")
    with pytest.raises(Refused) as refused:
        stage_event(of(MAX_EVENT_BYTES // 2 + 1), source="/test", key="d-1")  # 2 bytes a character in UTF-8
    assert refused.value.status == 422 and "at most" in str(refused.value.problem_body())


async def test_a_dead_lettered_record_is_a_warning_naming_the_reason_and_where_it_went(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging
    from types import SimpleNamespace
    from typing import Any

    from pitchin_core.messaging import DeadLetters
    from pitchin_core.telemetry import Metrics

    sent: list[str] = []

    class Producer:
        async def send_and_wait(self, topic: str, **_: Any) -> None:
            sent.append(topic)

    record = SimpleNamespace(topic="pitchin.donors.v1", partition=2, offset=41, value=b"{", key=b"k", headers=[])
    letters = DeadLetters(Producer(), "notifications", Metrics("notifications"))
    with caplog.at_level(logging.DEBUG, logger="pitchin_core.messaging"):
        await letters.send(record, "data.email: not an email", "schema")
    [entry] = [r for r in caplog.records if r.name == "pitchin_core.messaging"]
    assert entry.levelno == logging.WARNING
    assert sent == [entry.dead_letter_topic]  # type: ignore[attr-defined]
    assert "data.email: not an email" in entry.getMessage() and sent[0] in entry.getMessage()


async def test_a_record_from_a_publishers_own_topic_is_counted_under_the_ingest_topic() -> None:
    from types import SimpleNamespace
    from typing import Any

    from pitchin_core.contracts.topics import INGEST
    from pitchin_core.kafka_auth import ingest_topic
    from pitchin_core.messaging import DeadLetters
    from pitchin_core.telemetry import Metrics

    class Producer:
        async def send_and_wait(self, topic: str, **_: Any) -> None:
            return None

    own = ingest_topic("/crm/acme-branch")
    assert own != INGEST.name
    metrics = Metrics("signups")
    record = SimpleNamespace(topic=own, partition=0, offset=7, value=b"{", key=None, headers=[])
    await DeadLetters(Producer(), "signups", metrics).send(record, "data: not JSON", "schema")
    counted = {
        sample.labels["topic"]
        for family in metrics.registry.collect()
        if family.name == "pitchin_dead_letters"
        for sample in family.samples
        if sample.name == "pitchin_dead_letters_total"
    }
    # One series per publisher would put an id in a label value; the parked record names the topic.
    assert counted == {INGEST.name}
