"""Lending between member organisations: who may be asked for whose need, by the donor's consent."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pitchin_core.contracts.donors import DonorRegisteredV1, Lending, LendingScope, may_ask
from pitchin_matching.domain.donors import DonorProfile, profile_of
from pitchin_matching.domain.escalation import Escalation
from pitchin_matching.domain.lending import is_lent
from pitchin_matching.domain.needs import NeedState
from pitchin_matching.domain.ranking import Policy, rank, slots_of
from pitchin_matching.index import DonorIndex
from pitchin_matching.planning import need_policy
from tests.unit.factories import donor_registered

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)

ORGS = ("org-a", "org-b", "org-c")
LENDINGS = (
    Lending(),
    Lending(scope=LendingScope.named, organisations=["org-b"]),
    Lending(scope=LendingScope.named, organisations=["org-b", "org-c"]),
    Lending(scope=LendingScope.federation),
)


def test_the_rule_for_one_donor() -> None:
    home, named_b, _, federation = LENDINGS
    # Their own organisation always may ask; another only as far as the donor agreed.
    assert may_ask(home, "org-a", "org-a") and not may_ask(home, "org-a", "org-b")
    assert may_ask(named_b, "org-a", "org-b") and not may_ask(named_b, "org-a", "org-c")
    assert may_ask(federation, "org-a", "org-c")
    # A donor with no home organisation belongs to the federation: every organisation may ask.
    assert all(may_ask(lending, None, org) for lending in LENDINGS for org in (*ORGS, None))
    # A federation-level need asks those who agreed to the whole federation, not the ones who named organisations.
    assert may_ask(federation, "org-a", None) and not may_ask(named_b, "org-a", None)
    assert not may_ask(home, "org-a", None)
    assert is_lent("org-a", "org-b") and not is_lent("org-a", "org-a") and not is_lent(None, "org-b")


def donor(donor_id: str, **changes: object) -> DonorProfile:
    base = DonorProfile(
        donor_id=donor_id,
        federation_id="fed-wm",
        organisation_id=None,
        status="active",
        version=0,
        time_zone="UTC",
        hours_per_week=4.0,
        remote=True,
        latitude=None,
        longitude=None,
        country="GB",
        languages=("en",),
        causes=("labour",),
        skills={"social-media": 3},
        windows_utc=(),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def need(**changes: object) -> NeedState:
    base = NeedState(
        need_id="need_1",
        fight_id="fight_1",
        federation_id="fed-wm",
        organisation_id="org-a",
        title="Strike comms",
        required_skills=(("social-media", 2),),
        nice_to_have=(),
        estimated_hours=8.0,
        deadline=NOW + timedelta(days=14),
        urgency="normal",
        remote=True,
        latitude=None,
        longitude=None,
        country=None,
        language="en",
        causes=("labour",),
        donors_wanted=1,
        status="open",
        version=1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _index(profiles: list[tuple[str, str | None, Lending]]) -> DonorIndex:
    index = DonorIndex(capacity=4)
    for donor_id, home, lending in profiles:
        profile = donor(
            donor_id,
            organisation_id=home,
            lending_scope=lending.scope.value,
            lending_organisations=tuple(lending.organisations),
        )
        index.upsert(profile, NOW - timedelta(days=100))
    return index


def _candidates(index: DonorIndex, organisation: str | None, policy: Policy | None = None) -> set[str]:
    policy = policy or Policy()
    query = index.query(need(organisation_id=organisation), policy, slots_of(()))
    result = rank(index.columns, query, policy, NOW.timestamp(), limit=100)
    return {index.donor_at(r) for r in result.rows.tolist()}


def test_the_index_filters_candidates_exactly_as_the_rule_says_for_every_combination() -> None:
    donors = [(f"d{n}", home, lending) for n, (home, lending) in enumerate(itertools.product((*ORGS, None), LENDINGS))]
    index = _index(donors)
    for asking in (*ORGS, "org-never-seen", None):
        expected = {d for d, home, lending in donors if may_ask(lending, home, asking)}
        assert _candidates(index, asking) == expected, asking


def test_a_changed_choice_replaces_the_old_one_in_the_index() -> None:
    index = _index([("ana", "org-a", LENDINGS[1])])
    assert _candidates(index, "org-b") == {"ana"}
    index.upsert(donor("ana", organisation_id="org-a", lending_organisations=()), NOW - timedelta(days=100))
    assert _candidates(index, "org-b") == set(), "back to home only: org-b no longer asks"
    assert _candidates(index, "org-a") == {"ana"}
    index.upsert(
        donor("ana", organisation_id="org-a", lending_scope="named", lending_organisations=("org-c",)),
        NOW - timedelta(days=100),
    )
    assert (_candidates(index, "org-b"), _candidates(index, "org-c")) == (set(), {"ana"})


def test_an_escalating_need_may_ask_its_own_donors_before_the_lent_ones() -> None:
    index = _index([("own", "org-a", Lending()), ("lent", "org-b", LENDINGS[3]), ("everyone's", None, Lending())])
    rules = Escalation(at=(0.25, 0.5), lent_from_step=1)
    first = need_policy(Policy(), rules, "critical", 0)
    assert _candidates(index, "org-a", first) == {"own", "everyone's"}
    assert _candidates(index, "org-a", need_policy(Policy(), rules, "critical", 1)) == {"own", "lent", "everyone's"}
    assert _candidates(index, "org-a", need_policy(Policy(), rules, "normal", 0)) == {"own", "lent", "everyone's"}


def test_matching_learns_the_choice_and_the_home_from_the_donor_event() -> None:
    event = DonorRegisteredV1.model_validate(
        donor_registered(organisation_id="org-a", lending={"scope": "named", "organisations": ["org-b"]})
    )
    profile = profile_of(event)
    assert (profile.organisation_id, profile.lending_scope, profile.lending_organisations) == (
        "org-a",
        "named",
        ("org-b",),
    )
    absent = profile_of(DonorRegisteredV1.model_validate(donor_registered(organisation_id="org-a")))
    assert (absent.lending_scope, absent.lending_organisations) == ("home", ())
