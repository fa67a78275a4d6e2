"""Signed, expiring links to a donor's pages on the web front: no passwords, no accounts.

A link is ``<kind>.<donor id>.<expiry epoch>.<signature>``: an HMAC-SHA256 of everything before
it with PITCHIN_DONOR_LINK_SECRET, which the web front (reads links) and notifications (puts
them in donors' emails) share and nothing else holds. Nothing is stored; the link names its
donor, so it cannot be turned into another's; it stops working when it expires. Two kinds:
``d1`` opens the donor's own page (offers, bookings, cancelling); ``r1`` opens only the record
the donor chose to show others (hours given, thanks), so sharing it gives nobody the first.
(Matching signs its offer tokens the same way with a secret of its own; the web passes those
through to matching and never checks them.)

A third kind, ``b1.<booking id>.<expiry>.<signature>``, opens one booking (view, cancel) for the
person who made it: notifications mails it, the web checks it, and a bare booking id opens nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from pitchin_core.settings import local_secret
from pitchin_core.signing import BadToken, read_expiring, sign_expiring

PREFIX = "d1"
RECORD_PREFIX = "r1"
DEFAULT_LIFETIME = 30 * 24 * 3600
RECORD_LIFETIME = 365 * 24 * 3600  # a record is shown on a CV or to a new organisation for months


LOCAL_DONOR_LINK_SECRET = local_secret("donor-link-secret")


BadLink = BadToken


@dataclass(frozen=True)
class DonorLink:
    donor_id: str
    expires: int


def sign_donor_link(
    secret: str, donor_id: str, now: float, lifetime: int = DEFAULT_LIFETIME, kind: str = PREFIX
) -> str:
    if not donor_id or "." in donor_id:
        raise ValueError("a donor id has no dots")
    return sign_expiring(secret, [kind, donor_id], int(now) + lifetime)


def sign_record_link(secret: str, donor_id: str, now: float) -> str:
    return sign_donor_link(secret, donor_id, now, RECORD_LIFETIME, RECORD_PREFIX)


def read_record_link(secret: str, token: str, now: float) -> DonorLink:
    return read_donor_link(secret, token, now, RECORD_PREFIX)


BOOKING_PREFIX = "b1"
# An event may be booked a year ahead, and the link is also how the attendee cancels on the day.
BOOKING_LIFETIME = 400 * 24 * 3600


def sign_booking_link(secret: str, booking_id: str, now: float, lifetime: int = BOOKING_LIFETIME) -> str:
    """The link that lets the person who booked see and cancel `booking_id` (and nothing else)."""
    if not booking_id or "." in booking_id:
        raise ValueError("a booking id has no dots")
    return sign_expiring(secret, [BOOKING_PREFIX, booking_id], int(now) + lifetime)


def read_booking_link(secret: str, token: str, now: float) -> str:
    """The booking id a booking link opens; BadLink when it is forged, of another kind or expired."""
    booking_id, _ = read_expiring(secret, token, now, prefix=[BOOKING_PREFIX])
    if "." in booking_id:
        raise BadLink("not a link of this kind")
    return booking_id


# The headers in which the web front forwards a person's link to the services, which check it
# themselves (pitchin_core.auth.web_front_proof) rather than trust the web's key.
DONOR_LINK_HEADER = "X-Donor-Link"
BOOKING_LINK_HEADER = "X-Booking-Link"


def opens_booking(secret: str, token: str, booking_id: str, now: float) -> bool:
    try:
        return read_booking_link(secret, token, now) == booking_id
    except BadLink:
        return False


def opens_donor(secret: str, token: str, donor_id: str, now: float, kinds: tuple[str, ...] = (PREFIX,)) -> bool:
    """Whether `token` is a live link of one of `kinds` for `donor_id` (a record link opens less)."""
    for kind in kinds:
        try:
            if read_donor_link(secret, token, now, kind).donor_id == donor_id:
                return True
        except BadLink:
            continue
    return False


def read_donor_link(secret: str, token: str, now: float, kind: str = PREFIX) -> DonorLink:
    donor_id, expires = read_expiring(secret, token, now, prefix=[kind])
    if "." in donor_id:
        raise BadLink("not a link of this kind")
    return DonorLink(donor_id=donor_id, expires=expires)
