from pitchin_core.contracts.donors import DonorRegisteredV1
from pitchin_matching.domain.donors import profile_of
from tests.unit.factories import donor_registered


def test_profile_keeps_what_ranking_needs_and_no_contact_details() -> None:
    profile = profile_of(DonorRegisteredV1.model_validate(donor_registered()))
    assert profile.skills == {"social-media": 3, "graphic-design": 1}
    assert profile.time_zone == "Europe/London"
    assert profile.remote is True
    assert not any("@" in str(value) for value in vars(profile).values())
