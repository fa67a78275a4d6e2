"""How long a freed place is held for the person on the waitlist it is offered to (issue 22)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pitchin_signups.domain.bookings import OFFER_RULE, OfferRule

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


def test_far_from_the_deadline_an_offer_gets_the_default_day_or_the_organisers_window() -> None:
    closes = NOW + timedelta(days=10)
    assert OFFER_RULE.window(None, NOW, closes) == 24 * H
    assert OFFER_RULE.window(2 * 3600, NOW, closes) == 2 * H
    assert OFFER_RULE.window(7 * 24 * 3600, NOW, closes) == 5 * 24 * H  # a week asked: half the ten days left


@pytest.mark.parametrize(
    ("left", "window"),
    [
        (48 * H, 24 * H),  # the day still fits in half the time left
        (30 * H, 15 * H),  # nearer: half of what is left, so the next person still has a chance
        (3 * H, 90 * timedelta(minutes=1)),
        (90 * timedelta(minutes=1), H),  # never less than the hour's floor...
        (20 * timedelta(minutes=1), 20 * timedelta(minutes=1)),  # ...unless less is left: all of it
    ],
)
def test_the_window_shortens_as_bookings_close_and_never_passes_the_deadline(
    left: timedelta, window: timedelta
) -> None:
    closes = NOW + left
    assert OFFER_RULE.window(None, NOW, closes) == window
    expires = OFFER_RULE.expires_at(None, NOW, closes)
    assert expires is not None and expires <= closes


def test_once_bookings_have_closed_no_place_is_offered() -> None:
    assert OFFER_RULE.window(None, NOW, NOW) is None
    assert OFFER_RULE.expires_at(600, NOW, NOW - H) is None


def test_a_short_window_the_organiser_chose_is_kept_even_near_the_deadline() -> None:
    assert OFFER_RULE.window(600, NOW, NOW + 2 * H) == timedelta(minutes=10)


def test_the_rule_goes_to_postgresql_as_numbers() -> None:
    rule = OfferRule(default=12 * H, share=0.25, floor=timedelta(minutes=30))
    assert rule.as_json() == {"default_seconds": 43200, "share": 0.25, "floor_seconds": 1800}
    assert rule.window(None, NOW, NOW + 40 * H) == 10 * H
