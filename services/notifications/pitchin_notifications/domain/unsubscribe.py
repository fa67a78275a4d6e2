"""Signed one-click unsubscribe tokens (RFC 8058): who, on which channel, for which federation. Pure.

A token is ``<base64url JSON>.<base64url of the first 16 bytes of its HMAC-SHA256>``, the MAC
made by `pitchin_core.signing.mac` over the JSON itself. `signing.seal` would sign the
base64 text instead, which would turn every unsubscribe link already sent into a dead one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from pitchin_core.signing import mac

MAC_BYTES = 16


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
    body = json.dumps([who.federation_id, who.address.lower(), who.channel], separators=(",", ":"))
    return f"{_b64(body.encode())}.{mac(key, body, length=MAC_BYTES)}"


def read_token(key: bytes, token: str) -> Unsubscribe | None:
    """The unsubscribe a token stands for, or None when it was not made with ``key``."""
    try:
        body_part, signature = token.split(".", 1)
        body = _unb64(body_part).decode("utf-8")
    except (ValueError, binascii.Error):
        return None
    expected = mac(key, body, length=MAC_BYTES)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
        return None
    try:
        federation_id, address, channel = json.loads(body)
    except (ValueError, TypeError):
        return None
    return Unsubscribe(str(federation_id), str(address), str(channel))


def address_hash(address: str) -> str:
    """Suppressions keep a hash, not the address, so they outlive an erasure."""
    return hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()
