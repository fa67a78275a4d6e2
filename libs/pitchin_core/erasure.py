"""What every service needs to erase a person (issue 19): the keyed hash they are found by, in
Python and in SQL, and the shared tables (kept answers, parked outbox rows) that may hold them.

An erasure request carries no email in clear (pitchin_core.contracts.privacy): it carries
HMAC-SHA256(person-hash key, lower-cased email). A service finds the rows that hold
the address by computing the same HMAC in PostgreSQL over its own column, so it needs neither
the address nor pgcrypto: HMAC is two SHA-256 rounds over the key padded and XORed with the
inner and outer constants (RFC 2104), and those two padded keys are passed as parameters.

The person-hash key is derived from the donor-link secret (`PITCHIN_DONOR_LINK_SECRET`), which
exactly the services that find people by hash already share (signups, notifications,
scheduling; and the web front): a key of its own for this one purpose (HMAC of a fixed label,
as HKDF-Expand does), so a hash never opens a page, a link is never a hash, and no new secret
has to reach every deployment. Rotating the donor-link secret changes the hashes: a request
already on its way still finds everything by its ids.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime

from pitchin_core.contracts.privacy import ErasureCompletedV1, ErasureRequestedV1
from pitchin_core.db import Conn
from pitchin_core.uow import Transaction

_BLOCK = 64  # SHA-256's block size (RFC 2104's B)


def normal_email(email: str) -> str:
    """The form an address is hashed in: the same person whatever case they typed it in."""
    return email.strip().lower()


class PersonHasher:
    """HMAC-SHA256 of a person's email with the platform secret, here and as a SQL expression."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the person hash needs a secret (derived from PITCHIN_DONOR_LINK_SECRET)")
        self._key = secret.encode("utf-8")
        padded = (hashlib.sha256(self._key).digest() if len(self._key) > _BLOCK else self._key).ljust(_BLOCK, b"\0")
        self.inner = bytes(b ^ 0x36 for b in padded)
        self.outer = bytes(b ^ 0x5C for b in padded)

    def of(self, email: str) -> str:
        return hmac.new(self._key, normal_email(email).encode("utf-8"), hashlib.sha256).hexdigest()

    def sql(self, column: str, inner: int, outer: int) -> str:
        """The hash of `column` (an email column) in SQL; bind `inner`/`outer` to `self.inner`/`self.outer`."""
        return (
            f"encode(sha256(${outer}::bytea || sha256(${inner}::bytea"
            f" || convert_to(lower(btrim({column})), 'UTF8'))), 'hex')"
        )


# The label the person-hash key is derived under: another purpose would take another label.
PERSON_HASH_LABEL = b"pitchin/person-hash/v1"


def person_hasher(settings: object) -> PersonHasher:
    """The hasher of a service whose settings hold the donor-link secret (see the module's docstring)."""
    secret = str(getattr(settings, "donor_link_secret", ""))
    if not secret:
        raise ValueError("the person hash needs a secret (derived from PITCHIN_DONOR_LINK_SECRET)")
    return PersonHasher(hmac.new(secret.encode("utf-8"), PERSON_HASH_LABEL, hashlib.sha256).hexdigest())


def needles_of(*groups: Sequence[str | None]) -> list[str]:
    """The strings a row holding the person would contain (addresses and ids), without blanks or repeats."""
    seen: dict[str, None] = {}
    for group in groups:
        for value in group:
            if value and len(value) >= 3:  # a one- or two-letter id would match unrelated rows
                seen.setdefault(value, None)
                seen.setdefault(value.lower(), None)
    return list(seen)


async def forget_answers(conn: Conn, needles: Sequence[str]) -> int:
    """Drop the kept Idempotency-Key answers that name the person (a sign-up's answer holds the
    whole profile): a retry after this runs again instead of replaying their data."""
    if not needles:
        return 0
    status = await conn.execute(
        "DELETE FROM idempotency_keys WHERE response_body IS NOT NULL AND EXISTS"
        " (SELECT 1 FROM unnest($1::text[]) n WHERE position(convert_to(n, 'UTF8') IN response_body) > 0)",
        list(needles),
    )
    return rows(status)


async def forget_parked_events(conn: Conn, needles: Sequence[str]) -> int:
    """Drop the outbox rows Kafka refused for good (outbox_dead_letters) that name the person."""
    if not needles:
        return 0
    status = await conn.execute(
        "DELETE FROM outbox_dead_letters WHERE EXISTS"
        " (SELECT 1 FROM unnest($1::text[]) n WHERE strpos(payload::text, n) > 0)",
        list(needles),
    )
    return rows(status)


def rows(status: str) -> int:
    """The row count of an asyncpg command status (``UPDATE 3``, ``DELETE 0``)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


async def finish_erasure(
    tx: Transaction,
    request: ErasureRequestedV1,
    service: str,
    counts: dict[str, int],
    needles: Sequence[str],
    now: datetime,
) -> None:
    """What every consuming service does last for a request: forget its stored answers and parked
    events that name the person, then report the counts per table to signups."""
    counts["idempotency_keys"] = await forget_answers(tx.conn, needles)
    counts["outbox_dead_letters"] = await forget_parked_events(tx.conn, needles)
    done = ErasureCompletedV1(
        federation_id=request.federation_id,
        request_id=request.request_id,
        service=service,
        counts=counts,
        completed_at=now,
    )
    await tx.emit(done, key=request.request_id, subject=f"erasure-requests/{request.request_id}")
