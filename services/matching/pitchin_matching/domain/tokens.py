"""Donor credentials: HMAC-signed, expiring tokens carried in the offer email's links.

Donors have no API keys and no accounts. An offer token lets its holder accept or decline
that one offer; a donor token lets its holder list that donor's offers and answer them.
Both are `v1.<kind>.<subject>.<expiry epoch>.<signature>`, the signature an HMAC-SHA256 of
the rest with a secret only matching holds (PITCHIN_OFFER_TOKEN_SECRET). Nothing is stored,
so nothing leaks from the database; a token names its subject, so it cannot be replayed
against another offer or donor; it expires (a week after the offer does).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

KINDS = ("offer", "donor")


class InvalidToken(ValueError):
    pass


@dataclass(frozen=True)
class TokenClaims:
    kind: str
    subject: str
    expires: int


def sign(secret: str, kind: str, subject: str, expires: int) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown token kind {kind!r}")
    body = f"v1.{kind}.{subject}.{expires}"
    return f"{body}.{_mac(secret, body)}"


def verify(secret: str, token: str, now: float) -> TokenClaims:
    parts = token.split(".")
    # Identifiers may not contain dots at the start but may inside: the subject is the middle.
    if len(parts) < 5 or parts[0] != "v1" or parts[1] not in KINDS:
        raise InvalidToken("not a Pitch In donor token")
    body, signature = ".".join(parts[:-1]), parts[-1]
    if not hmac.compare_digest(signature, _mac(secret, body)):
        raise InvalidToken("the token's signature does not match")
    try:
        expires = int(parts[-2])
    except ValueError as exc:
        raise InvalidToken("the token has no expiry") from exc
    if expires <= now:
        raise InvalidToken("the token has expired")
    return TokenClaims(kind=parts[1], subject=".".join(parts[2:-2]), expires=expires)


def _mac(secret: str, body: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), body.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
