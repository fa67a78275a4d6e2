"""Scheduling's refusals are domain errors answered with the problem+json bodies the API always gave.

The expected bodies are written out as JSON text: member order included, they must not change.
"""

import json
from datetime import UTC, datetime

from pitchin_core.contracts.scheduling import SessionPerson
from pitchin_core.errors import FieldError
from pitchin_scheduling.domain.agenda import BookedTwice, Clash, Session
from pitchin_scheduling.domain.events import EventRefused, TransitionRefused


def _text(body: dict[str, object]) -> str:
    return json.dumps(body, separators=(",", ":"))


def test_an_event_refused_is_a_422_on_its_field() -> None:
    refused = EventRefused("starts_at", "an event cannot start in the past")
    assert str(refused) == "an event cannot start in the past" and refused.field == "starts_at"
    assert _text(refused.problem_body()) == (
        '{"type":"tag:pitchin.example,2026:problems/validation","title":"Event refused","status":422,'
        '"detail":"starts_at: an event cannot start in the past",'
        '"errors":[{"field":"starts_at","message":"an event cannot start in the past"}]}'
    )


def test_a_step_not_possible_now_is_a_409_naming_the_state() -> None:
    refused = TransitionRefused("publish", "cancelled", ["draft"])
    assert refused.state == "cancelled" and refused.action == "publish"
    assert _text(refused.problem_body()) == (
        '{"type":"tag:pitchin.example,2026:problems/lifecycle","title":"Not possible now","status":409,'
        '"detail":"cannot publish an event that is cancelled (only from: draft)","state":"cancelled"}'
    )


def test_a_clash_is_a_409_listing_the_clashes_then_the_fields() -> None:
    other = Session(
        session_id="ses_1",
        event_id="evt_1",
        title="Opening",
        starts_at=datetime(2027, 6, 10, 17, tzinfo=UTC),
        ends_at=datetime(2027, 6, 10, 18, tzinfo=UTC),
        room="Main hall",
        people=[SessionPerson.model_validate({"person_id": "gc", "name": "Gloria Cruz", "role": "chair"})],
    )
    refused = BookedTwice([Clash("person", "Gloria Cruz", other), Clash("room", "room 'Main hall'", other)], "UTC")
    person = "Gloria Cruz is already booked for 'Opening' (evt_1, 2027-06-10 17:00-18:00 UTC)"
    room = "room 'Main hall' is already booked for 'Opening' (evt_1, 2027-06-10 17:00-18:00 UTC)"
    assert refused.errors == [FieldError("people", person), FieldError("room", room)]
    assert _text(refused.problem_body()) == _text(
        {
            "type": "tag:pitchin.example,2026:problems/clash",
            "title": "Booked twice",
            "status": 409,
            "detail": f"{person}; {room}",
            "clashes": [
                {"what": "person", "name": "Gloria Cruz", "session_id": "ses_1", "event_id": "evt_1"},
                {"what": "room", "name": "room 'Main hall'", "session_id": "ses_1", "event_id": "evt_1"},
            ],
            "errors": [{"field": "people", "message": person}, {"field": "room", "message": room}],
        }
    )
