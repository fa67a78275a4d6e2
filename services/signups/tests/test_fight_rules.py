from datetime import UTC, datetime, timedelta

import pytest

from pitchin_core.contracts.fights import FightOpenedV1, NeedFilledV1, NeedOpenedV1, NeedStatus, NeedUpdatedV1
from pitchin_core.contracts.matching import AssignmentConfirmedV1, AssignmentReleasedV1
from pitchin_core.contracts.scheduling import EventCancelledV1, EventRescheduledV1
from pitchin_core.errors import Conflict
from pitchin_signups.domain.bookings import BookingRefused, EventForBooking, check_can_book, status_after
from pitchin_signups.domain.csv_import import parse
from pitchin_signups.domain.fights import (
    FightDraft,
    FightRefused,
    NeedChangeRefused,
    NeedChanges,
    NeedDraft,
    NeedNotLive,
    NeedRefused,
    as_state,
    closed_need,
    open_fight,
    open_need,
    reassigned,
    status_for,
    updated_need,
)
from pitchin_signups.domain.suggestions import suggest
from pitchin_signups.domain.taxonomy import DEFAULT_SKILLS, UnknownSkill, check_known, unknown_skills

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


def _open(draft: FightDraft, organisation_id: str | None = "o") -> tuple[FightOpenedV1, list[NeedOpenedV1]]:
    need_ids = [f"ned_{i}" for i in range(len(draft.needs))]
    return open_fight(
        draft, fight_id="fgt_1", need_ids=need_ids, federation_id="f", organisation_id=organisation_id, now=NOW
    )


def test_a_fight_opens_with_its_needs_carrying_tenant_and_causes() -> None:
    fight, [need] = _open(_strike())
    assert (fight.fight_id, need.need_id) == ("fgt_1", "ned_0")
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
        _open(_strike(**need))
    assert refused.value.field == field


def test_a_federation_key_cannot_open_a_fight() -> None:
    with pytest.raises(FightRefused) as refused:
        _open(_strike(), organisation_id=None)
    assert refused.value.field == "organisation_id"


def test_need_lifecycle_follows_assignments() -> None:
    assert [status_for(n, 2) for n in (0, 1, 2, 3)] == [
        NeedStatus.open,
        NeedStatus.partly_filled,
        NeedStatus.filled,
        NeedStatus.filled,
    ]


def test_an_update_bumps_the_version_and_a_closed_need_cannot_change() -> None:
    _, [need] = _open(_strike())
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
    assert refused.value.problem_body() == {
        "type": "tag:pitchin.example,2026:problems/validation",
        "title": "Booking refused",
        "status": 409,
        "detail": "event_id: the event is cancelled",
        "errors": [{"field": "event_id", "message": "the event is cancelled"}],
    }


def _need(wanted: int = 2, assigned: int = 0) -> NeedUpdatedV1:
    _, [need] = _open(_strike(donors_wanted=wanted))
    return as_state(need).model_copy(update={"status": status_for(assigned, wanted)})


def _confirmed(donor_id: str) -> AssignmentConfirmedV1:
    return AssignmentConfirmedV1(
        federation_id="f",
        organisation_id="o",
        offer_id="off_1",
        need_id="ned_0",
        fight_id="fgt_1",
        donor_id=donor_id,
        confirmed_at=NOW,
    )


def _released(donor_id: str) -> AssignmentReleasedV1:
    return AssignmentReleasedV1.model_validate(
        {**_confirmed(donor_id).model_dump(exclude={"confirmed_at"}), "reason": "withdrew", "released_at": NOW}
    )


def test_a_first_assignment_partly_fills_the_need_and_the_last_fills_it() -> None:
    later = NOW + timedelta(hours=1)
    first = reassigned(_need(wanted=2), [], _confirmed("don_a"), now=later)
    assert first is not None and first.assigned == ["don_a"]
    assert first.need is not None and first.filled is None
    assert (first.need.status, first.need.version, first.need.updated_at) == (NeedStatus.partly_filled, 2, later)
    assert first.events == [first.need]

    second = reassigned(first.need, first.assigned, _confirmed("don_b"), now=later)
    assert second is not None and second.need is not None and second.need.status == NeedStatus.filled
    assert isinstance(second.filled, NeedFilledV1) and second.filled.donor_ids == ["don_a", "don_b"]
    assert second.events == [second.need, second.filled]


def test_a_release_opens_the_need_again() -> None:
    moved = reassigned(_need(wanted=1, assigned=1), ["don_a"], _released("don_a"), now=NOW)
    assert moved is not None and moved.assigned == []
    assert moved.need is not None and moved.need.status == NeedStatus.open and moved.filled is None


