from datetime import UTC, datetime

from pitchin_core.contracts.fights import NeedOpenedV1, NeedUpdatedV1
from pitchin_matching.domain.needs import need_of, need_supersedes, offers_wanted

FAN_OUT = {"critical": 3.0, "high": 2.0, "normal": 1.0}


def need_opened(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "federation_id": "fed-wm",
        "organisation_id": "org-unite",
        "need_id": "need_1",
        "fight_id": "fight_1",
        "title": "Social media plan for the bin strike",
        "required_skills": [{"skill": "social-media", "min_level": "advanced"}],
        "estimated_hours": 12,
        "deadline": "2026-12-01T17:00:00Z",
        "urgency": "high",
        "language": "en-GB",
        "opened_at": "2026-11-20T09:00:00Z",
    }
    body.update(overrides)
    return body


def test_a_need_opened_is_open_at_version_one_with_levels_as_ranks() -> None:
    need = need_of(NeedOpenedV1.model_validate(need_opened()))
    assert need.is_open and need.version == 1
    assert need.required_skills == (("social-media", 2),)
    assert need.language == "en"
    assert need.deadline == datetime(2026, 12, 1, 17, tzinfo=UTC)


def test_an_update_carries_its_status() -> None:
    body = {k: v for k, v in need_opened().items() if k != "opened_at"}
    update = NeedUpdatedV1.model_validate(
        {**body, "place": {"remote": True}, "donors_wanted": 2, "status": "closed", "version": 3,
         "updated_at": "2026-11-21T09:00:00Z"}
    )  # fmt: skip
    need = need_of(update)
    assert not need.is_open and need.version == 3 and need.donors_wanted == 2


def test_late_or_repeated_need_events_change_nothing() -> None:
    assert need_supersedes(1, None)
    assert need_supersedes(2, 1)
    assert not need_supersedes(1, 2)
    assert not need_supersedes(2, 2)


def test_urgent_needs_ask_several_donors_at_once_and_never_beyond_the_places() -> None:
    assert (
        offers_wanted(donors_wanted=1, active_assignments=0, pending_offers=0, urgency="normal", fan_out=FAN_OUT) == 1
    )
    assert (
        offers_wanted(donors_wanted=1, active_assignments=0, pending_offers=0, urgency="critical", fan_out=FAN_OUT) == 3
    )
    assert offers_wanted(donors_wanted=2, active_assignments=0, pending_offers=1, urgency="high", fan_out=FAN_OUT) == 3
    assert (
        offers_wanted(donors_wanted=2, active_assignments=2, pending_offers=0, urgency="critical", fan_out=FAN_OUT) == 0
    )
    assert (
        offers_wanted(donors_wanted=1, active_assignments=0, pending_offers=1, urgency="normal", fan_out=FAN_OUT) == 0
    )
