"""Donor credentials: HMAC-signed, expiring tokens carried in the offer email's links.

Donors have no API keys and no accounts. An offer token lets its holder accept or decline
that one offer; a donor token lets its holder list that donor's offers and answer them.
Both are `v1.<kind>.<subject>.<expiry epoch>.<signature>` (`pitchin_core.signing`), the
signature an HMAC-SHA256 of the rest with a secret only matching holds
(PITCHIN_OFFER_TOKEN_SECRET). Nothing is stored, so nothing leaks from the database; a token
names its subject, so it cannot be replayed against another offer or donor; it expires (a
week after the offer does).
"""

from __future__ import annotations

from dataclasses import dataclass

from pitchin_core.signing import BadToken, read_expiring, sign_expiring

VERSION = "v1"
KINDS = ("offer", "donor")
NOT_OURS = "not a Pitch In donor token"
# What a donor is told after "This link does not work: ", in the words used since the first
# offer emails went out (signing's own reasons are terser).
REASONS = {
    "the signature does not match": "the token's signature does not match",
    "no expiry": "the token has no expiry",
    "expired": "the token has expired",
}


class InvalidToken(BadToken):
    """A donor token that does not open anything; its message says why, for the donor."""


@dataclass(frozen=True)
class TokenClaims:
    kind: str
    subject: str
    expires: int


def sign(secret: str, kind: str, subject: str, expires: int) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown token kind {kind!r}")
    return sign_expiring(secret, [VERSION, kind, subject], expires)


def verify(secret: str, token: str, now: float) -> TokenClaims:
    parts = token.split(".")
    # Identifiers may hold dots: the subject is everything between the kind and the expiry.
    if len(parts) < 5 or parts[0] != VERSION or parts[1] not in KINDS:
        raise InvalidToken(NOT_OURS)
    kind = parts[1]
    try:
        subject, expires = read_expiring(secret, token, now, prefix=[VERSION, kind])
    except BadToken as exc:
        raise InvalidToken(REASONS.get(str(exc), NOT_OURS)) from exc
    return TokenClaims(kind=kind, subject=subject, expires=expires)
