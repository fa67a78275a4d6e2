"""Booking mail links to a page signed for that booking, never to the bare booking id (issue 17)."""

from datetime import UTC, datetime

import pytest

from pitchin_core.links import BadLink, read_booking_link
from pitchin_notifications.domain.messages import Recipient, plan, rules_for
from pitchin_notifications.service.messages import Notifications, Policy
from pitchin_notifications.templates import Renderer

SECRET = "b" * 40
BOOKING = {
    "federation_id": "fed",
    "organisation_id": "org",
    "booking_id": "bk_1",
    "event_id": "evt_1",
    "donor_id": None,
    "name": "Ana",
    "email": "ana@example.org",
    "confirmed_at": "2027-10-04T13:30:00Z",
    "position": 3,
}
ANA = Recipient(name="Ana", email="ana@example.org")


def notifications() -> Notifications:
    policy = Policy(
        public_base_url="https://pitchin.example",
        unsubscribe_key=b"u" * 32,
        quiet_hours=None,
        digest_seconds=60,
        donor_link_secret=SECRET,
    )
    return Notifications(Renderer(), policy)


@pytest.mark.parametrize("event_type", ["org.pitchin.booking.confirmed.v1", "org.pitchin.booking.waitlisted.v1"])
def test_the_booking_mail_links_to_a_signed_page_for_that_booking(event_type: str) -> None:
    service = notifications()
    (rule,) = rules_for(event_type, BOOKING)
    (message,) = service._plan(rule, ANA, dict(BOOKING), None, frozenset())
    page = message.action_url
    assert page is not None and page.startswith("https://pitchin.example/bookings/b1.bk_1.")
    token = page.rsplit("/", 1)[-1]
    assert read_booking_link(SECRET, token, datetime.now(UTC).timestamp()) == "bk_1"
    assert message.context["cancel_url"] == page + "/cancel"
    rendered = Renderer().render(message, {}, None)
    assert "/bookings/bk_1" not in rendered.text, "no bare booking id in the mail"
    assert page + "/cancel" in rendered.text
    with pytest.raises(BadLink):
        read_booking_link("another secret of forty characters......", token, datetime.now(UTC).timestamp())


def test_without_a_signed_page_the_mail_falls_back_to_the_event_page() -> None:
    (rule,) = rules_for("org.pitchin.booking.confirmed.v1", BOOKING)
    (message,) = plan(rule, ANA, BOOKING, public_base_url="https://pitchin.example")
    assert message.action_url == "https://pitchin.example/events/evt_1"
    assert "/bookings/" not in Renderer().render(message, {}, None).text
