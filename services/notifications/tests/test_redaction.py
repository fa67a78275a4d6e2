from __future__ import annotations

from pitchin_notifications.domain.redaction import HIDDEN, shown_link


def test_the_log_shows_where_a_link_goes_but_not_the_credential_in_it() -> None:
    offer = "https://pitchin.example/offers/off_123/accept?t=v1.eyJvZmZlciI6Im9mZl8xMjMifQ.c2lnbmF0dXJl"
    assert shown_link(offer) == "https://pitchin.example/offers/off_123/accept"
    me = "https://pitchin.example/me/d1.don_7f3a.1767225600.aGVsbG8"
    assert shown_link(me) == f"https://pitchin.example/me/{HIDDEN}"
    reference = "https://pitchin.example/bookings/~b1~b~" + "t" * 52 + "~/cancel"  # short enough to pass as an id
    assert shown_link(reference) == f"https://pitchin.example/bookings/{HIDDEN}/cancel"
    assert shown_link("https://pitchin.example/events/evt_1#rsvp") == "https://pitchin.example/events/evt_1"
    assert shown_link(None) is None and shown_link("") == ""
