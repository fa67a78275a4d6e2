"""The pure parts of the ingest pipeline: reading, validating, signatures, rate limits, OSDI mapping."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest

from pitchin_core.contracts.ingest import BY_TYPE, IngestRsvpMadeV1, owner_of
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
    validate,
)
from pitchin_core.signing import verify_webhook, webhook_signature
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
