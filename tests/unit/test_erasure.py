"""The erasure request's contract and the keyed hash it finds people by (issue 19)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from pitchin_core.contracts.privacy import ErasureCompletedV1, ErasureRequestedV1
from pitchin_core.contracts.topics import PRIVACY, topic_for
from pitchin_core.erasure import PersonHasher, needles_of, person_hasher, rows

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def test_the_person_hash_is_hmac_sha256_of_the_lower_cased_address() -> None:
    secret = "a-platform-secret-of-thirty-two-characters"
    expected = hmac.new(secret.encode(), b"ana@example.org", hashlib.sha256).hexdigest()
    assert PersonHasher(secret).of("  Ana@Example.ORG ") == expected
    assert PersonHasher(secret + "x").of("ana@example.org") != expected


def test_a_long_secret_is_hashed_first_as_rfc_2104_says() -> None:
    secret = "k" * 100
    hasher = PersonHasher(secret)
    assert hasher.of("a@b.org") == hmac.new(secret.encode(), b"a@b.org", hashlib.sha256).hexdigest()
    # The padded keys the SQL form is given are the block-sized inner and outer keys.
    key = hashlib.sha256(secret.encode()).digest().ljust(64, b"\0")
    assert hasher.inner == bytes(b ^ 0x36 for b in key) and hasher.outer == bytes(b ^ 0x5C for b in key)


def test_no_secret_no_hash() -> None:
    with pytest.raises(ValueError, match="PITCHIN_DONOR_LINK_SECRET"):
        PersonHasher("")
    with pytest.raises(ValueError, match="PITCHIN_DONOR_LINK_SECRET"):
        person_hasher(object())


def test_the_hash_key_is_derived_from_the_donor_link_secret_for_this_purpose_only() -> None:
    class Settings:
        donor_link_secret = "the-donor-link-secret-of-thirty-two-chars"

    key = hmac.new(Settings.donor_link_secret.encode(), b"pitchin/person-hash/v1", hashlib.sha256).hexdigest()
    assert person_hasher(Settings()).of("a@b.org") == PersonHasher(key).of("a@b.org")
    assert person_hasher(Settings()).of("a@b.org") != PersonHasher(Settings.donor_link_secret).of("a@b.org")


def test_the_request_carries_ids_and_a_hash_never_an_address_or_a_name() -> None:
    fields = set(ErasureRequestedV1.model_fields)
    assert not fields & {"email", "name", "phone"}
    with pytest.raises(ValidationError):
        ErasureRequestedV1(federation_id="fed", request_id="era_1", person_hash="ana@example.org", requested_at=NOW)
    ok = ErasureRequestedV1(federation_id="fed", request_id="era_1", person_hash="0" * 64, requested_at=NOW)
    assert topic_for(type(ok)) is PRIVACY and PRIVACY.key == "erasure request id"


def test_every_service_that_holds_people_consumes_the_request_and_may_answer() -> None:
    holders = {"signups", "matching", "notifications", "scheduling"}
    assert set(PRIVACY.consumers) == holders
    assert all(PRIVACY.written_by(service) for service in holders)
    assert set(PRIVACY.event_types) == {ErasureRequestedV1, ErasureCompletedV1}


def test_counts_are_per_table() -> None:
    done = ErasureCompletedV1(
        federation_id="fed", request_id="era_1", service="notifications", counts={"deliveries": 3}, completed_at=NOW
    )
    assert done.counts == {"deliveries": 3}
    with pytest.raises(ValidationError):
        ErasureCompletedV1(
            federation_id="fed", request_id="era_1", service="notifications", counts={"x": -1}, completed_at=NOW
        )


def test_needles_drop_blanks_and_short_ids_and_match_any_case() -> None:
    assert needles_of(["Ana@Example.org", None, ""], ["ab", "bkg_1"]) == [
        "Ana@Example.org",
        "ana@example.org",
        "bkg_1",
    ]


def test_rows_reads_a_command_status() -> None:
    assert rows("UPDATE 3") == 3 and rows("DELETE 0") == 0 and rows("SELECT") == 0
