"""Signed, expiring links to a donor's pages on the web front: no passwords, no accounts.

A link is ``<kind>.<donor id>.<expiry epoch>.<signature>``: an HMAC-SHA256 of everything before
it with PITCHIN_DONOR_LINK_SECRET, which the web front (reads links) and notifications (puts
them in donors' emails) share and nothing else holds. Nothing is stored; the link names its
donor, so it cannot be turned into another's; it stops working when it expires. Two kinds:
``d1`` opens the donor's own page (offers, bookings, cancelling); ``r1`` opens only the record
the donor chose to show others (hours given, thanks), so sharing it gives nobody the first.
(Matching signs its offer tokens the same way with a secret of its own; the web passes those
through to matching and never checks them.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

PREFIX = "d1"
RECORD_PREFIX = "r1"
DEFAULT_LIFETIME = 30 * 24 * 3600
RECORD_LIFETIME = 365 * 24 * 3600  # a record is shown on a CV or to a new organisation for months


LOCAL_DONOR_LINK_SECRET = "local-only-donor-link-secret-not-for-production"


def check_donor_link_secret(environment: str, secret: str) -> None:
    """Refuse the local secret, or a short one, where real people get links."""
    if environment in {"staging", "production"} and (secret == LOCAL_DONOR_LINK_SECRET or len(secret) < 32):
        raise ValueError("PITCHIN_DONOR_LINK_SECRET must be a real secret of 32+ characters outside local use")


class BadLink(ValueError):
    pass


@dataclass(frozen=True)
class DonorLink:
    donor_id: str
    expires: int


def sign_donor_link(
    secret: str, donor_id: str, now: float, lifetime: int = DEFAULT_LIFETIME, kind: str = PREFIX
) -> str:
    if not donor_id or "." in donor_id:
        raise ValueError("a donor id has no dots")
    body = f"{kind}.{donor_id}.{int(now) + lifetime}"
    return f"{body}.{_mac(secret, body)}"


def sign_record_link(secret: str, donor_id: str, now: float) -> str:
    return sign_donor_link(secret, donor_id, now, RECORD_LIFETIME, RECORD_PREFIX)


def read_record_link(secret: str, token: str, now: float) -> DonorLink:
    return read_donor_link(secret, token, now, RECORD_PREFIX)


def read_donor_link(secret: str, token: str, now: float, kind: str = PREFIX) -> DonorLink:
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != kind:
        raise BadLink("not a link of this kind")
    body, signature = ".".join(parts[:3]), parts[3]
    if not hmac.compare_digest(signature.encode(), _mac(secret, body).encode()):
        raise BadLink("the signature does not match")
    try:
        expires = int(parts[2])
    except ValueError as exc:
        raise BadLink("no expiry") from exc
    if expires <= now:
        raise BadLink("expired")
    return DonorLink(donor_id=parts[1], expires=expires)


def _mac(secret: str, body: str) -> str:
    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
