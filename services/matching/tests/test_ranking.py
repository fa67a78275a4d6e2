from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from pitchin_matching.domain.donors import DonorProfile
from pitchin_matching.domain.needs import NeedState
from pitchin_matching.domain.ranking import Policy, Weights, explain, rank, slots_of
from pitchin_matching.index import DonorIndex, DonorStats

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
MONDAY_9_TO_17 = ((9 * 60, 17 * 60),)


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
        windows_utc=MONDAY_9_TO_17,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def need(**changes: object) -> NeedState:
    base = NeedState(
        need_id="need_1",
        fight_id="fight_1",
        federation_id="fed-wm",
        organisation_id="org-1",
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


def ranked(
    donors: list[DonorProfile],
    the_need: NeedState,
    policy: Policy | None = None,
    stats: dict[str, DonorStats] | None = None,
    registered: datetime = NOW - timedelta(days=365),
) -> list[str]:
    index = DonorIndex(capacity=4)
    for d in donors:
        index.upsert(d, registered, (stats or {}).get(d.donor_id))
    policy = policy or Policy(collaboration_utc=MONDAY_9_TO_17)
    query = index.query(the_need, policy, slots_of(policy.collaboration_utc))
    result = rank(index.columns, query, policy, NOW.timestamp(), limit=10)
    return [index.donor_at(r) for r in result.rows.tolist()]


def test_required_skills_are_a_hard_filter_on_skill_and_level() -> None:
    donors = [
        donor("expert"),
        donor("beginner", skills={"social-media": 0}),
        donor("designer", skills={"graphic-design": 3}),
    ]
    assert ranked(donors, need()) == ["expert"]
    assert ranked(donors, need(required_skills=(("video", 0),))) == [], "a skill nobody has"


def test_higher_levels_rank_above_the_minimum() -> None:
    donors = [donor("advanced", skills={"social-media": 2}), donor("expert")]
    assert ranked(donors, need()) == ["expert", "advanced"]


def test_another_federation_inactive_and_overloaded_donors_are_never_candidates() -> None:
    donors = [
        donor("mine"),
        donor("stranger", federation_id="fed-other"),
        donor("paused", status="paused"),
        donor("busy"),
    ]
    assert ranked(donors, need(), stats={"busy": DonorStats(load=2)}) == ["mine"]


def test_nice_to_have_language_and_causes_add_points() -> None:
    plain = donor("plain", causes=(), languages=("cy",))
    rich = donor("rich", skills={"social-media": 3, "video": 1})
    assert ranked([plain, rich], need(nice_to_have=("video",))) == ["rich", "plain"]


def test_hours_before_the_deadline_favour_who_can_finish() -> None:
    slow = donor("slow", hours_per_week=1.0)
    able = donor("able", hours_per_week=10.0)
    assert ranked([slow, able], need(estimated_hours=20.0)) == ["able", "slow"]
    assert ranked([slow, able], need(deadline=NOW - timedelta(hours=1))) == [], "a need past its deadline asks nobody"


def test_time_windows_overlap_the_collaboration_hours_across_zones() -> None:
    # 09:00-12:00 Monday UTC overlaps the organisation's hours; 20:00-23:00 does not.
    overlapping = donor("overlapping", windows_utc=((9 * 60, 12 * 60),))
    night = donor("night", windows_utc=((20 * 60, 23 * 60),))
    assert ranked([night, overlapping], need()) == ["overlapping", "night"]


def test_on_site_needs_keep_donors_within_reach_nearest_first() -> None:
    dudley = (52.51, -2.08)
    near = donor("near", remote=False, latitude=52.45, longitude=-1.9)  # Birmingham, ~14 km
    far = donor("far", remote=False, latitude=51.5, longitude=-0.12)  # London, ~170 km
    unknown_here = donor("same-country", latitude=None, longitude=None, country="GB")
    abroad = donor("abroad", latitude=None, longitude=None, country="FR")
    on_site = need(remote=False, latitude=dudley[0], longitude=dudley[1], country="GB")
    assert ranked([far, abroad, unknown_here, near], on_site) == ["near", "same-country"]


def test_fairness_prefers_those_not_asked_lately_and_not_loaded() -> None:
    stats = {
        "asked-yesterday": DonorStats(last_asked=NOW - timedelta(days=1)),
        "loaded": DonorStats(load=1, last_asked=NOW - timedelta(days=30)),
    }
    donors = [donor("asked-yesterday"), donor("loaded"), donor("rested")]
    assert ranked(donors, need(), stats=stats) == ["rested", "loaded", "asked-yesterday"]


def test_history_of_declines_lowers_and_completions_raise() -> None:
    stats = {"decliner": DonorStats(declined=5), "reliable": DonorStats(completed=5)}
    donors = [donor("decliner"), donor("neutral"), donor("reliable")]
    assert ranked(donors, need(), stats=stats) == ["reliable", "neutral", "decliner"]


def test_newcomers_get_a_boost_that_fades() -> None:
    index_order = ranked([donor("newcomer")], need(), registered=NOW - timedelta(days=1))
    assert index_order == ["newcomer"]
    index = DonorIndex()
    index.upsert(donor("old"), NOW - timedelta(days=400))
    index.upsert(donor("new"), NOW - timedelta(days=3))
    policy = Policy()
    query = index.query(need(), policy, slots_of(()))
    result = rank(index.columns, query, policy, NOW.timestamp(), limit=5)
    assert [index.donor_at(r) for r in result.rows.tolist()] == ["new", "old"]
    assert result.values["newcomer"][0] == pytest.approx(0.9)
    assert result.values["newcomer"][1] == 0.0


def test_weights_are_per_policy_and_change_the_order() -> None:
    far_but_reliable = donor("reliable", languages=("cy",))
    speaks = donor("speaks")
    stats = {"reliable": DonorStats(completed=20)}
    assert ranked([far_but_reliable, speaks], need(), stats=stats)[0] == "speaks"
    history_first = Policy(weights=Weights().with_overrides({"language": 0.0, "history": 50.0}))
    assert ranked([far_but_reliable, speaks], need(), policy=history_first, stats=stats)[0] == "reliable"
    with pytest.raises(ValueError, match="unknown weight"):
        Weights().with_overrides({"charisma": 1.0})


def test_every_component_is_explained_and_the_points_add_up_to_the_score() -> None:
    index = DonorIndex()
    index.upsert(donor("d1", skills={"social-media": 3, "video": 0}), NOW - timedelta(days=100))
    policy = Policy(collaboration_utc=MONDAY_9_TO_17)
    query = index.query(need(nice_to_have=("video",)), policy, slots_of(policy.collaboration_utc))
    result = rank(index.columns, query, policy, NOW.timestamp(), limit=1)
    value = {name: float(v[0]) for name, v in result.values.items()}
    components = explain(index.columns, int(result.rows[0]), value, query, policy, NOW.timestamp())
    assert [c.name for c in components] == list(Weights.names())
    assert sum(c.points for c in components) == pytest.approx(float(result.scores[0]), abs=0.01)
    why = {c.name: c.why for c in components}
    assert "social-media: expert (needs advanced)" in why["skills"]
    assert "1 of 1 nice-to-have" in why["nice_to_have"]
    assert "never asked" in why["recency"]


def test_ranking_a_thousand_donors_keeps_the_best_first_and_limits_the_list() -> None:
    index = DonorIndex()
    rng = np.random.default_rng(7)
    for i in range(1000):
        index.upsert(donor(f"d{i}", hours_per_week=float(rng.integers(1, 20))), NOW - timedelta(days=100))
    policy = Policy()
    query = index.query(need(estimated_hours=40.0), policy, slots_of(()))
    result = rank(index.columns, query, policy, NOW.timestamp(), limit=25)
    assert result.eligible == 1000 and result.rows.size == 25
    assert list(result.scores) == sorted(result.scores, reverse=True)
