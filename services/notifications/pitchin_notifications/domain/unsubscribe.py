"""Signed one-click unsubscribe tokens (RFC 8058): who, on which channel, for which federation. Pure."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Unsubscribe:
    federation_id: str
    address: str
    channel: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(key: bytes, who: Unsubscribe) -> str:
    body = json.dumps([who.federation_id, who.address.lower(), who.channel], separators=(",", ":")).encode()
    mac = hmac.new(key, body, hashlib.sha256).digest()[:16]
    return f"{_b64(body)}.{_b64(mac)}"


def read_token(key: bytes, token: str) -> Unsubscribe | None:
    """The unsubscribe a token stands for, or None when it was not made with ``key``."""
    try:
        body_part, mac_part = token.split(".", 1)
        body = _unb64(body_part)
        mac = _unb64(mac_part)
    except (ValueError, TypeError):
        return None
    if not hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest()[:16], mac):
        return None
    try:
        federation_id, address, channel = json.loads(body)
    except (ValueError, TypeError):
        return None
    return Unsubscribe(str(federation_id), str(address), str(channel))


def address_hash(address: str) -> str:
    """Suppressions keep a hash, not the address, so they outlive an erasure."""
    return hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()
