"""The donor's lending choice as signups takes it: validated, defaulted, carried on the donor's events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from pitchin_core.contracts.donors import (
    MAX_LENDING_ORGANISATIONS,
    DonorRegisteredV1,
    DonorUpdatedV1,
    Lending,
    LendingScope,
)
from pitchin_core.http import field_errors
from pitchin_signups.domain.donors import DonorChanges, DonorSignup, register, updated
from tests.unit.factories import donor_registered, donor_signup

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _signed_up(**overrides: Any) -> DonorRegisteredV1:
    return register(
        DonorSignup.model_validate(donor_signup(**overrides)),
        donor_id="don_1",
        federation_id="fed-wm",
        caller_organisation="org-a",
        now=NOW,
    )


def test_absent_it_is_the_narrowest_choice_home_on_the_sign_up_and_on_older_events() -> None:
    assert _signed_up().lending == Lending(scope=LendingScope.home, organisations=[])
    # An event produced before the field existed reads as the donor having agreed to nothing more.
    assert DonorRegisteredV1.model_validate(donor_registered()).lending.scope == LendingScope.home


def test_the_choice_is_carried_on_donor_registered() -> None:
    donor = _signed_up(lending={"scope": "named", "organisations": ["org-b", "org-c", "org-b"]})
    assert donor.lending == Lending(scope=LendingScope.named, organisations=["org-b", "org-c"]), "each once"
    assert donor.model_dump(mode="json")["lending"] == {"scope": "named", "organisations": ["org-b", "org-c"]}


@pytest.mark.parametrize(
    ("lending", "field"),
    [
        ({"scope": "named"}, "lending.organisations"),
        ({"scope": "named", "organisations": []}, "lending.organisations"),
        ({"scope": "home", "organisations": ["org-b"]}, "lending.organisations"),
        ({"scope": "federation", "organisations": ["org-b"]}, "lending.organisations"),
        (
            {"scope": "named", "organisations": [f"org-{n}" for n in range(MAX_LENDING_ORGANISATIONS + 1)]},
            "lending.organisations",
        ),
        ({"scope": "named", "organisations": ["not an id!"]}, "lending.organisations.0"),
        ({"scope": "everyone"}, "lending.scope"),
        ({"scope": "home", "extra": 1}, "lending.extra"),
    ],
)
def test_bad_choices_are_refused_naming_the_field(lending: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        DonorSignup.model_validate(donor_signup(lending=lending))
    assert [e["field"] for e in field_errors(refused.value)] == [field]
    with pytest.raises(ValidationError):
        DonorChanges.model_validate({"lending": lending})


def test_the_donor_changes_it_and_other_changes_keep_it() -> None:
    donor = _signed_up()
    current = {**donor.model_dump(mode="json"), "version": 1}
    wider = updated(
        current, DonorChanges.model_validate({"lending": {"scope": "named", "organisations": ["org-b"]}}), now=NOW
    )
    assert isinstance(wider, DonorUpdatedV1) and wider.lending.organisations == ["org-b"]
    kept = updated({**wider.model_dump(mode="json")}, DonorChanges(name="Ana B"), now=NOW)
    assert kept.lending == wider.lending and kept.version == 3
    # A donor stored before the choice existed (no `lending` in the profile) updates as home.
    older = {k: v for k, v in current.items() if k != "lending"}
    assert updated(older, DonorChanges(name="Ana"), now=NOW).lending == Lending()
