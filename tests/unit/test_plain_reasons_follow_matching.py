"""The web's plain reasons read matching's real explanations: if ranking's wording changes, this fails.

domain.reasons (web) reads the facts it names (a skill's level, a distance, a count) out of the
`why` texts of matching's domain/ranking.py; here matching's own `explain` writes them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pitchin_matching.domain.donors import DonorProfile
from pitchin_matching.domain.needs import NeedState
from pitchin_matching.domain.ranking import Policy, explain, rank, slots_of
from pitchin_matching.index import DonorIndex, DonorStats
from pitchin_web.domain import reasons
from pitchin_web.messages import Translator

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
MONDAY_9_TO_17 = ((9 * 60, 17 * 60),)
LABELS = {"social-media": "Social media", "video": "Video"}


def _explained(profile: DonorProfile, need: NeedState, stats: DonorStats | None = None) -> list[dict[str, object]]:
    index = DonorIndex(capacity=4)
    index.upsert(profile, NOW - timedelta(days=365), stats)
    policy = Policy(collaboration_utc=MONDAY_9_TO_17)
    query = index.query(need, policy, slots_of(policy.collaboration_utc))
    result = rank(index.columns, query, policy, NOW.timestamp(), limit=1, budgeted=False)
    assert result.rows.size == 1
    value = {name: float(v[0]) for name, v in result.values.items()}
    components = explain(index.columns, int(result.rows[0]), value, query, policy, NOW.timestamp())
    return [{"name": c.name, "points": c.points, "why": c.why} for c in components]


def _profile(**changes: object) -> DonorProfile:
    base = DonorProfile(
        donor_id="don_1",
        federation_id="fed",
        organisation_id=None,
        status="active",
        version=0,
        time_zone="UTC",
        hours_per_week=4.0,
        remote=True,
        latitude=None,
        longitude=None,
        country="GB",
        languages=("cy",),
        causes=("labour",),
        skills={"social-media": 3, "video": 1},
        windows_utc=MONDAY_9_TO_17,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _need(**changes: object) -> NeedState:
    base = NeedState(
        need_id="need_1",
        fight_id="fight_1",
        federation_id="fed",
        organisation_id="org-1",
        title="Strike comms",
        required_skills=(("social-media", 2),),
        nice_to_have=("video",),
        estimated_hours=8.0,
        deadline=NOW + timedelta(days=14),
        urgency="critical",
        remote=True,
        latitude=None,
        longitude=None,
        country=None,
        language="cy",
        causes=("labour",),
        donors_wanted=1,
        status="open",
        version=1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _generic(t: Translator) -> set[str]:
    """The sentences said when a `why` is not in the shape expected (the wording drifted)."""
    keys = [k for k in t.catalogue if k.startswith("reason.") and (".some." in k or ".fit." in k or ".other." in k)]
    return {t(k) for k in keys}


def test_every_component_matching_explains_reads_with_its_facts() -> None:
    t = Translator("en")
    explained = _explained(_profile(), _need())
    for audience in ("donor", "organiser"):
        said = reasons.phrased(explained, audience, t, LABELS, limit=len(explained))
        assert said, audience
        for component, text in said:
            assert text not in _generic(t), (component, text)
            assert not text.startswith("reason."), text
    donor = reasons.plain_reasons(explained, "donor", t, LABELS, limit=20)
    assert "You know Social media at expert level" in donor
    assert "You also know Video, which would help" in donor
    assert "You speak Cymraeg, the language of the work" in donor
    assert any(s.startswith("You have about ") and "hours free" in s for s in donor)
    assert "We have not asked you before" in donor
    assert not any("same for every candidate" in s for s in donor), "urgency says nothing about a person"


def test_penalties_read_for_the_organiser() -> None:
    stats = DonorStats(load=1, last_asked=NOW - timedelta(days=3), completed=2, declined=3)
    explained = _explained(_profile(languages=("en",)), _need(), stats)
    said = reasons.plain_reasons(explained, "organiser", Translator("en"), LABELS, limit=20)
    assert not any("Cymraeg" in s for s in said), "a language not spoken is worth nothing: not shown"
    assert "Last asked 3 days ago" in said
    assert any(s.startswith("Already has 1 open request") for s in said), said
