"""Personal data kept off Kafka's long retention by crypto-shredding (issue 19, docs/privacy.md).

Kafka keeps records for days and dead-letter topics for months, and no record can be edited:
so the personal fields of an event (a name, an address, a phone number, a person's own words)
leave a service sealed (AES-256-GCM) with a data key of the person they are about, and an
erasure destroys that key. Every copy of the record, on its topic, on a dead-letter topic or
in a replay, is then unreadable by anyone, with nothing on Kafka to rewrite.

- Which fields are personal, and whose: `PERSONAL`, one table for every contract; fields that
  only look personal are listed in `NOT_PERSONAL` with why (a unit test walks every contract
  and fails on a personal-looking field that is in neither).
- Whose key: a donor's (`donor:<donor id>`) for what is about a donor, and for a person who only
  booked or is waiting to confirm a sign-up the keyed hash of their email
  (`person:<pitchin_core.erasure.PersonHasher>`), the same hash an erasure request carries.
- The keys are held by signups (`person_keys`, signups migration 009), which destroys them in
  the erasure request's transaction. Signups reads its own table; the other services ask
  signups' internal routes (`/internal/person-keys/*`), once per relay pass or consumer batch,
  and keep the answers briefly (`CachedKeys`).
- Sealed where an event leaves for Kafka (`Sealer`, in the outbox relay: the SQL that stages
  events is unchanged) and opened where it is consumed (`Opener`, before the handler sees the
  model: handlers are unchanged). A field whose key is gone opens to `ERASED` values that every
  contract takes, so a consumer neither crashes nor dead-letters on it.
- An event staged before its subject was erased (still in an outbox when the key went) is not
  sealed with a new key: its personal fields leave as the `ERASED` values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Protocol

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pitchin_core.contracts.bookings import BookingFacts
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.donors import DonorConfirmationRequestedV1, DonorRegisteredV1, DonorUpdatedV1
from pitchin_core.contracts.matching import (
    AssignmentCompletedV1,
    AssignmentReleasedV1,
    HoursConfirmedV1,
    HoursLoggedV1,
    OfferDeclinedV1,
)
from pitchin_core.contracts.privacy import ErasureRequestedV1
from pitchin_core.contracts.registry import EVENT_TYPES
from pitchin_core.erasure import PersonHasher
from pitchin_core.settings import ServiceSettings, local_secret

log = logging.getLogger(__name__)


class Whose(StrEnum):
    """How an event names the person its personal fields are about."""

    donor = "donor"  # its `donor_id`
    booker = "booker"  # its `donor_id` if it has one, else the hash of its `email`
    email = "email"  # the hash of its `email` (no donor exists yet)


@dataclass(frozen=True)
class Personal:
    whose: Whose
    fields: tuple[str, ...]


# The personal fields of every contract (a model, or a base every model of a family extends).
PERSONAL: dict[type[EventData], Personal] = {
    DonorRegisteredV1: Personal(Whose.donor, ("name", "email", "phone")),
    DonorUpdatedV1: Personal(Whose.donor, ("name", "email", "phone")),
    DonorConfirmationRequestedV1: Personal(Whose.email, ("name", "email")),
    BookingFacts: Personal(Whose.booker, ("name", "email")),
    OfferDeclinedV1: Personal(Whose.donor, ("reason",)),
    AssignmentCompletedV1: Personal(Whose.donor, ("thanks",)),
    AssignmentReleasedV1: Personal(Whose.donor, ("reason",)),
    HoursLoggedV1: Personal(Whose.donor, ("note",)),
    HoursConfirmedV1: Personal(Whose.donor, ("reason",)),
}

# Fields whose names look personal but are not about a donor or a booker, each with why
# (`Model.field`, or `field` for every model that has it).
NOT_PERSONAL: dict[str, str] = {
    "need_title": "the title an organisation gave its need",
    "title": "an event's, fight's, need's or session's public title",
    "description": "an event's, fight's or need's public description, written by its organisation",
    "venue_name": "a venue's public name",
    "venue_address": "a venue's public address, not a person's",
    "livestream_platform": "the name of a streaming service",
    "organiser_email": (
        "an organisation's contact for its event, published with it: organisers are staff of a member"
        " organisation, not the donors and bookers erasure requests are for"
    ),
    "SessionPerson.name": "a speaker's name as printed on the public agenda",
    "OfferCancelledV1.reason": "Pitch In's own reason (the need closed or filled, the donor left)",
    "EventRescheduledV1.reason": "an organisation's public notice to everyone booked",
    "EventCancelledV1.reason": "an organisation's public notice to everyone booked",
    "FightClosedV1.outcome": "a fight's public outcome",
    "ScoreComponent.name": "the name of a ranking component",
    "ScoreComponent.why": "matching's explanation of a score, generated from skills and hours",
    "ErasureCompletedV1.service": "a service's name",
    "RejectionReason.message": "a validation message about a field, never its value",
    "IngestRejectedV1.reason": "a rejection's reason class",
    "NeedEscalatedV1.detail": "matching's account of an escalation step, about offers, not a person",
    "ContactPreferences.email": "whether the donor takes mail: yes or no, not an address",
}

# What other systems publish on the ingest topics is theirs, in clear: Pitch In cannot seal it.
# Those topics are trimmed once consumed (pitchin_core.ingest.trim) instead.
EXTERNAL_MODULE = "pitchin_core.contracts.ingest"

# What a personal field opens to once its key is gone: a value every contract takes.
ERASED_EMAIL = "erased@erased.example"
ERASED: dict[str, Any] = {
    "name": "erased",
    "email": ERASED_EMAIL,
    "phone": None,
    "reason": "",
    "thanks": "",
    "note": "",
}

# A sealed field's JSON: an object where the contract has a string, so it is never mistaken
# for a value and never passes a contract unopened.
SEALED = "pitchin_sealed"


def personal_of(model: type[EventData]) -> Personal | None:
    for base in model.__mro__:
        if base in PERSONAL:
            return PERSONAL[base]
    return None


PERSONAL_BY_TYPE: dict[str, Personal] = {
    name: found for name, model in EVENT_TYPES.items() if (found := personal_of(model)) is not None
}


def subject_of(personal: Personal, data: Mapping[str, Any], hasher: PersonHasher) -> str | None:
    """The key subject of an event's personal fields, or None if it names nobody."""
    donor_id = data.get("donor_id")
    if personal.whose is not Whose.email and isinstance(donor_id, str) and donor_id:
        return f"donor:{donor_id}"
    if personal.whose is Whose.donor:
        return None
    email = data.get("email")
    return f"person:{hasher.of(email)}" if isinstance(email, str) and email else None


