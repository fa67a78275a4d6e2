"""The sender signs a message's link references as it hands it to the channel (issue 17)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from pitchin_core.links import link_reference, read_booking_link, read_donor_link, sign_references
from pitchin_notifications.domain import sms
from pitchin_notifications.domain.messages import link_holder
from pitchin_notifications.sender import with_signed_links

SECRET = "s" * 40
NOW = time.time()
ANA = link_holder("don_ana", "ana@example.org")


def _row(**parts: Any) -> dict[str, Any]:
    return {"recipient": "ana@example.org", "person_ref": "don_ana", "subject": "Hello", "body_html": None, **parts}


def test_the_mail_sent_has_signed_links_and_the_stored_row_keeps_references() -> None:
    page = "/me/" + link_reference(SECRET, "d1", "don_ana", ANA)
    booking = "/bookings/" + link_reference(SECRET, "b1", "bkg_1", ANA)
    stored = _row(body_text=f"Yours: https://x{page}", body_html=f'<a href="https://x{booking}">booking</a>')
    kept = dict(stored)
    sent = with_signed_links(stored, "email", SECRET, NOW)
    assert stored == kept, "the stored row is never changed"
    donor_token = sent["body_text"].rsplit("/me/", 1)[1]
    assert read_donor_link(SECRET, donor_token, NOW).donor_id == "don_ana"
    booking_token = sent["body_html"].split("/bookings/", 1)[1].split('"', 1)[0]
    assert read_booking_link(SECRET, booking_token, NOW) == "bkg_1"


def test_an_sms_is_signed_too() -> None:
    reference = link_reference(SECRET, "d1", "don_ana", ANA)
    sent = with_signed_links(_row(recipient="+447700900123", body_text=f"Hi /me/{reference}"), "sms", SECRET, NOW)
    assert "~" not in sent["body_text"] and "/me/d1.don_ana." in sent["body_text"]


def test_a_webhook_body_is_sent_as_stored() -> None:
    """Event data for an organisation's endpoint: a reference in it is signed for nobody."""
    body = json.dumps({"title": link_reference(SECRET, "d1", "don_ana", ANA)})
    row = _row(body_text=body)
    assert with_signed_links(row, "webhook", SECRET, NOW) is row


def test_a_reference_for_another_person_in_the_text_stays_a_reference() -> None:
    """An organiser who copies a donor's reference into an event title receives no link for them."""
    theirs = link_reference(SECRET, "d1", "don_victim", link_holder("don_victim", "v@example.org"))
    sent = with_signed_links(_row(body_text=f"Event: {theirs}"), "email", SECRET, NOW)
    assert sent["body_text"] == f"Event: {theirs}"


@pytest.mark.parametrize("words", ["Your event moved", "Votre événement a été déplacé — ça change"])
def test_an_sms_fitted_with_a_reference_still_fits_once_signed(words: str) -> None:
    link = "https://pitchin.example/bookings/" + link_reference(SECRET, "b1", "bkg_0123456789", ANA)
    for length in range(0, 400, 7):
        fitted = sms.fit((words + " ") * (length // len(words) + 1), link, 2)
        signed = sign_references(fitted, SECRET, NOW, ANA)
        assert sms.segments(signed).count <= sms.segments(fitted).count <= 2
        assert len(signed) <= len(fitted)
