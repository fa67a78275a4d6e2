"""Booking mail links to a page signed for that booking when it is sent, never to the bare booking id (issue 17)."""

import re
from datetime import UTC, datetime

import pytest

from pitchin_core.links import BadLink, read_booking_link, sign_references
from pitchin_notifications.domain.messages import Recipient, link_holder, plan, rules_for
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
def test_the_booking_mail_links_to_a_page_signed_for_that_booking_when_it_is_sent(event_type: str) -> None:
    service = notifications()
    (rule,) = rules_for(event_type, BOOKING)
    (message,) = service._plan(rule, ANA, dict(BOOKING), None, frozenset())
    page = message.action_url
    assert page is not None and page.startswith("https://pitchin.example/bookings/~b1~bk_1~")
    assert message.context["cancel_url"] == page + "/cancel"
    rendered = Renderer().render(message, {}, None)
    assert "b1." not in rendered.text, "the stored mail holds a reference, no signed link (issue 17)"
    assert "/bookings/bk_1" not in rendered.text, "no bare booking id in the mail"
    now = datetime.now(UTC).timestamp()
    sent = sign_references(rendered.text, SECRET, now, link_holder(message.person_ref, message.recipient))
    found = re.search(r"/bookings/([^/\s]+)/cancel", sent)
    assert found is not None, sent
    assert read_booking_link(SECRET, found.group(1), now) == "bk_1"
    with pytest.raises(BadLink):
        read_booking_link("another secret of forty characters......", found.group(1), now)


def test_without_a_signed_page_the_mail_falls_back_to_the_event_page() -> None:
    (rule,) = rules_for("org.pitchin.booking.confirmed.v1", BOOKING)
    (message,) = plan(rule, ANA, BOOKING, public_base_url="https://pitchin.example")
    assert message.action_url == "https://pitchin.example/events/evt_1"
    assert "/bookings/" not in Renderer().render(message, {}, None).text
