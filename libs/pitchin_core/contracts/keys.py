"""API keys' life cycle: produced by signups on pitchin.keys.v1, keyed by key id.

Federation staff issue, rotate and revoke keys through signups' HTTP API (`/v1/api-keys`); every
other service that checks keys keeps its own copy from these facts, so nobody copies a key into
four schemas by hand. A fact carries the key's SHA-256 and its whole state, never the key: the
hash of 256 random bits cannot be turned back into the key, and a copy can be rebuilt from the
latest fact of each key alone, whatever order two facts of different keys arrive in.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from pitchin_core.contracts.common import EventData, Label

TOPIC = "pitchin.keys.v1"


class ApiKeyFact(EventData):
    """What every fact about a key says: the key's state after the change."""

    key_id: UUID
    key_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the key, hex")
    role: str = Field(min_length=1, max_length=40)
    label: Label = ""
    expires_at: datetime | None = None
    revoked_at: datetime | None = Field(
        default=None, description="When the key stops working (may lie ahead: a rotated key's overlap)"
    )


class ApiKeyIssuedV1(ApiKeyFact):
    """A key was issued (a rotation issues the new key with this fact)."""

    event_type: ClassVar[str] = "org.pitchin.api-key.issued.v1"
    issued_at: datetime


class ApiKeyRevokedV1(ApiKeyFact):
    """A key was revoked, at once or at `revoked_at` (a rotated key, after its overlap)."""

    event_type: ClassVar[str] = "org.pitchin.api-key.revoked.v1"
