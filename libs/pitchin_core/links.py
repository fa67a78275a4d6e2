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

import base64
import hashlib
import hmac
import re
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


# -- references: what a stored message holds where its signed link will go ------------------
#
# A delivery row is kept for months and read by organisers and operators, so it holds no
# credential: planning writes ``~d1~<donor id>~<tag>~`` or ``~b1~<booking id>~<tag>~`` where
# the link goes, and the sender signs it when it hands the message to the channel (the link's
# lifetime starts then, not when the message was planned, held for quiet hours or a digest).
# The tag binds the reference to the message's holder (whom it is for, as the sender names
# them): without it anyone who can put text in a message (an event's title, a template
# override) could write a reference to another donor and receive the signed link.
# A reference opens nothing: the web front reads links only.
# Only unreserved URL characters, none of which HTML escaping, quoted-printable or URL quoting
# touch. The tag is long enough that a reference takes at least the SMS units of the link it
# becomes (``~`` is two units in GSM-7, one in UCS-2), so an SMS fitted to its segments with
# the reference still fits once signed.
REFERENCE_KINDS = (PREFIX, BOOKING_PREFIX)
_REFERENCE_TAG_BYTES = 39  # 52 base64url characters: the length of a link's ".<expiry>.<signature>" less 6
_REFERENCE_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
_REFERENCE = re.compile(r"~(d1|b1)~([A-Za-z0-9_-]{1,200})~([A-Za-z0-9_-]{52})~")


def _reference_tag(secret: str, kind: str, subject_id: str, holder: str) -> str:
    # Its own HMAC context ("reference"), so a tag is never a signature of any token.
    body = f"reference\n{kind}\n{subject_id}\n{holder}".encode()
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha512).digest()[:_REFERENCE_TAG_BYTES]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def link_reference(secret: str, kind: str, subject_id: str, holder: str) -> str:
    """What a message for `holder` stores where the `kind` link for `subject_id` goes, signed when sent."""
    if kind not in REFERENCE_KINDS:
        raise ValueError(f"no references for links of kind {kind!r}")
    if not _REFERENCE_ID.fullmatch(subject_id):
        raise ValueError("an id in a reference is letters, digits, '-' and '_'")
    return f"~{kind}~{subject_id}~{_reference_tag(secret, kind, subject_id, holder)}~"


def sign_references(text: str, secret: str, now: float, holder: str) -> str:
    """`text` with each reference made for `holder` replaced by its freshly signed link.

    A reference with a tag for another holder (copied or forged into the text) is left as
    it is: it opens nothing, and signing it would give this holder someone else's link.
    """
    if "~" not in text:
        return text

    def signed(found: re.Match[str]) -> str:
        kind, subject_id, tag = found.groups()
        if not hmac.compare_digest(tag, _reference_tag(secret, kind, subject_id, holder)):
            return found.group(0)
        if kind == BOOKING_PREFIX:
            return sign_booking_link(secret, subject_id, now)
        return sign_donor_link(secret, subject_id, now)

    return _REFERENCE.sub(signed, text)


def rebind_references(text: str, secret: str, holder: str, new_holder: str) -> str:
    """`text` with the references made for `holder` made again for `new_holder` (a digest, which
    gathers messages for one address, is sent as one message); others are left as they are."""
    if "~" not in text or holder == new_holder:
        return text

    def rebound(found: re.Match[str]) -> str:
        kind, subject_id, tag = found.groups()
        if not hmac.compare_digest(tag, _reference_tag(secret, kind, subject_id, holder)):
            return found.group(0)
        return link_reference(secret, kind, subject_id, new_holder)

    return _REFERENCE.sub(rebound, text)
