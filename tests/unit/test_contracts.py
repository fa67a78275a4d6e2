import pytest
from pydantic import ValidationError

from pitchin_core.contracts.donors import DonorRegisteredV1
from pitchin_core.contracts.registry import EVENT_TYPES
from pitchin_core.contracts.topics import TOPICS, all_topic_names, topic_for
from tests.unit.factories import donor_registered


def test_every_event_type_has_exactly_one_topic_and_a_consumer() -> None:
    for model in EVENT_TYPES.values():
        spec = topic_for(model)
        assert spec.consumers or spec.read_outside, f"{model.event_type} is on {spec.name} but nobody reads it"
        assert sum(model in t.event_types for t in TOPICS) == 1


def test_types_are_versioned_and_past_tense_facts() -> None:
    for name in EVENT_TYPES:
        assert name.startswith("org.pitchin.") and name.endswith(".v1")


def test_each_consumer_group_has_a_dead_letter_topic() -> None:
    names = all_topic_names()
    assert "pitchin.donors.v1.matching.dlq" in names
    assert "pitchin.donors.v1.notifications.dlq" in names
    assert len(names) == len(set(names))


def test_unknown_time_zone_is_refused_naming_the_field() -> None:
    body = donor_registered()
    body["availability"] = {**body["availability"], "time_zone": "Europe/Dudley"}
    with pytest.raises(ValidationError) as caught:
        DonorRegisteredV1.model_validate(body)
    assert caught.value.errors()[0]["loc"] == ("availability", "time_zone")


def test_window_must_end_after_it_starts() -> None:
    body = donor_registered()
    body["availability"] = {**body["availability"], "windows": [{"day": "mon", "start": "18:00", "end": "09:00"}]}
    with pytest.raises(ValidationError, match="end must be later than start"):
        DonorRegisteredV1.model_validate(body)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"extra_forbidden|Extra inputs"):
        DonorRegisteredV1.model_validate(donor_registered(favourite_colour="red"))
