"""The pure parts of the ingest pipeline: reading, validating, signatures, rate limits, OSDI mapping."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest

from pitchin_core.contracts.ingest import BY_TYPE, IngestPersonSignedUpV1, IngestRsvpMadeV1, owner_of
from pitchin_core.ingest import (
    RateLimiter,
    Registration,
    Rejection,
    envelope_from_http_binary,
    envelope_from_kafka,
    envelope_from_structured,
    external_event_id,
    fingerprint,
    forwarded_id,
    original_id,
    rounds,
    validate,
)
from pitchin_core.ingest.kafka_door import _type_of
from pitchin_core.signing import verify_webhook, webhook_signature
from pitchin_signups.domain.donors import DonorSignup
from pitchin_signups.ingest.apply import _PERSON_FIELDS, signup_of
from pitchin_signups.ingest.osdi import PersonSignupHelper, person_signup_data

P = "org.pitchin.ingest."
REG = Registration("/crm/a", "fed-a", ("org-a",), False, "whsec_" + "QUJD" * 8, 10.0, 5)


def person(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "federation_id": "fed-a",
        "organisation_id": "org-a",
        "external_id": "p-1",
        "updated_at": "2026-11-23T10:00:00Z",
        "name": "Ana",
        "email": "ana@example.org",
        "skills": [{"skill": "social-media", "level": "expert"}],
        "availability": {"hours_per_week": 4, "time_zone": "Europe/London"},
        "consent": {"wording_version": "1", "purposes": ["matching"], "agreed_at": "2026-11-01T00:00:00Z"},
    }
    body.update(overrides)
    return body


def kafka(data: object, **headers: bytes) -> list[tuple[str, bytes]]:
    base = {
        "ce_specversion": b"1.0",
        "ce_id": b"e1",
        "ce_source": b"/crm/a",
        "ce_type": P.encode() + b"person-signed-up.v1",
    }
    return list({**base, **headers}.items())


def reasons(exc: pytest.ExceptionInfo[Rejection]) -> list[str]:
    return [r.field for r in exc.value.reasons]


def test_every_type_is_versioned_and_owned() -> None:
    assert all(t.startswith(P) and t.endswith(".v1") for t in BY_TYPE)
    assert owner_of(P + "event-created.v1") == "scheduling"
    assert owner_of(P + "rsvp-made.v1") == "signups"
    assert owner_of("org.example.unknown.v1") == "signups" and owner_of(None) == "signups"


def test_a_good_event_is_accepted() -> None:
    envelope = envelope_from_kafka(kafka(None), json.dumps(person()).encode())
    accepted = validate(envelope, REG)
    assert accepted.data.external_id == "p-1" and accepted.id == "e1"


@pytest.mark.parametrize(
    ("headers", "value", "status", "field"),
    [
        ({}, b"{nope", 400, "data"),
        ({"ce_subject": b"\xff"}, json.dumps(person()).encode(), 400, "ce_subject"),
        ({"ce_id": b""}, json.dumps(person()).encode(), 422, "id"),
        ({"ce_type": b"org.pitchin.ingest.nope.v1"}, json.dumps(person()).encode(), 422, "type"),
        ({}, json.dumps(person(email="x")).encode(), 422, "data.email"),
        ({}, json.dumps(person(organisation_id="org-b")).encode(), 403, "data.organisation_id"),
        ({}, json.dumps(person(federation_id="fed-b")).encode(), 403, "data.federation_id"),
        ({"ce_tenant": b"fed-a/org-b"}, json.dumps(person()).encode(), 403, "tenant"),
        ({"ce_time": b"yesterday"}, json.dumps(person()).encode(), 422, "time"),
    ],
)
def test_each_failure_names_its_field(headers: dict[str, bytes], value: bytes, status: int, field: str) -> None:
    with pytest.raises(Rejection) as caught:
        validate(envelope_from_kafka(kafka(None, **headers), value), REG)
    assert caught.value.status == status
    assert field in reasons(caught)


def test_an_unregistered_source_is_refused() -> None:
    with pytest.raises(Rejection) as caught:
        validate(envelope_from_kafka(kafka(None), json.dumps(person()).encode()), None)
    assert caught.value.reason == "unregistered-source" and reasons(caught) == ["source"]


def test_http_binary_and_structured_read_alike() -> None:
    binary = envelope_from_http_binary(
        {"ce-id": "e1", "ce-source": "/crm/a", "ce-type": P + "person-signed-up.v1", "ce-specversion": "1.0"},
        json.dumps(person()).encode(),
    )
    structured = envelope_from_structured(
        {"id": "e1", "source": "/crm/a", "type": P + "person-signed-up.v1", "specversion": "1.0", "data": person()}
    )
    assert validate(binary, REG).data == validate(structured, REG).data
    assert fingerprint(binary) == fingerprint(structured)
    assert fingerprint(binary) != fingerprint(envelope_from_structured({"type": "x", "data": person()}))


def test_an_rsvp_names_exactly_one_event() -> None:
    base = {k: v for k, v in person().items() if k in ("federation_id", "organisation_id", "external_id", "updated_at")}
    IngestRsvpMadeV1.model_validate({**base, "event_id": "evt_1", "name": "B", "email": "b@example.org"})
    with pytest.raises(ValueError, match="exactly one"):
        IngestRsvpMadeV1.model_validate({**base, "name": "B", "email": "b@example.org"})


def test_derived_ids_are_stable_and_forwarded_ids_verifiable() -> None:
    assert external_event_id("/crm/a", "e") == external_event_id("/crm/a", "e") != external_event_id("/crm/b", "e")
    forwarded = envelope_from_structured(
        {"id": str(forwarded_id("/crm/a", "orig")), "source": "/crm/a", "subject": "http:orig", "data": {}}
    )
    assert original_id(forwarded) == "orig"
    forged = envelope_from_structured({"id": "x", "source": "/crm/a", "subject": "http:orig", "data": {}})
    assert original_id(forged) == "x"


def test_a_publishers_signature_names_the_header_to_fix() -> None:
    # The HTTP door answers with the part before ": " as the failing field.
    secret, now = REG.signing_secret or "", 1_700_000_000
    signature = webhook_signature(secret, "msg_1", now, b"{}")
    assert verify_webhook(secret, "msg_1", str(now), b"{}", f"v1,bogus {signature}", now) is None
    wrong_body = verify_webhook(secret, "msg_1", str(now), b"{ }", signature, now) or ""
    assert wrong_body.startswith("webhook-signature: ")
    late = verify_webhook(secret, "msg_1", str(now), b"{}", signature, now + 301) or ""
    assert late.startswith("webhook-timestamp: ")


def test_token_bucket_per_source() -> None:
    limiter = RateLimiter()
    assert limiter.take("/a", 5, 10.0, 5, 0.0) == 0.0
    assert limiter.take("/a", 1, 10.0, 5, 0.0) == pytest.approx(0.1)
    assert limiter.take("/b", 1, 10.0, 5, 0.0) == 0.0
    assert limiter.take("/a", 1, 10.0, 5, 0.2) == 0.0
    assert limiter.take("/a", 6, 10.0, 5, 9.0) == math.inf


def test_osdi_person_signup_maps_tags_onto_skills() -> None:
    helper = PersonSignupHelper.model_validate(
        {
            "person": {
                "identifiers": ["an:1"],
                "given_name": "Farra",
                "family_name": "T",
                "email_addresses": [{"address": "old@example.org"}, {"address": "f@example.org", "primary": True}],
                "postal_addresses": [{"locality": "Dudley", "country": "GB"}],
                "custom_fields": {"hours_per_week": "3", "consent_wording_version": "1"},
            },
            "add_tags": ["skill:photography:advanced", "skill:online-video", "cause:labour", "member"],
        }
    )
    data = person_signup_data(helper, REG, datetime(2026, 11, 23, tzinfo=UTC))
    assert data["external_id"] == "an:1" and data["email"] == "f@example.org" and data["organisation_id"] == "org-a"
    assert data["skills"] == [
        {"skill": "photography", "level": "advanced"},
        {"skill": "online-video", "level": "beginner"},
    ]
    assert data["causes"] == ["labour"] and data["place"]["city"] == "Dudley"
    envelope = envelope_from_structured(
        {"id": "o1", "source": "/crm/a", "type": P + "person-signed-up.v1", "specversion": "1.0", "data": data}
    )
    assert validate(envelope, REG).data.federation_id == "fed-a"


def _record(ident: str, external_id: str | None, source: str = "/crm/a") -> dict[str, object]:
    data = {"external_id": external_id} if external_id is not None else {}
    return {"id": ident, "source": source, "type": "org.pitchin.ingest.person-updated.v1", "data": data}


def test_a_batch_is_cut_where_an_id_or_a_person_repeats_so_the_later_sees_the_earlier() -> None:
    batch = [
        _record("e1", "p-1"),
        _record("e2", "p-2"),
        _record("e3", "p-1"),  # the same person again: a new round
        _record("e4", "p-3"),
        _record("e4", "p-4"),  # the same id again: a new round
        _record("e5", "p-1", source="/crm/b"),  # another source's p-1 is another person
        _record("e6", None),  # no external id: only its id counts
    ]
    assert rounds([envelope_from_structured(r) for r in batch]) == [[0, 1], [2, 3], [4, 5, 6]]
    assert rounds([]) == []
    # Every position once, in order: nothing lost or repeated, the batch's order kept.
    many = [envelope_from_structured(_record(f"e{i}", f"p-{i % 7}")) for i in range(50)]
    assert [i for round_ in rounds(many) for i in round_] == list(range(50))
    assert all(len(round_) == 7 for round_ in rounds(many)[:-1])


@pytest.mark.parametrize(
    "headers",
    [
        [("ce_type", b"org.pitchin.ingest.event-created.v1")],
        [("ce_type", b"org.pitchin.ingest.person-signed-up.v1"), ("CE_TYPE", b"org.pitchin.ingest.rsvp-made.v1")],
        [("ce_type", b"org.pitchin.ingest.event-created.v1"), ("ce_type", b"\xff")],
        [("ce_type", b"\xff")],
        [("ce_type", None)],
        [],
    ],
)
def test_the_kafka_door_tells_whose_record_it_is_from_the_type_header_as_the_envelope_does(
    headers: list[tuple[str, bytes | None]],
) -> None:
    assert _type_of(headers) == envelope_from_kafka(headers, b"{}").type


def test_a_validated_person_signed_up_is_a_valid_sign_up_field_for_field() -> None:
    # The set-based path builds the sign-up command without validating it again: only sound
    # while the contract's person fields and config are the command's.
    contract, command = IngestPersonSignedUpV1, DonorSignup
    # `lending` is the donor's own choice, not a publisher's: an ingested person has its default.
    assert set(command.model_fields) == {*_PERSON_FIELDS, "organisation_id", "lending"}
    assert "lending" not in contract.model_fields
    for name in set(command.model_fields) - {"lending"}:
        ours, theirs = contract.model_fields[name], command.model_fields[name]
        # Everything that validates (type, constraints, default), not the documentation.
        assert repr(ours.annotation) == repr(theirs.annotation), name
        assert (repr(ours.metadata), repr(ours.default), ours.default_factory is None) == (
            repr(theirs.metadata),
            repr(theirs.default),
            theirs.default_factory is None,
        ), name
        if ours.default_factory is not None and theirs.default_factory is not None:
            assert ours.default_factory() == theirs.default_factory(), name  # type: ignore[call-arg]
    assert contract.model_config == command.model_config
    data = {
        "name": "Ana",
        "email": "Ana@Example.org",
        "skills": [{"skill": "social-media", "level": "expert"}],
        "availability": {"hours_per_week": 4, "time_zone": "Europe/London"},
        "consent": {"wording_version": "1", "purposes": ["matching"], "agreed_at": "2026-01-01T00:00:00Z"},
    }
    person = contract.model_validate(
        {
            **data,
            "federation_id": "fed-a",
            "organisation_id": "org-a",
            "external_id": "p-1",
            "updated_at": "2026-01-02T00:00:00Z",
        }
    )
    assert signup_of(person) == command.model_validate({**data, "organisation_id": "org-a"})
