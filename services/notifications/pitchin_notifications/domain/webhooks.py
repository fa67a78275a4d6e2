"""Standard Webhooks (standardwebhooks.com) as notifications sends them: the payload shape,
which subscriptions want an event, and the headers of one attempt. Pure.

Signing and verifying are `pitchin_core.signing`'s (signed content
``"{webhook-id}.{webhook-timestamp}.{body}"``, the key inside a ``whsec_`` secret, a
space-separated list of ``v1,<base64>`` signatures); this module adds what is ours.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pitchin_core.signing import verify_webhook, webhook_headers


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """What one attempt is POSTed with: the signature headers and the payload's media type."""
    return {**webhook_headers(secret, msg_id, timestamp, body), "content-type": "application/json"}


def verify(secret: str, received: Mapping[str, str], body: bytes, now: datetime) -> bool:
    """What a subscriber does with the headers it received: any listed v1 signature matches and is fresh."""
    lowered = {k.lower(): v for k, v in received.items()}
    try:
        msg_id = lowered["webhook-id"]
        timestamp = lowered["webhook-timestamp"]
        signatures = lowered["webhook-signature"]
    except KeyError:
        return False
    return verify_webhook(secret, msg_id, timestamp, body, signatures, now.timestamp()) is None


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
