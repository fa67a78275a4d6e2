from datetime import UTC, datetime

import pytest

from pitchin_signups.domain.donors import DonorSignup, SignupRefused, register
from tests.unit.factories import donor_signup

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_a_signup_becomes_a_registered_donor_of_the_callers_federation() -> None:
    donor = register(
        DonorSignup.model_validate(donor_signup(email="Farra@Example.org")),
        federation_id="fed-wm",
        caller_organisation=None,
        now=NOW,
    )
    assert donor.federation_id == "fed-wm"
    assert donor.email == "farra@example.org"
    assert donor.donor_id.startswith("don_")
    assert donor.registered_at == NOW


def test_an_organisation_key_signs_up_for_itself() -> None:
    donor = register(
        DonorSignup.model_validate(donor_signup()),
        federation_id="fed-wm",
        caller_organisation="org-dudley-cvs",
        now=NOW,
    )
    assert donor.organisation_id == "org-dudley-cvs"
    with pytest.raises(SignupRefused) as refused:
        register(
            DonorSignup.model_validate(donor_signup(organisation_id="org-other")),
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
            federation_id="fed-wm",
            caller_organisation=None,
            now=NOW,
        )
    assert refused.value.field == field