def test_an_assignment_that_changes_nothing_is_none() -> None:
    assert reassigned(_need(wanted=2, assigned=1), ["don_a"], _confirmed("don_a"), now=NOW) is None
    assert reassigned(_need(wanted=2), [], _released("don_a"), now=NOW) is None


def test_a_need_no_longer_live_records_who_is_assigned_but_keeps_its_status() -> None:
    closed = _need(wanted=1).model_copy(update={"status": NeedStatus.closed})
    moved = reassigned(closed, [], _confirmed("don_a"), now=NOW)
    assert moved is not None and moved.assigned == ["don_a"] and moved.events == []


def test_a_second_assignment_below_what_is_wanted_moves_nothing_but_who_is_assigned() -> None:
    moved = reassigned(_need(wanted=3, assigned=1), ["don_a"], _confirmed("don_b"), now=NOW)
    assert moved is not None and moved.assigned == ["don_a", "don_b"] and moved.need is None


def test_closing_a_need_bumps_its_version_once_and_a_closed_need_cannot_close_again() -> None:
    state, fact = closed_need(_need(), NeedStatus.cancelled, now=NOW)
    assert (state.status, state.version, fact.status, fact.closed_at) == (
        NeedStatus.cancelled,
        2,
        NeedStatus.cancelled,
        NOW,
    )
    with pytest.raises(Conflict) as refused:
        closed_need(state, NeedStatus.closed, now=NOW)
    assert refused.value.problem_body() == {
        "type": "about:blank",
        "title": "Already closed",
        "status": 409,
        "detail": "Need ned_0 is cancelled.",
    }


def test_refusals_are_titled_by_what_was_refused() -> None:
    fight, [need] = _open(_strike())
    past = NeedDraft.model_validate({**_strike().needs[0].model_dump(), "deadline": NOW - timedelta(days=1)})
    with pytest.raises(FightRefused) as in_fight:
        _open(_strike(deadline=(NOW - timedelta(days=1)).isoformat()))
    with pytest.raises(NeedRefused) as added:
        open_need(past, fight, need_id="ned_9", now=NOW)
    with pytest.raises(NeedChangeRefused) as changed:
        updated_need(as_state(need), NeedChanges(deadline=NOW - timedelta(days=1)), status=None, now=NOW)
    closed = as_state(need).model_copy(update={"status": NeedStatus.closed})
    with pytest.raises(NeedNotLive) as not_live:
        updated_need(closed, NeedChanges(title="x"), status=None, now=NOW)
    answers = [(e.value.status, e.value.title, e.value.detail) for e in (in_fight, added, changed, not_live)]
    assert answers == [
        (422, "Fight refused", "needs.0.deadline: the deadline has already passed"),
        (422, "Need refused", "deadline: the deadline has already passed"),
        (422, "Change refused", "deadline: the deadline has already passed"),
        (409, "Change refused", "status: the need is closed and can no longer change"),
    ]
    assert not_live.value.problem_body()["type"] == "tag:pitchin.example,2026:problems/validation"


def test_unknown_skills_are_each_named_by_their_place() -> None:
    check_known(["social-media"], DEFAULT_SKILLS, "skills")
    with pytest.raises(UnknownSkill) as refused:
        check_known(["social-media", "knitting", "juggling"], DEFAULT_SKILLS, "needs.0.required_skills")
    assert refused.value.problem_body() == {
        "type": "tag:pitchin.example,2026:problems/validation",
        "title": "Unknown skill",
        "status": 422,
        "detail": "needs.0.required_skills.1.skill: 'knitting' is not in the federation's skills; "
        "needs.0.required_skills.2.skill: 'juggling' is not in the federation's skills",
        "errors": [
            {"field": "needs.0.required_skills.1.skill", "message": "'knitting' is not in the federation's skills"},
            {"field": "needs.0.required_skills.2.skill", "message": "'juggling' is not in the federation's skills"},
        ],
    }


def test_an_event_status_follows_the_facts_that_move_it() -> None:
    facts = {"federation_id": "f", "event_id": "e", "version": 2, "kind": "panel", "title": "t"}
    times = {"starts_at": NOW, "ends_at": NOW + timedelta(hours=1), "time_zone": "Europe/London"}
    assert status_after(EventCancelledV1(**facts, **times, cancelled_at=NOW)) == "cancelled"
    moved = EventRescheduledV1(
        **facts,
        **times,
        previous_starts_at=NOW,
        previous_ends_at=NOW,
        previous_time_zone="Europe/London",
        rescheduled_at=NOW,
    )
    assert status_after(moved) is None
