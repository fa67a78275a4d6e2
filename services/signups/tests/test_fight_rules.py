from datetime import UTC, datetime, timedelta

import pytest

from pitchin_core.contracts.fights import NeedStatus
from pitchin_signups.domain.bookings import BookingRefused, EventForBooking, check_can_book
from pitchin_signups.domain.csv_import import parse
from pitchin_signups.domain.fights import (
    FightDraft,
    FightRefused,
    NeedChanges,
    as_state,
    open_fight,
    status_for,
    updated_need,
)
from pitchin_signups.domain.suggestions import suggest
from pitchin_signups.domain.taxonomy import DEFAULT_SKILLS, unknown_skills

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _strike(**need: object) -> FightDraft:
    body = {
        "title": "Social media plan",
        "required_skills": [{"skill": "social-media", "min_level": "advanced"}],
        "estimated_hours": 10,
        "deadline": (NOW + timedelta(days=5)).isoformat(),
        "urgency": "critical",
    }
    body.update(need)
    return FightDraft.model_validate(
        {"kind": "strike", "title": "Warehouse strike", "causes": ["labour"], "needs": [body]}
    )


def test_a_fight_opens_with_its_needs_carrying_tenant_and_causes() -> None:
    fight, [need] = open_fight(_strike(), federation_id="f", organisation_id="o", now=NOW)
    assert (need.federation_id, need.organisation_id, need.fight_id) == ("f", "o", fight.fight_id)
    assert need.causes == ["labour"] and need.version == 1
    state = as_state(need)
    assert state.status == NeedStatus.open and state.updated_at == NOW


@pytest.mark.parametrize(
    ("need", "field"),
    [
        ({"deadline": (NOW - timedelta(days=1)).isoformat()}, "needs.0.deadline"),
        ({"required_skills": [{"skill": "photography"}, {"skill": "photography"}]}, "needs.0.required_skills"),
        ({"place": {"remote": False}}, "needs.0.place"),
    ],
)
def test_impossible_needs_are_refused_naming_the_field(need: dict[str, object], field: str) -> None:
    with pytest.raises(FightRefused) as refused:
        open_fight(_strike(**need), federation_id="f", organisation_id="o", now=NOW)
    assert refused.value.field == field


def test_a_federation_key_cannot_open_a_fight() -> None:
    with pytest.raises(FightRefused) as refused:
        open_fight(_strike(), federation_id="f", organisation_id=None, now=NOW)
    assert refused.value.field == "organisation_id"


def test_need_lifecycle_follows_assignments() -> None:
    assert [status_for(n, 2) for n in (0, 1, 2, 3)] == [
        NeedStatus.open,
        NeedStatus.partly_filled,
        NeedStatus.filled,
        NeedStatus.filled,
    ]


def test_an_update_bumps_the_version_and_a_closed_need_cannot_change() -> None:
    _, [need] = open_fight(_strike(), federation_id="f", organisation_id="o", now=NOW)
    later = NOW + timedelta(hours=1)
    changed = updated_need(as_state(need), NeedChanges(estimated_hours=20), status=None, now=later)
    assert (changed.version, changed.estimated_hours, changed.updated_at) == (2, 20, later)
    closed = changed.model_copy(update={"status": NeedStatus.closed})
    with pytest.raises(FightRefused):
        updated_need(closed, NeedChanges(title="x"), status=None, now=later)


def test_a_strike_described_in_plain_words_gets_the_strike_kit() -> None:
    [kit, *_] = suggest(
        "Our local votes on a strike next week and we have no online plan at all",
        now=NOW,
        deadline=NOW + timedelta(days=6),
    )
    assert kit.kit == "strike-communications" and kit.because == ["strike"]
    skills = {s.skill for need in kit.needs for s in need.required_skills}
    assert {"social-media", "graphic-design", "online-video", "writing-for-the-web"} <= skills
    assert all(need.urgency == "critical" and need.deadline < NOW + timedelta(days=6) for need in kit.needs)
    assert suggest("we would like to bake a cake", now=NOW) == []


def test_every_kit_uses_only_skills_of_the_default_taxonomy() -> None:
    from pitchin_signups.domain.suggestions import KITS

    for kit in KITS:
        slugs = [skill for need in kit.needs for skill, _ in need.skills]
        assert unknown_skills(slugs, DEFAULT_SKILLS) == [], kit.slug


def test_csv_rows_become_signups_or_named_errors() -> None:
    text = (
        "name,email,skills,hours_per_week,time_zone,languages,consent_wording_version,consent_agreed_at\n"
        "Ann,ann@example.org,social-media:expert;photography,3,Europe/London,en;cy,2026-01,2026-11-01T09:00:00Z\n"
        "Bob,not-an-email,graphic-design:advanced,2,Europe/London,en,2026-01,2026-11-01T09:00:00Z\n"
        "Cy,cy@example.org,video:guru,2,Mars/Base,en,2026-01,2026-11-01T09:00:00Z\n"
    )
    signups, errors = parse(text)
    assert [(row, s.email) for row, s in signups] == [(2, "ann@example.org")]
    assert signups[0][1].skills[1].level == "intermediate" and signups[0][1].languages == ["en", "cy"]
    fields = {(e.row, e.field) for e in errors}
    assert (3, "email") in fields
    assert (4, "skills.0.level") in fields and (4, "availability.time_zone") in fields


def test_csv_without_required_columns_says_which() -> None:
    _, errors = parse("name,email\nAnn,ann@example.org\n")
    assert {e.field for e in errors} == {"skills", "time_zone", "consent_wording_version", "consent_agreed_at"}


def test_bookings_close_at_the_deadline_or_the_start_and_not_for_cancelled_events() -> None:
    event = EventForBooking(
        "e",
        starts_at=NOW + timedelta(days=1),
        booking_deadline=NOW + timedelta(hours=1),
        status="published",
        waitlist=True,
    )
    check_can_book(event, NOW)
    with pytest.raises(BookingRefused):
        check_can_book(event, NOW + timedelta(hours=2))
    with pytest.raises(BookingRefused) as refused:
        check_can_book(EventForBooking("e", NOW + timedelta(days=1), None, "cancelled", True), NOW)
    assert refused.value.status == 409