def erased_subjects(donor_ids: Sequence[str], person_hash: str) -> list[str]:
    """Every key subject an erasure request destroys: the person's donors and their email's hash."""
    return [f"donor:{donor_id}" for donor_id in donor_ids] + [f"person:{person_hash}"]


def _aad(federation_id: str, field: str, key_id: str) -> bytes:
    # Bound to the tenant, the field and the key: a sealed value moved elsewhere does not open.
    return f"{federation_id}\n{field}\n{key_id}".encode()


@lru_cache(maxsize=4096)
def _cipher(secret: bytes) -> AESGCM:
    # A rush seals and opens many records of few people: the key schedule is made once per key.
    return AESGCM(secret)


def seal_value(value: Any, *, key_id: str, secret: bytes, federation_id: str, field: str) -> dict[str, str]:
    nonce = os.urandom(12)
    plain = json.dumps(value, separators=(",", ":")).encode("utf-8")
    box = _cipher(secret).encrypt(nonce, plain, _aad(federation_id, field, key_id))
    return {SEALED: "v1", "key": key_id, "box": base64.b64encode(nonce + box).decode("ascii")}


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SEALED) == "v1" and isinstance(value.get("key"), str)


def open_value(sealed: Mapping[str, Any], secret: bytes | None, *, federation_id: str, field: str) -> Any:
    """The field's value, or its ERASED value when the key is gone or the box does not open."""
    if secret is None:
        return ERASED.get(field, "erased")
    try:
        raw = base64.b64decode(str(sealed.get("box", "")), validate=True)
        plain = _cipher(secret).decrypt(raw[:12], raw[12:], _aad(federation_id, field, str(sealed["key"])))
        return json.loads(plain)
    except (InvalidTag, ValueError, TypeError):
        log.warning("a sealed %s did not open with its key: read as erased", field)
        return ERASED.get(field, "erased")


# --- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealingKey:
    """A subject's live key, and when the subject was last erased (None: never)."""

    key_id: str
    secret: bytes
    erased_at: datetime | None


Subject = tuple[str, str]  # (federation id, subject)


class KeyStore(Protocol):
    async def sealing_keys(self, subjects: Collection[Subject]) -> dict[Subject, SealingKey]:
        """Each subject's live key, made if it has none."""
        ...

    async def opening_keys(self, key_ids: Collection[str]) -> dict[str, bytes | None]:
        """Each key's secret; None for a key destroyed (or never made)."""
        ...


