"""Double opt-in: what a held sign-up asks the person, and which tokens can confirm it. Pure."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from pitchin_core.contracts.donors import DonorRegisteredV1
from pitchin_core.errors import Conflict, FieldError
from pitchin_signups.domain.donors import (
    PENDING_SIGNUP_TTL,
    ConfirmationRefused,
    DonorSignup,
    PendingState,
    check_confirmable,
    confirmation_requested,
    held_signup,
    register,
    token_hash,
)
from tests.unit.factories import donor_signup

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _donor(**overrides: object) -> tuple[DonorSignup, DonorRegisteredV1]:
    signup = DonorSignup.model_validate(donor_signup(**overrides))
    return signup, register(signup, donor_id="don_1", federation_id="fed-wm", caller_organisation="org-a", now=NOW)


def test_the_request_names_the_person_in_their_language_with_a_link_to_the_web_front() -> None:
    signup = DonorSignup.model_validate(
        donor_signup(name="  Dana Okafor ", email="Dana@Example.org", contact={"language": "cy"})
    )
    donor = register(signup, donor_id="don_1", federation_id="fed-wm", caller_organisation=None, now=NOW)
    asked = confirmation_requested(
        donor, pending_id="pnd_1", token="a/b+c", public_base_url="https://pitchin.example/", now=NOW
    )
    assert (asked.name, asked.email, asked.language) == ("Dana Okafor", "dana@example.org", "cy")
    link = urlsplit(asked.confirm_url)
    assert (link.scheme, link.netloc, link.path) == ("https", "pitchin.example", "/donors/confirm")
    assert parse_qs(link.query) == {"token": ["a/b+c"]}, "the token survives the URL as it was"
    assert asked.expires_at == NOW + PENDING_SIGNUP_TTL and asked.valid_hours == 48


def test_the_held_signup_keeps_the_organisation_it_was_made_through() -> None:
    signup, donor = _donor()
    assert signup.organisation_id is None
    held = held_signup(signup, donor)
    assert held.organisation_id == "org-a" and held.email == signup.email


def test_only_the_tokens_hash_is_kept() -> None:
    assert token_hash("tok") == token_hash("tok") != token_hash("tok2")
    assert "tok" not in token_hash("tok") and len(token_hash("tok")) == 64


def test_a_token_confirms_once_and_only_before_it_expires() -> None:
    live = PendingState(expires_at=NOW + timedelta(hours=1), confirmed_at=None)
    check_confirmable(live, NOW)  # no refusal
    with pytest.raises(ConfirmationRefused) as unknown:
        check_confirmable(None, NOW)
    assert unknown.value.field == "token" and unknown.value.status == 422
    with pytest.raises(ConfirmationRefused) as expired:
        check_confirmable(PendingState(expires_at=NOW, confirmed_at=None), NOW)
    assert expired.value.errors == [FieldError("token", "expired: sign up again")]
    with pytest.raises(Conflict) as used:
        check_confirmable(PendingState(expires_at=NOW + timedelta(hours=1), confirmed_at=NOW), NOW)
    assert used.value.errors == [FieldError("token", "already used")] and used.value.status == 409
