"""Every signature Pitch In makes or checks: signed expiring tokens, and Standard Webhooks.

**Tokens** (donor links, record links, offer and donor tokens, unsubscribe links) are
``<field>.<field>…[.<expiry epoch>].<signature>``: an HMAC-SHA256 of everything before the
last dot, base64url without padding. Nothing is stored: a token names what it opens, so it
cannot be turned into another's, and an expiring one stops working when it expires. Each
kind of token starts with its own tag (``d1``, ``r1``, ``v1.offer`` …) and is made with the
secret of the service that reads it, so one kind never opens another's door.

**Standard Webhooks** (https://www.standardwebhooks.com): ``v1,<base64 HMAC-SHA256 of
"<id>.<timestamp>.<body>">`` with the key inside a ``whsec_<base64>`` secret. Publishers
sign what they send to ingest with it; notifications signs what it sends to subscribers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

WEBHOOK_SECRET_PREFIX = "whsec_"
WEBHOOK_TOLERANCE_SECONDS = 300


class BadToken(ValueError):
    """A token that is malformed, of another kind, not signed with this secret, or expired."""


def mac(secret: str | bytes, body: str, *, length: int | None = None) -> str:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    digest = hmac.new(key, body.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:length] if length else digest).rstrip(b"=").decode("ascii")


def seal(secret: str | bytes, body: str, *, length: int | None = None) -> str:
    """`body` with its signature appended: the holder can read it but not change it."""
    return f"{body}.{mac(secret, body, length=length)}"


def unseal(secret: str | bytes, token: str, *, length: int | None = None) -> str:
    """The body of a sealed token; BadToken when the signature does not match."""
    body, dot, signature = token.rpartition(".")
    if not dot or not body:
        raise BadToken("not a signed token")
    if not hmac.compare_digest(signature.encode("ascii", "replace"), mac(secret, body, length=length).encode()):
        raise BadToken("the signature does not match")
    return body


def sign_expiring(secret: str | bytes, fields: Sequence[str], expires: int) -> str:
    """A token of `fields` (the first ones name its kind) that stops working at `expires` (epoch seconds)."""
    if any("." in f for f in fields[:-1]) or not fields or not fields[-1]:
        # Only the last field (the subject) may hold dots: read_expiring finds it between prefix and expiry.
        raise ValueError("a token's kind fields have no dots and its subject is not empty")
    return seal(secret, ".".join([*fields, str(int(expires))]))


def read_expiring(secret: str | bytes, token: str, now: float, *, prefix: Sequence[str]) -> tuple[str, int]:
    """The subject (what follows `prefix`) and expiry of a token made by `sign_expiring`.

    BadToken when the token is of another kind, altered, or expired. The subject may hold
    dots: it is everything between the prefix and the expiry.
    """
    head = ".".join(prefix) + "."
    if not token.startswith(head):
        raise BadToken("not a token of this kind")
    body = unseal(secret, token)
    subject, dot, expiry = body[len(head) :].rpartition(".")
    if not dot or not subject:
        raise BadToken("not a token of this kind")
    try:
        expires = int(expiry)
    except ValueError as exc:
        raise BadToken("no expiry") from exc
    if expires <= now:
        raise BadToken("expired")
    return subject, expires


# -- Standard Webhooks ---------------------------------------------------------------------------


def new_webhook_secret(random_bytes: bytes | None = None) -> str:
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(random_bytes or secrets.token_bytes(24)).decode("ascii")


def _webhook_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX))


def webhook_signature(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The `v1,<base64>` signature of one message (what goes in `webhook-signature`)."""
    content = body.encode("utf-8") if isinstance(body, str) else body
    digest = hmac.new(_webhook_key(secret), f"{msg_id}.{timestamp}.".encode() + content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def webhook_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook_signature(secret, msg_id, timestamp, body),
    }


def verify_webhook(
    secret: str,
    msg_id: str,
    timestamp: str,
    body: bytes,
    signatures: str,
    now: float,
    tolerance: int = WEBHOOK_TOLERANCE_SECONDS,
) -> str | None:
    """None when one of the space-separated signatures is valid and fresh; otherwise what is wrong."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return "webhook-timestamp: not a Unix timestamp in seconds"
    if abs(now - sent_at) > tolerance:
        return f"webhook-timestamp: more than {tolerance} s from now (replayed or clock skew)"
    expected = webhook_signature(secret, msg_id, sent_at, body)
    for candidate in signatures.split():
        if hmac.compare_digest(candidate, expected):
            return None
    return "webhook-signature: no v1 signature matches the body with this source's secret"