class KeysUnavailable(ConnectionError):
    """Signups did not answer for keys: passing, so relays pause and consumers retry the batch."""


class CachedKeys:
    """A store's answers kept briefly: a relay pass or a consumer batch asks once for what it
    lacks. Opening keys are forgotten whenever an erasure request is consumed, so a destroyed key
    is not used for longer than it takes the request to arrive (and never beyond `ttl_seconds`)."""

    def __init__(self, store: KeyStore, *, ttl_seconds: float = 30.0, max_keys: int = 100_000) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.max_keys = max_keys
        self._sealing: dict[Subject, tuple[float, SealingKey]] = {}
        self._opening: dict[str, tuple[float, bytes | None]] = {}
        self.asked = 0  # round trips to the store, for tests and benchmarks

    def forget(self) -> None:
        self._sealing.clear()
        self._opening.clear()

    async def sealing_keys(self, subjects: Collection[Subject]) -> dict[Subject, SealingKey]:
        now = time.monotonic()
        found = {s: hit[1] for s in subjects if (hit := self._sealing.get(s)) and hit[0] > now}
        missing = [s for s in subjects if s not in found]
        if missing:
            self.asked += 1
            fetched = await self.store.sealing_keys(missing)
            self._trim(self._sealing)
            self._sealing.update((s, (now + self.ttl_seconds, key)) for s, key in fetched.items())
            found.update(fetched)
        return found

    async def opening_keys(self, key_ids: Collection[str]) -> dict[str, bytes | None]:
        now = time.monotonic()
        found: dict[str, bytes | None] = {}
        missing: list[str] = []
        for key_id in key_ids:
            hit = self._opening.get(key_id)
            if hit is not None and hit[0] > now:
                found[key_id] = hit[1]
            else:
                missing.append(key_id)
        if missing:
            self.asked += 1
            fetched = await self.store.opening_keys(missing)
            self._trim(self._opening)
            for key_id in missing:
                found[key_id] = fetched.get(key_id)
                self._opening[key_id] = (now + self.ttl_seconds, found[key_id])
        return found

    def _trim(self, cache: dict[Any, Any]) -> None:
        if len(cache) >= self.max_keys:
            cache.clear()


class PersonKeysSettings(ServiceSettings):
    """The settings of a service that sends or reads personal fields (all but the web front)."""

    # Where the other services ask for keys (signups' first replica, or its Service).
    signups_url: str = "http://127.0.0.1:8001"
    # Shared by the four services: each asks with a token keyed by it and bound to its name.
    person_keys_secret: str = local_secret("person-keys-secret")
    # How long a key looked up is kept (an erasure request consumed drops them all at once).
    person_keys_cache_seconds: float = 30.0


PERSON_KEYS_PATH = "/internal/person-keys"
# The most keys one call to signups asks for (its routes refuse more); RemoteKeys asks in chunks
# of this, since a batch of a rush may carry 10,000 different people.
MAX_KEYS_ASKED = 5000
_TOKEN_LABEL = "pitchin/person-keys/v1/"


def service_token(secret: str, service: str) -> str:
    """The bearer token by which `service` asks signups for keys: its name and a keyed tag of it."""
    tag = hmac.new(secret.encode("utf-8"), (_TOKEN_LABEL + service).encode(), hashlib.sha256).hexdigest()
    return f"{service}.{tag}"


def service_of_token(secret: str, token: str) -> str | None:
    """The service a token was made for, or None if it was not made with `secret`."""
    service, _, _ = token.partition(".")
    if service and hmac.compare_digest(service_token(secret, service), token):
        return service
    return None


