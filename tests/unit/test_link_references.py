"""Stored messages hold link references, not links; the sender signs them (issue 17)."""

from __future__ import annotations

import re
import time
from html import escape
from urllib.parse import quote

import pytest

from pitchin_core.links import (
    BadLink,
    link_reference,
    read_booking_link,
    read_donor_link,
    rebind_references,
    sign_booking_link,
    sign_donor_link,
    sign_references,
)

SECRET = "s" * 40
ANA = "donor:don_ana"
NOW = time.time()


def test_a_reference_is_no_credential_and_survives_html_and_urls() -> None:
    reference = link_reference(SECRET, "d1", "don_ana", ANA)
    assert re.fullmatch(r"[A-Za-z0-9_~-]+", reference), "unreserved URL characters only"
    with pytest.raises(BadLink):
        read_donor_link(SECRET, reference, NOW)
    assert escape(reference) == reference and quote(reference) == reference


def test_a_reference_round_trips_to_a_link_that_opens_its_donor_or_booking() -> None:
    page, booking = link_reference(SECRET, "d1", "don_ana", ANA), link_reference(SECRET, "b1", "bkg_7", ANA)
    text = f"See /me/{page} or /bookings/{booking}/cancel"
    sent = sign_references(text, SECRET, NOW, ANA)
    donor_link = re.search(r"/me/(\S+)", sent)
    booking_link = re.search(r"/bookings/(\S+)/cancel", sent)
    assert donor_link and booking_link, sent
    assert read_donor_link(SECRET, donor_link.group(1), NOW).donor_id == "don_ana"
    assert read_booking_link(SECRET, booking_link.group(1), NOW) == "bkg_7"
    assert "~" not in sent


def test_the_link_lifetime_starts_when_it_is_signed() -> None:
    sent = sign_references(link_reference(SECRET, "d1", "don_ana", ANA), SECRET, NOW + 3600, ANA)
    assert sent == sign_donor_link(SECRET, "don_ana", NOW + 3600)


def test_many_references_in_one_text_are_all_signed() -> None:
    ids = [f"bkg_{n}" for n in range(20)]
    text = "\n".join(f"<a href='https://x/bookings/{link_reference(SECRET, 'b1', i, ANA)}'>" for i in ids)
    sent = sign_references(text, SECRET, NOW, ANA)
    assert re.findall(r"/bookings/([^']+)'", sent) == [sign_booking_link(SECRET, i, NOW) for i in ids]


@pytest.mark.parametrize("odd", ["", "don.ana", "don~ana", "don ana", "don/ana", "dón", "a" * 201])
def test_an_id_with_odd_characters_is_refused(odd: str) -> None:
    with pytest.raises(ValueError):
        link_reference(SECRET, "d1", odd, ANA)


def test_only_donor_and_booking_links_have_references() -> None:
    with pytest.raises(ValueError):
        link_reference(SECRET, "r1", "don_ana", ANA)


@pytest.mark.parametrize("text", ["", "Hello Ana, see https://x/me/ and ~tilde~ text", "~d1~don_ana~short~"])
def test_text_without_references_is_unchanged(text: str) -> None:
    assert sign_references(text, SECRET, NOW, ANA) == text


def test_a_reference_made_for_someone_else_is_never_signed() -> None:
    """Someone who puts another donor's reference in an event title must not receive its link."""
    theirs = link_reference(SECRET, "d1", "don_victim", "donor:don_victim")
    assert sign_references(f"Title {theirs}", SECRET, NOW, ANA) == f"Title {theirs}"
    forged = link_reference("another secret of forty characters......", "d1", "don_victim", ANA)
    assert sign_references(forged, SECRET, NOW, ANA) == forged


def test_a_digest_rebinds_the_references_of_its_items_to_itself() -> None:
    item = link_reference(SECRET, "b1", "bkg_7", "address:ana@example.org")
    rebound = rebind_references(item, SECRET, "address:ana@example.org", ANA)
    assert read_booking_link(SECRET, sign_references(rebound, SECRET, NOW, ANA), NOW) == "bkg_7"
    other = link_reference(SECRET, "b1", "bkg_8", "address:bob@example.org")
    assert rebind_references(other, SECRET, "address:ana@example.org", ANA) == other
