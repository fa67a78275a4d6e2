from datetime import UTC, datetime

import pytest

from pitchin_signups.domain.donors import (
    DonorChangeRefused,
    DonorChanges,
    DonorSignup,
    SignupRefused,
    register,
    updated,
)
from tests.unit.factories import donor_signup

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_a_signup_becomes_a_registered_donor_of_the_callers_federation() -> None:
    donor = register(
        DonorSignup.model_validate(donor_signup(email="Farra@Example.org")),
        donor_id="don_1",
        federation_id="fed-wm",
        caller_organisation=None,
        now=NOW,
    )
    assert donor.federation_id == "fed-wm"
    assert donor.email == "farra@example.org"
    assert donor.donor_id == "don_1"
    assert donor.registered_at == NOW


def test_an_organisation_key_signs_up_for_itself() -> None:
    donor = register(
        DonorSignup.model_validate(donor_signup()),
        donor_id="don_1",
        federation_id="fed-wm",
        caller_organisation="org-dudley-cvs",
        now=NOW,
    )
    assert donor.organisation_id == "org-dudley-cvs"
    with pytest.raises(SignupRefused) as refused:
        register(
            DonorSignup.model_validate(donor_signup(organisation_id="org-other")),
            donor_id="don_2",
            federation_id="fed-wm",
            caller_organisation="org-dudley-cvs",
            now=NOW,
        )
    assert refused.value.field == "organisation_id"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (
            {"consent": {"wording_version": "v1", "purposes": ["matching"], "agreed_at": "2027-01-01T00:00:00Z"}},
            "consent.agreed_at",
        ),
        ({"phone": None, "contact": {"email": True, "sms": True, "language": "en"}}, "contact.sms"),
        (
            {"skills": [{"skill": "photography", "level": "beginner"}, {"skill": "photography", "level": "expert"}]},
            "skills",
        ),
    ],
)
def test_contradictions_are_refused_naming_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(SignupRefused) as refused:
        register(
            DonorSignup.model_validate(donor_signup(**overrides)),
            donor_id="don_1",
            federation_id="fed-wm",
            caller_organisation=None,
            now=NOW,
        )
    assert refused.value.field == field


def test_a_refused_signup_names_the_field_in_a_422() -> None:
    with pytest.raises(SignupRefused) as refused:
        register(
            DonorSignup.model_validate(donor_signup(phone=None, contact={"email": True, "sms": True})),
            donor_id="don_1",
            federation_id="fed-wm",
            caller_organisation=None,
            now=NOW,
        )
    assert refused.value.status == 422
    assert refused.value.problem_body() == {
        "type": "tag:pitchin.example,2026:problems/validation",
        "title": "Sign-up refused",
        "status": 422,
        "detail": "contact.sms: SMS was chosen but no phone number was given",
        "errors": [{"field": "contact.sms", "message": "SMS was chosen but no phone number was given"}],
    }


def test_a_withdrawn_donor_cannot_be_changed() -> None:
    donor = register(
        DonorSignup.model_validate(donor_signup()),
        donor_id="don_1",
        federation_id="fed-wm",
        caller_organisation=None,
        now=NOW,
    )
    current = {**donor.model_dump(mode="json"), "status": "withdrawn", "version": 1}
    with pytest.raises(DonorChangeRefused) as refused:
        updated(current, DonorChanges(name="Someone"), now=NOW)
    assert (refused.value.title, refused.value.field) == ("Change refused", "status")
