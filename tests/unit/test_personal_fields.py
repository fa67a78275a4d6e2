"""Personal fields leave sealed (pitchin_core.personal): every contract's fields are classified,
sealed values open with their key, and once the key is destroyed they open as erased.

The walk reads every contract's JSON Schema, as test_bounded_inputs does: a field added to a
contract whose name or format looks personal fails here until it is sealed or said not to be.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from pitchin_core.contracts.bookings import BookingConfirmedV1
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.ingest import Published
from pitchin_core.contracts.matching import AssignmentCompletedV1
from pitchin_core.contracts.privacy import ErasureRequestedV1
from pitchin_core.contracts.registry import EVENT_TYPES
from pitchin_core.erasure import PersonHasher
from pitchin_core.personal import (
    ERASED,
    MAX_KEYS_ASKED,
    NOT_PERSONAL,
    PERSONAL,
    PERSONAL_BY_TYPE,
    CachedKeys,
    Opener,
    PersonKeysSettings,
    RemoteKeys,
    Sealer,
    SealingKey,
    Subject,
    is_sealed,
    personal_of,
    service_of_token,
    service_token,
)

# Names a person's data goes by, as whole words of a field's name (`first_name`, `contact_phone`).
LOOKS_PERSONAL = re.compile(
    r"(^|_)(name|email|mail|phone|mobile|address|reason|thanks|note|notes|comment|message|description|"
    r"outcome|detail|details|why|bio|text|feedback|words)($|_)"
)


def _fields(model: type[EventData]) -> list[tuple[str, str, str, bool]]:
    """(owner, field, format, top level) of every property of the model and the models it holds."""
    schema = model.model_json_schema()
    defs: dict[str, Any] = schema.get("$defs", {})
    found: list[tuple[str, str, str, bool]] = []

    def formats(prop: dict[str, Any]) -> str:
        options = [prop, *prop.get("anyOf", []), *(prop.get("items", {}),)]
        return ",".join(str(o.get("format")) for o in options if isinstance(o, dict) and o.get("format"))

    for name, prop in schema.get("properties", {}).items():
        found.append((model.__name__, name, formats(prop), True))
    for owner, sub in defs.items():
        for name, prop in sub.get("properties", {}).items():
            found.append((owner, name, formats(prop), False))
    return found


def _classified(model: type[EventData], owner: str, name: str, top: bool) -> bool:
    personal = personal_of(model)
    if top and personal is not None and name in personal.fields:
        return True
    return f"{owner}.{name}" in NOT_PERSONAL or name in NOT_PERSONAL


def test_every_field_that_looks_personal_is_sealed_or_said_not_to_be() -> None:
    unclassified = [
        f"{model.__name__}.{name}" if owner == model.__name__ else f"{model.__name__} > {owner}.{name}"
        for model in EVENT_TYPES.values()
        if not issubclass(model, Published)  # what other systems publish: theirs, trimmed (pitchin_core.personal)
        for owner, name, fmt, top in _fields(model)
        if (LOOKS_PERSONAL.search(name) or "email" in fmt) and not _classified(model, owner, name, top)
    ]
    assert not unclassified, (
        "fields that look personal are neither in pitchin_core.personal.PERSONAL nor NOT_PERSONAL:"
        f" {sorted(set(unclassified))}"
    )


def test_no_classification_names_a_field_that_does_not_exist() -> None:
    every = {(owner, name) for model in EVENT_TYPES.values() for owner, name, _, _ in _fields(model)}
    names = {name for _, name in every}
    stale = [entry for entry in NOT_PERSONAL if ("." in entry and tuple(entry.split(".")) not in every)]
    stale += [entry for entry in NOT_PERSONAL if "." not in entry and entry not in names]
    for model, personal in PERSONAL.items():
        stale += [f"{model.__name__}.{f}" for f in personal.fields if f not in model.model_fields]
    assert not stale, stale


def test_a_sealed_field_is_top_level_and_opens_as_erased_to_a_value_its_contract_takes() -> None:
    for type_name, personal in PERSONAL_BY_TYPE.items():
        model = EVENT_TYPES[type_name]
        for name in personal.fields:
            info = model.model_fields[name]
            adapter: TypeAdapter[Any] = TypeAdapter(Annotated[info.annotation, info])  # type: ignore[arg-type]  # its own constraints
            assert name in ERASED, f"{type_name}.{name} has no erased value"
            try:
                adapter.validate_python(ERASED[name])
            except ValidationError as exc:
                pytest.fail(f"{type_name}.{name} refuses its erased value {ERASED[name]!r}: {exc}")


def test_every_service_that_sends_or_reads_people_has_person_keys() -> None:
    from pitchin_matching.main import MatchingSettings
    from pitchin_notifications.main import NotificationsSettings
    from pitchin_scheduling.main import SchedulingSettings
    from pitchin_signups.main import SignupsSettings

    for settings in (SignupsSettings, MatchingSettings, NotificationsSettings, SchedulingSettings):
        assert issubclass(settings, PersonKeysSettings), settings


def test_a_service_token_names_its_service_and_needs_the_secret() -> None:
    token = service_token("s" * 40, "matching")
    assert service_of_token("s" * 40, token) == "matching"
    assert service_of_token("t" * 40, token) is None
    assert service_of_token("s" * 40, "notifications." + token.split(".", 1)[1]) is None
    assert service_of_token("s" * 40, "") is None


# --- sealing and opening, with keys in memory ------------------------------------------------


@dataclass
class MemoryKeys:
    live: dict[Subject, SealingKey] = field(default_factory=dict)
    secrets: dict[str, bytes | None] = field(default_factory=dict)
    erased: dict[Subject, datetime] = field(default_factory=dict)
    calls: int = 0

    async def sealing_keys(self, subjects: Collection[Subject]) -> dict[Subject, SealingKey]:
        self.calls += 1
        for s in subjects:
            if s not in self.live:
                key = SealingKey(str(uuid.uuid4()), os.urandom(32), self.erased.get(s))
                self.live[s] = key
                self.secrets[key.key_id] = key.secret
        return {s: self.live[s] for s in subjects}

    async def opening_keys(self, key_ids: Collection[str]) -> dict[str, bytes | None]:
        self.calls += 1
        return {k: self.secrets.get(k) for k in key_ids}

    def destroy(self, subject: Subject, at: datetime) -> None:
        key = self.live.pop(subject, None)
        if key is not None:
            self.secrets[key.key_id] = None
        self.erased[subject] = at


HASHER = PersonHasher("k" * 64)
NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def _row(seq: int, data: EventData, occurred_at: datetime = NOW) -> dict[str, Any]:
    return {
        "seq": seq,
        "event_type": data.event_type,
        "payload": data.model_dump_json(),
        "occurred_at": occurred_at,
    }


def _event(payload: str, data: EventData) -> CloudEvent:
    return CloudEvent(id=str(uuid.uuid4()), source="/test", type=data.event_type, data=json.loads(payload))


def _booking(email: str = "Farra@Example.org", donor_id: str | None = None) -> BookingConfirmedV1:
    return BookingConfirmedV1(
        federation_id="fed-wm",
        booking_id="bk_1",
        event_id="ev_1",
        donor_id=donor_id,
        name="Farra Trompeter",
        email=email,
        confirmed_at=NOW,
    )


def test_sealed_fields_hold_nothing_readable_and_open_with_their_key() -> None:
    keys = MemoryKeys()
    booking, thanks = (
        _booking(),
        AssignmentCompletedV1(
            federation_id="fed-wm",
            offer_id="off_1",
            need_id="nd_1",
            fight_id="ft_1",
            donor_id="don_1",
            hours_given=2,
            thanks="Thank you Farra",
            completed_at=NOW,
        ),
    )
    sealed = asyncio.run(Sealer(keys, HASHER).seal([_row(1, booking), _row(2, thanks)]))
    assert set(sealed) == {1, 2} and keys.calls == 1, "one key look-up for the pass"
    for payload in sealed.values():
        assert "farra" not in payload.lower() and "trompeter" not in payload.lower()
    data = json.loads(sealed[1])
    assert is_sealed(data["name"]) and is_sealed(data["email"]) and data["booking_id"] == "bk_1"
    assert ("fed-wm", f"person:{HASHER.of('farra@example.org')}") in keys.live, "a booker without a donor id"
    assert ("fed-wm", "donor:don_1") in keys.live

    opener = Opener(CachedKeys(keys))
    events = [_event(sealed[1], booking), _event(sealed[2], thanks)]
    opened = asyncio.run(opener.open(events))
    assert opened[0] is not None and opened[0].data == booking.model_dump(mode="json")
    assert opened[1] is not None and opened[1].data["thanks"] == "Thank you Farra"


def test_a_destroyed_key_opens_as_erased_and_a_parseable_event() -> None:
    keys = MemoryKeys()
    booking = _booking(donor_id="don_7")
    sealed = asyncio.run(Sealer(keys, HASHER).seal([_row(1, booking)]))
    keys.destroy(("fed-wm", "donor:don_7"), NOW + timedelta(seconds=1))
    [opened] = asyncio.run(Opener(CachedKeys(keys)).open([_event(sealed[1], booking)]))
    assert opened is not None
    parsed = BookingConfirmedV1.model_validate(opened.data)
    assert (parsed.name, parsed.email) == (ERASED["name"], ERASED["email"])


def test_an_event_staged_before_its_person_was_erased_leaves_erased_not_under_a_new_key() -> None:
    keys = MemoryKeys()
    subject = ("fed-wm", f"person:{HASHER.of('farra@example.org')}")
    keys.destroy(subject, NOW)
    before, after = _row(1, _booking(), NOW - timedelta(seconds=1)), _row(2, _booking(), NOW + timedelta(seconds=1))
    sealed = asyncio.run(Sealer(keys, HASHER).seal([before, after]))
    assert json.loads(sealed[1])["email"] == ERASED["email"] and "farra" not in sealed[1].lower()
    assert is_sealed(json.loads(sealed[2])["email"]), "someone who comes back after erasure is sealed again"


def test_keys_are_cached_per_batch_and_dropped_when_an_erasure_request_arrives() -> None:
    keys = MemoryKeys()
    cached = CachedKeys(keys)
    booking = _booking(donor_id="don_9")
    sealed = asyncio.run(Sealer(cached, HASHER).seal([_row(1, booking)]))
    opener = Opener(cached)
    asyncio.run(opener.open([_event(sealed[1], booking)]))
    calls = keys.calls
    asyncio.run(opener.open([_event(sealed[1], booking)] * 3))
    assert keys.calls == calls, "a key looked up is kept"
    keys.destroy(("fed-wm", "donor:don_9"), NOW)
    request = ErasureRequestedV1(
        federation_id="fed-wm", request_id="era_1", person_hash="0" * 64, donor_ids=["don_9"], requested_at=NOW
    )
    erasure = CloudEvent(
        id="e1", source="/pitchin/signups", type=request.event_type, data=request.model_dump(mode="json")
    )
    asyncio.run(opener.open([erasure]))
    [opened] = asyncio.run(opener.open([_event(sealed[1], booking)]))
    assert opened is not None and opened.data["name"] == ERASED["name"], "the erasure dropped the cached key"


def test_a_sealed_value_moved_to_another_field_or_tenant_does_not_open() -> None:
    keys = MemoryKeys()
    booking = _booking()
    data = json.loads(asyncio.run(Sealer(keys, HASHER).seal([_row(1, booking)]))[1])
    data["name"], data["email"] = data["email"], data["name"]
    [opened] = asyncio.run(Opener(CachedKeys(keys)).open([_event(json.dumps(data), booking)]))
    assert opened is not None and opened.data["name"] == ERASED["name"] and opened.data["email"] == ERASED["email"]


def test_remote_keys_ask_signups_in_chunks_its_routes_take() -> None:
    """A rush's batch may carry 10,000 different people; signups refuses more than
    MAX_KEYS_ASKED keys a call, so asking for them all at once would stall the consumer."""
    sizes: list[int] = []

    def signups(request: httpx.Request) -> httpx.Response:
        asked = json.loads(request.content)["key_ids"]
        sizes.append(len(asked))
        if len(asked) > MAX_KEYS_ASKED:
            return httpx.Response(422, json={"title": "too many"})
        return httpx.Response(200, json={"keys": {k: base64.b64encode(b"k" * 32).decode() for k in asked}})

    async def ask() -> dict[str, bytes | None]:
        keys = RemoteKeys("http://signups", secret="s" * 40, service="notifications")
        keys._client = httpx.AsyncClient(base_url="http://signups", transport=httpx.MockTransport(signups))
        try:
            return await keys.opening_keys([f"key-{i}" for i in range(2 * MAX_KEYS_ASKED + 1)])
        finally:
            await keys.close()

    found = asyncio.run(ask())
    assert len(found) == 2 * MAX_KEYS_ASKED + 1 and sizes == [MAX_KEYS_ASKED, MAX_KEYS_ASKED, 1]
