"""Standard Webhooks (standardwebhooks.com): payload shape, signing and verifying. Pure.

Signed content is ``"{webhook-id}.{webhook-timestamp}.{body}"``; the key is the base64 part
of a ``whsec_`` secret; the signature header is a space-separated list of ``v1,<base64>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 5 * 60


def new_secret(random_bytes: bytes) -> str:
    """A secret in the spec's format, from 24 to 64 random bytes the caller drew."""
    if not 24 <= len(random_bytes) <= 64:
        raise ValueError("a webhook secret takes 24 to 64 random bytes")
    return SECRET_PREFIX + base64.b64encode(random_bytes).decode("ascii")


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``webhook-signature`` value for one attempt."""
    payload = body.encode("utf-8") if isinstance(body, str) else body
    content = f"{msg_id}.{timestamp}.".encode() + payload
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(
    secret: str,
    received: Mapping[str, str],
    body: bytes,
    now: datetime,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: any listed v1 signature matches and the timestamp is fresh."""
    lowered = {k.lower(): v for k, v in received.items()}
    try:
        msg_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        listed = lowered["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs(now.timestamp() - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, msg_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in listed)


def payload(event_type: str, timestamp: datetime, data: Mapping[str, Any]) -> bytes:
    """The spec's recommended envelope: ``{"type", "timestamp", "data"}``."""
    body = {"type": event_type, "timestamp": timestamp.isoformat().replace("+00:00", "Z"), "data": dict(data)}
    return json.dumps(body, separators=(",", ":"), default=str, sort_keys=True).encode("utf-8")


def wants(event_types: list[str] | tuple[str, ...], event_type: str) -> bool:
    """A subscription to ``*``, to the exact type, or to a prefix ending in ``*``."""
    for pattern in event_types:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith("*") and event_type.startswith(pattern[:-1]):
            return True
    return False