class RemoteKeys:
    """Signups' keys over its internal routes, for every other service."""

    def __init__(self, base_url: str, *, secret: str, service: str, timeout_seconds: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"authorization": f"Bearer {service_token(secret, service)}"}
        self.timeout_seconds = timeout_seconds
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        # Made on first use: httpx binds its pool to the running event loop.
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_seconds)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = await self._http().post(f"{PERSON_KEYS_PATH}/{path}", json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise KeysUnavailable(f"signups did not answer for person keys: {type(exc).__name__}: {exc}") from exc
        if answer.status_code != 200:
            # A refusal (401) is a deployment error, not the record's: retried, loudly, never dead-lettered.
            raise KeysUnavailable(f"signups answered {answer.status_code} for person keys: {answer.text[:200]}")
        found: dict[str, Any] = answer.json()
        return found

    async def sealing_keys(self, subjects: Collection[Subject]) -> dict[Subject, SealingKey]:
        found: dict[Subject, SealingKey] = {}
        asked = list(subjects)
        for start in range(0, len(asked), MAX_KEYS_ASKED):
            chunk = asked[start : start + MAX_KEYS_ASKED]
            answer = await self._post("seal", {"subjects": [{"federation_id": f, "subject": s} for f, s in chunk]})
            found.update(
                {
                    (k["federation_id"], k["subject"]): SealingKey(
                        k["key_id"],
                        base64.b64decode(k["key"]),
                        datetime.fromisoformat(k["erased_at"]) if k.get("erased_at") else None,
                    )
                    for k in answer["keys"]
                }
            )
        return found

    async def opening_keys(self, key_ids: Collection[str]) -> dict[str, bytes | None]:
        found: dict[str, bytes | None] = {}
        asked = list(key_ids)
        for start in range(0, len(asked), MAX_KEYS_ASKED):
            answer = await self._post("open", {"key_ids": asked[start : start + MAX_KEYS_ASKED]})
            found.update({k: (base64.b64decode(v) if v else None) for k, v in answer["keys"].items()})
        return found


# --- where events leave and arrive ----------------------------------------------------------


class Sealer:
    """Seals the personal fields of outbox rows as the relay sends them (one key look-up a pass)."""

    def __init__(self, keys: KeyStore, hasher: PersonHasher) -> None:
        self.keys = keys
        self.hasher = hasher

    async def seal(self, rows: Sequence[Any]) -> dict[int, str]:
        """For each outbox row (a record or mapping with seq, event_type, payload, occurred_at) that has
        personal fields, by `seq`, its payload with them sealed."""
        todo: list[tuple[int, datetime, Personal, dict[str, Any], Subject]] = []
        for row in rows:
            personal = PERSONAL_BY_TYPE.get(row["event_type"])
            if personal is None:
                continue
            data = json.loads(row["payload"])
            whose = subject_of(personal, data, self.hasher)
            if whose is None or not isinstance(data.get("federation_id"), str):
                continue
            todo.append((int(row["seq"]), row["occurred_at"], personal, data, (data["federation_id"], whose)))
        if not todo:
            return {}
        keys = await self.keys.sealing_keys({t[4] for t in todo})
        sealed: dict[int, str] = {}
        for seq, occurred_at, personal, data, subject in todo:
            key = keys[subject]
            for field in personal.fields:
                value = data.get(field)
                if value is None or value == "":
                    continue
                if key.erased_at is not None and occurred_at <= key.erased_at:
                    # Staged before the person was forgotten: not sealed again with a new key.
                    data[field] = ERASED.get(field, "erased")
                else:
                    data[field] = seal_value(
                        value, key_id=key.key_id, secret=key.secret, federation_id=subject[0], field=field
                    )
            sealed[seq] = json.dumps(data, separators=(",", ":"))
        return sealed


class Opener:
    """Opens the sealed fields of a batch's events before their handlers see them."""

    def __init__(self, keys: CachedKeys) -> None:
        self.keys = keys

    async def open(self, events: Sequence[CloudEvent | None]) -> list[CloudEvent | None]:
        wanted = {
            value["key"] for event in events if event is not None for value in event.data.values() if is_sealed(value)
        }
        secrets = await self.keys.opening_keys(wanted) if wanted else {}
        opened: list[CloudEvent | None] = []
        for event in events:
            if event is not None and event.type == ErasureRequestedV1.event_type:
                # Its keys are destroyed: the next batch asks signups again.
                self.keys.forget()
            if event is None or not any(is_sealed(v) for v in event.data.values()):
                opened.append(event)
                continue
            federation_id = str(event.data.get("federation_id", ""))
            data = {
                field: (
                    open_value(value, secrets.get(value["key"]), federation_id=federation_id, field=field)
                    if is_sealed(value)
                    else value
                )
                for field, value in event.data.items()
            }
            opened.append(replace(event, data=data))
        return opened


def opened_data(data: Mapping[str, Any], secrets: Callable[[str], bytes | None]) -> dict[str, Any]:
    """An event's data with every sealed field opened (for tools and tests that read topics)."""
    federation_id = str(data.get("federation_id", ""))
    return {
        field: (
            open_value(value, secrets(value["key"]), federation_id=federation_id, field=field)
            if is_sealed(value)
            else value
        )
        for field, value in data.items()
    }
