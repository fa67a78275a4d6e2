"""A person who asks to be forgotten is found nowhere within a minute (issue 19).

The person is made to leave traces in every service the way real use does (a sign-up, bookings
through the API and the web page, an offer of work, mail, a webhook); the test finds them in
every text, jsonb and bytea column of every service's schema first (so the search can fail),
then asks for their erasure and searches again.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from examples.publishers import kafka_publisher
from examples.publishers.samples import every_type
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.topics import all_topic_partitions
from pitchin_core.erasure import person_hasher
from pitchin_core.kafka_auth import ingest_topic
from pitchin_core.personal import KeyStore, RemoteKeys, Sealer, is_sealed, opened_data
from pitchin_testing.kafka import KafkaServer, admin_options
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import (
    bearer,
    create_event,
    eventually,
    read_topic,
    send_cloud_events,
    sign_up,
    wait_until_signups_knows,
)
from tests.e2e.test_matching import _at, _event, _known_to_matching, _made_event, _need_opened, _publish, _wait_offers
from tests.e2e.test_notifications_kit import Recorder

pytestmark = pytest.mark.e2e

SCHEMAS = ("signups", "matching", "notifications", "scheduling", "web")
# Text the search reads: every column a name, an address or a number could be written into.
SEARCHED_TYPES = ("text", "character varying", "character", "jsonb", "json", "bytea", "ARRAY")
ERASED_WITHIN_SECONDS = 60.0


async def _places_holding(database_url: str, needles: dict[str, str]) -> dict[str, set[str]]:
    """For each needle (label -> text), the `schema.table.column`s that hold it, case-insensitively."""
    conn = await asyncpg.connect(database_url)
    try:
        columns = await conn.fetch(
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE table_schema = ANY($1::text[]) AND t.table_type = 'BASE TABLE' AND data_type = ANY($2::text[])",
            list(SCHEMAS),
            list(SEARCHED_TYPES),
        )
        assert columns, "no columns to search: are the schemas named as the services?"
        found: dict[str, set[str]] = {label: set() for label in needles}
        for column in columns:
            qualified = f'"{column["table_schema"]}"."{column["table_name"]}"'
            name = f'"{column["column_name"]}"'
            # bytea with its ASCII as is (an Idempotency-Key's stored answer is JSON); anything else as text.
            text = f"encode({name}, 'escape')" if column["data_type"] == "bytea" else f"{name}::text"
            for label, needle in needles.items():
                hit = await conn.fetchval(
                    f"SELECT EXISTS (SELECT 1 FROM {qualified} WHERE strpos(lower({text}), lower($1)) > 0)", needle
                )
                if hit:
                    found[label].add(f"{column['table_schema']}.{column['table_name']}.{column['column_name']}")
        return found
    finally:
        await conn.close()


def _places(stack: Stack, needles: dict[str, str]) -> dict[str, set[str]]:
    return asyncio.run(_places_holding(stack.database_url, needles))


async def _messages_naming(database_url: str, email: str) -> list[dict[str, Any]]:
    """The deliveries still naming the person, said in a failure: which fact staged them, and when."""
    conn = await asyncpg.connect(database_url)
    try:
        found = await conn.fetch(
            "SELECT event_type, template, channel, status, created_at FROM notifications.deliveries"
            " WHERE strpos(lower(recipient), $1) > 0 OR strpos(lower(body_text), $1) > 0 ORDER BY created_at",
            email.lower(),
        )
        return [dict(r) for r in found]
    finally:
        await conn.close()


def _subject_access(stack: Stack, staff: str, email: str) -> dict[str, Any]:
    """Every service's part of a subject access request: signups' first, for the person's ids."""

    def ask(service: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = httpx.post(f"{stack[service].url}/v1/subject-access", json=body, headers=bearer(staff), timeout=15)
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        part: dict[str, Any] = answer.json()
        return part

    parts = {"signups": ask("signups", {"email": email})}
    ids = parts["signups"]["ids"]
    for service in ("matching", "notifications", "scheduling"):
        parts[service] = ask(service, {"email": email, **ids})
    return parts


def _csrf(client: httpx.Client, path: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found, f"no CSRF field on {path}"
    return found.group(1)


def _fight(organiser_key: str, stack: Stack, marker: str) -> dict[str, Any]:
    deadline = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    answer = httpx.post(
        f"{stack['signups'].url}/v1/fights",
        json={
            "kind": "strike",
            "title": f"Erasure strike {marker}",
            "needs": [
                {
                    "title": f"Social media plan {marker}",
                    "required_skills": [{"skill": "social-media", "min_level": "advanced"}],
                    "estimated_hours": 4,
                    "deadline": deadline,
                    "urgency": "critical",
                }
            ],
        },
        headers=bearer(organiser_key),
        timeout=15,
    )
    assert answer.status_code == 201, answer.text
    fight: dict[str, Any] = answer.json()
    return fight


def test_an_erased_person_is_found_in_no_table_of_any_service_within_a_minute(stack: Stack, mailbox: SmtpSink) -> None:
    federation = stack.web_federation_id  # the web front's: the person also books on its pages
    organisation = f"org-{uuid.uuid4().hex[:8]}"
    organiser = stack.issue_key(federation, organisation, "organiser")
    staff = stack.issue_key(federation, None, "federation-staff")
    marker = uuid.uuid4().hex[:10]
    name = f"Ysolde Marchbank-{marker}"
    email = f"erase-{marker}@example.org"
    phone = "+4477009" + str(uuid.uuid4().int % 10**5).zfill(5)
    person = {"email": email, "name": name, "phone": phone}

    with Recorder(status=200) as receiver:
        hooked = httpx.post(
            f"{stack['notifications'].url}/v1/webhooks",
            json={"url": f"{receiver.url}/hooks", "event_types": ["org.pitchin.booking.*"]},
            headers=bearer(organiser),
            timeout=10,
        )
        assert hooked.status_code == 201, hooked.text

        # A donor, welcomed by mail; offered the work a need asks for.
        # With an Idempotency-Key: its stored answer (the whole profile) is one more place to erase.
        retry_key = {"Idempotency-Key": f"erasure-{marker}"}
        donor = sign_up(stack, organiser, headers=retry_key, name=name, email=email, phone=phone).json()
        donor_id = donor["donor_id"]
        mailbox.wait_for(lambda m: m["To"] == email, timeout=60)
        eventually(
            lambda: (
                httpx.get(f"{stack['matching'].url}/v1/donors/{donor_id}", headers=bearer(staff), timeout=5).status_code
                == 200
            ),
            timeout=60,
            what="matching to learn the donor",
        )
        _fight(organiser, stack, marker)

        # Booked through the API on one event and through the web page on another.
        by_api = create_event(stack, organiser, title=f"Meet-up {marker}").json()["event_id"]
        on_web = create_event(stack, organiser, title=f"Web meet-up {marker}").json()["event_id"]
        wait_until_signups_knows(stack, organiser, by_api)
        wait_until_signups_knows(stack, organiser, on_web)
        booked = httpx.post(
            f"{stack['signups'].url}/v1/events/{by_api}/bookings",
            json={"name": name, "email": email, "donor_id": donor_id},
            headers=bearer(organiser),
            timeout=15,
        )
        assert booked.status_code in (200, 201), booked.text
        with httpx.Client(base_url=stack["web"].url, timeout=15) as web:
            csrf = _csrf(web, f"/events/{on_web}")
            rsvp = web.post(f"/events/{on_web}/rsvp", data={"csrf": csrf, "name": name, "email": email})
            assert rsvp.status_code == 303, rsvp.text
        receiver.wait_for(lambda got: sum(email.encode() in r.body for r in got) >= 2, timeout=60)

    offered = eventually(
        lambda: (
            httpx.get(f"{stack['matching'].url}/v1/donors/{donor_id}/offers", headers=bearer(staff), timeout=5)
            .json()
            .get("offers")
        ),
        timeout=60,
        what="an offer to the donor",
    )
    assert offered

    # Every place the person is held, found first: a search that finds nothing proves nothing.
    before = eventually(
        lambda: (
            found
            if {
                "signups.donors.email",
                "signups.bookings.email",
                "signups.idempotency_keys.response_body",
                "notifications.people.email",
                "notifications.attendees.email",
                "notifications.deliveries.recipient",
                "scheduling.attendees.email",
                "scheduling.person_feeds.email",
            }
            <= (found := _places(stack, person))["email"]
            else None
        ),
        timeout=60,
        what="the person in every service",
    )
    assert "signups.donors.phone" in before["phone"] and "notifications.people.phone" in before["phone"]
    assert "notifications.deliveries.body_text" in before["name"]

    # Subject access finds every one of those places, service by service.
    export = _subject_access(stack, staff, email)
    assert [d["donor_id"] for d in export["signups"]["tables"]["donors"]] == [donor_id]
    assert export["signups"]["tables"]["donors"][0]["phone"] == phone
    assert len(export["signups"]["tables"]["bookings"]) == 2
    assert export["matching"]["tables"]["offers"], "the offer of work"
    assert len(export["notifications"]["tables"]["people"]) == 1
    assert len(export["notifications"]["tables"]["attendees"]) == 2
    channels = {d["channel"] for d in export["notifications"]["tables"]["deliveries"]}
    assert {"email", "webhook"} <= channels, channels
    assert len(export["scheduling"]["tables"]["attendees"]) == 2
    assert len(export["scheduling"]["tables"]["person_feeds"]) == 1

    asked = httpx.post(
        f"{stack['signups'].url}/v1/erasure-requests", json={"email": email}, headers=bearer(staff), timeout=15
    )
    assert asked.status_code == 202, asked.text
    request_id = asked.json()["request_id"]
    assert asked.headers["location"] == f"/v1/erasure-requests/{request_id}"

    progress = eventually(
        lambda: (
            got
            if (
                got := httpx.get(
                    f"{stack['signups'].url}/v1/erasure-requests/{request_id}", headers=bearer(staff), timeout=5
                ).json()
            )["status"]
            == "done"
            else None
        ),
        timeout=ERASED_WITHIN_SECONDS,
        what="every service to report its part",
    )
    assert set(progress["services"]) == {"signups", "matching", "notifications", "scheduling"}
    took = datetime.fromisoformat(progress["done_at"]) - datetime.fromisoformat(progress["requested_at"])
    assert took < timedelta(seconds=ERASED_WITHIN_SECONDS), took
    print(f"erased in every service {took.total_seconds():.2f} s after the request")  # shown with -s
    assert progress["services"]["signups"]["counts"]["bookings"] == 2
    assert progress["services"]["scheduling"]["counts"]["attendees"] == 2
    # The donor's own messages may have gone already with the `donor.withdrawn{erase}` signups also
    # sent; the web booking's mail and the two webhooks name no donor, and only this request finds them.
    assert progress["services"]["notifications"]["counts"]["deliveries"] >= 3
    after = _places(stack, person)
    assert after == {"email": set(), "name": set(), "phone": set()}, (
        after,
        progress,
        asyncio.run(_messages_naming(stack.database_url, email)),
    )
    # Asked again, every service finds nothing of the person (the erasure request itself stays, by hash).
    export = _subject_access(stack, staff, email)
    assert [len(rows) for rows in export["scheduling"]["tables"].values()] == [0, 0]
    assert export["notifications"]["tables"]["people"] == [] and export["signups"]["tables"]["donors"] == []
    assert len(export["signups"]["tables"]["erasure_requests"]) == 1

    # Counts stay, anonymised: the two places are still taken.
    places = httpx.get(f"{stack['signups'].url}/v1/events/{by_api}/places", headers=bearer(organiser), timeout=5)
    assert places.json()["confirmed"] == 1, places.text
    # Staff cannot be told the address back, and a second request for it is refused (nothing left to find).
    again = httpx.post(
        f"{stack['signups'].url}/v1/erasure-requests", json={"donor_id": donor_id}, headers=bearer(staff), timeout=15
    )
    assert again.status_code == 409, again.text


def test_someone_who_only_booked_asks_from_their_booking_page(stack: Stack) -> None:
    federation = stack.web_federation_id
    organiser = stack.issue_key(federation, f"org-{uuid.uuid4().hex[:8]}", "organiser")
    staff = stack.issue_key(federation, None, "federation-staff")
    marker = uuid.uuid4().hex[:10]
    name, email = f"Oona Brackenridge-{marker}", f"rsvp-erase-{marker}@example.org"
    event_id = create_event(stack, organiser, title=f"Web meet-up {marker}").json()["event_id"]
    wait_until_signups_knows(stack, organiser, event_id)
    with httpx.Client(base_url=stack["web"].url, timeout=15) as web:
        csrf = _csrf(web, f"/events/{event_id}")
        rsvp = web.post(f"/events/{event_id}/rsvp", data={"csrf": csrf, "name": name, "email": email})
        assert rsvp.status_code == 303, rsvp.text
        booking_page = rsvp.headers["location"]
        eventually(
            lambda: "scheduling.attendees.email" in _places(stack, {"email": email})["email"],
            timeout=60,
            what="scheduling to learn the booking",
        )
        page = web.get(booking_page)
        assert f'action="{booking_page}/erase"' in page.text, "the booking page offers the erasure"
        asked = web.post(f"{booking_page}/erase", data={"csrf": _csrf(web, booking_page)})
        assert asked.status_code == 303, asked.text
    eventually(
        lambda: _places(stack, {"email": email, "name": name}) == {"email": set(), "name": set()},
        timeout=ERASED_WITHIN_SECONDS,
        what="the person to be found nowhere",
    )
    # Signups records the request as the person's own, and no key but staff's reads it.
    [request_row] = asyncio.run(_requests_of(stack.database_url, federation, marker))
    assert request_row["asked_by"] == "person"
    seen = httpx.get(
        f"{stack['signups'].url}/v1/erasure-requests/{request_row['request_id']}", headers=bearer(organiser), timeout=5
    )
    assert seen.status_code == 403
    seen = httpx.get(
        f"{stack['signups'].url}/v1/erasure-requests/{request_row['request_id']}", headers=bearer(staff), timeout=5
    )
    assert seen.status_code == 200


async def _requests_of(database_url: str, federation: str, marker: str) -> list[asyncpg.Record]:
    """The erasure requests made for the booking whose event title carries `marker` (found by the
    event, since the request itself keeps no address)."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(
            "SELECT r.request_id, r.asked_by FROM signups.erasure_requests r"
            " JOIN signups.bookings b ON b.booking_id = ANY(r.booking_ids)"
            " JOIN signups.known_events e ON e.event_id = b.event_id"
            " WHERE r.federation_id = $1 AND e.title LIKE '%' || $2",
            federation,
            marker,
        )
    finally:
        await conn.close()


async def _topics_holding(
    bootstrap: str, needles: dict[str, str], keys: KeyStore | None = None, within: float = 60.0
) -> dict[str, set[str]]:
    """For each needle, the topics (dead-letter topics included) on which a record's key, value or
    headers hold it, read from the beginning of every partition to its end as the Kafka admin.

    With `keys` the records are read as a consumer reads them: their sealed fields opened with
    the keys signups still holds (one look-up for them all); without, as the bytes Kafka keeps."""
    consumer = AIOKafkaConsumer(**admin_options(bootstrap), enable_auto_commit=False, group_id=None)
    await consumer.start()
    found: dict[str, set[str]] = {label: set() for label in needles}
    wanted = {label: needle.lower().encode() for label, needle in needles.items()}
    read: list[tuple[str, bytes]] = []
    try:
        # Every topic of the table and its dead-letter topics (publishers' own topics carry no one here).
        partitions = [TopicPartition(t, p) for t, count in all_topic_partitions().items() for p in range(count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        pending = {tp for tp in partitions if ends[tp] > 0}
        async with asyncio.timeout(within):
            while pending:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                for tp, records in batch.items():
                    for r in records:
                        blob = b"".join([r.key or b"", r.value or b"", *(v or b"" for _, v in r.headers)])
                        # Opened, the value is what is read: its JSON is parsed and written again.
                        read.append((tp.topic, blob if keys is None else r.value or b""))
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
    finally:
        await consumer.stop()
    if keys is not None:
        read = await _open_all(read, keys)
    for topic, blob in read:
        for label, needle in wanted.items():
            if needle in blob.lower():
                found[label].add(topic)
    return found


async def _open_all(read: list[tuple[str, bytes]], keys: KeyStore) -> list[tuple[str, bytes]]:
    """Each record's value with its sealed fields opened, as JSON text."""
    parsed: list[tuple[str, Any]] = []
    for topic, value in read:
        try:
            parsed.append((topic, json.loads(value)))
        except ValueError:
            parsed.append((topic, None))
    key_ids = {v["key"] for _, data in parsed if isinstance(data, dict) for v in data.values() if is_sealed(v)}
    secrets = await keys.opening_keys(key_ids) if key_ids else {}
    return [
        (topic, json.dumps(opened_data(data, secrets.get)).encode() if isinstance(data, dict) else value)
        for (topic, data), (_, value) in zip(parsed, read, strict=True)
    ]


async def _topics_opened(stack: Stack, bootstrap: str, needles: dict[str, str]) -> dict[str, set[str]]:
    """`_topics_holding` with the records opened by every key signups still holds."""
    keys = _keys_of(stack)
    try:
        return await _topics_holding(bootstrap, needles, keys)
    finally:
        await keys.close()


def _keys_of(stack: Stack) -> RemoteKeys:
    """Signups' keys, asked as notifications asks for them (its service token)."""
    secret = stack["signups"].env["PITCHIN_PERSON_KEYS_SECRET"]
    return RemoteKeys(stack["signups"].url, secret=secret, service="notifications")


async def _sealed_as_signups_would(stack: Stack, data: dict[str, Any], event_type: str) -> dict[str, Any]:
    """`data` with its personal fields sealed by the relay's own Sealer, under the person's key."""
    keys = _keys_of(stack)
    try:
        hasher = person_hasher(SimpleNamespace(donor_link_secret=stack.donor_link_secret))
        row = {"seq": 1, "event_type": event_type, "payload": json.dumps(data), "occurred_at": datetime.now(UTC)}
        sealed = await Sealer(keys, hasher).seal([row])
        found: dict[str, Any] = json.loads(sealed[1])
        return found
    finally:
        await keys.close()


def test_an_erased_person_is_readable_on_no_topic_or_dead_letter_topic(stack: Stack, kafka_server: KafkaServer) -> None:
    """Issue 19's last point: the person's records stay on the topics and on dead-letter topics
    (Kafka cannot edit them), sealed with their key; the erasure destroys it, and then no one can
    read them there, even with every key signups still holds."""
    federation = stack.web_federation_id
    organiser = stack.issue_key(federation, f"org-{uuid.uuid4().hex[:8]}", "organiser")
    staff = stack.issue_key(federation, None, "federation-staff")
    marker = uuid.uuid4().hex[:10]
    name, email = f"Wilhelmina Strachey-{marker}", f"kafka-erase-{marker}@example.org"
    person = {"email": email, "name": name}
    donor_id = sign_up(stack, organiser, name=name, email=email, phone=None).json()["donor_id"]
    event_id = create_event(stack, organiser, title=f"Meet-up {marker}").json()["event_id"]
    wait_until_signups_knows(stack, organiser, event_id)
    booked = httpx.post(
        f"{stack['signups'].url}/v1/events/{event_id}/bookings",
        json={"name": name, "email": email, "donor_id": donor_id},
        headers=bearer(organiser),
        timeout=15,
    )
    assert booked.status_code == 201, booked.text
    # One of their events, sealed as signups' relay seals it, is refused by its consumers (its
    # data misses the booking id): both dead-letter it, bytes untouched.
    poison_data = asyncio.run(
        _sealed_as_signups_would(
            stack,
            {"federation_id": federation, "event_id": event_id, "donor_id": donor_id, "name": name, "email": email},
            "org.pitchin.booking.confirmed.v1",
        )
    )
    assert is_sealed(poison_data["email"]), poison_data
    poison = CloudEvent(
        id=str(uuid.uuid4()),
        source="/pitchin/signups",
        type="org.pitchin.booking.confirmed.v1",
        data=poison_data,
        time=datetime.now(UTC),
        tenant=federation,
    )
    asyncio.run(send_cloud_events(kafka_server.bootstrap, "pitchin.bookings.v1", [(event_id, poison)]))
    dead_letter_topics = {"pitchin.bookings.v1.notifications.dlq", "pitchin.bookings.v1.scheduling.dlq"}
    everywhere = {"pitchin.donors.v1", "pitchin.bookings.v1", *dead_letter_topics}

    def opened_on_kafka() -> dict[str, set[str]] | None:
        found = asyncio.run(_topics_opened(stack, kafka_server.bootstrap, person))
        return found if everywhere <= found["email"] and everywhere <= found["name"] else None

    # Readable with the person's key on every one of those topics (so the search can fail)...
    eventually(opened_on_kafka, timeout=60, interval=1.0, what="the person on the topics and dead-letter topics")
    # ...and as Kafka keeps the bytes, on none: sealed from the first record.
    assert asyncio.run(_topics_holding(kafka_server.bootstrap, person)) == {"email": set(), "name": set()}

    asked = httpx.post(
        f"{stack['signups'].url}/v1/erasure-requests", json={"email": email}, headers=bearer(staff), timeout=15
    )
    assert asked.status_code == 202, asked.text
    assert asked.json()["services"]["signups"]["counts"]["person_keys"] >= 1, "the donor's key at least"
    # The erasure request itself carries no address and no name.
    request = asyncio.run(
        read_topic(
            kafka_server.bootstrap, "pitchin.privacy.v1", lambda r: r["key"] == asked.json()["request_id"].encode(), 1
        )
    )
    assert email.encode() not in request[0]["value"] and name.encode() not in request[0]["value"]
    # The keys went in the request's own transaction: no one can open the records any more.
    after = asyncio.run(_topics_opened(stack, kafka_server.bootstrap, person))
    assert after == {"email": set(), "name": set()}, after
    assert asyncio.run(_topics_holding(kafka_server.bootstrap, person)) == {"email": set(), "name": set()}


def test_the_hours_an_erased_donor_gave_stay_in_the_totals_without_their_words(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer
) -> None:
    matching = stack["matching"].url
    organiser, staff = bearer(tenant.organiser_key), bearer(tenant.staff_key)
    email = f"hours-{uuid.uuid4().hex[:10]}@example.org"
    donor_id = sign_up(stack, tenant.organiser_key, name="Perpetua Hours", email=email).json()["donor_id"]
    eventually(_known_to_matching(stack, tenant, donor_id), timeout=60, what="matching to learn the donor")
    need_id = f"need-{uuid.uuid4().hex[:8]}"
    _publish(kafka_server, "pitchin.needs.v1", need_id, _event(_need_opened(tenant, need_id), tenant))
    offer = _wait_offers(stack, tenant, need_id, "the offer", lambda o: len(o) == 1)[0]
    made = _made_event(kafka_server, need_id, offer["offer_id"])
    assert httpx.post(_at(matching, made["accept_url"]), timeout=10).status_code == 200
    assignment = f"{matching}/v1/assignments/{offer['offer_id']}"
    assert httpx.post(f"{assignment}/confirm", headers=organiser, timeout=10).is_success
    # The donor logs hours with a note in their own words (left unconfirmed: completion counts).
    token = {"token": urlsplit(made["offers_url"]).query.removeprefix("token=")}
    note = f"Leaflets with Perpetua's neighbours ({donor_id})"
    logged = httpx.post(
        f"{matching}/v1/donors/{donor_id}/assignments/{offer['offer_id']}/hours",
        json={"worked_on": datetime.now(UTC).date().isoformat(), "hours": 2, "note": note},
        params=token,
        timeout=10,
    )
    assert logged.status_code == 201, logged.text
    thanks = f"Thank you Perpetua, the leaflets were perfect ({donor_id})"
    done = httpx.post(f"{assignment}/complete", json={"hours_given": 6.5, "thanks": thanks}, headers=organiser)
    assert done.status_code == 200, done.text

    def totals() -> tuple[float, int]:
        answer = httpx.get(f"{matching}/v1/totals", headers=staff, timeout=10)
        assert answer.status_code == 200, answer.text
        [mine] = [o for o in answer.json()["organisations"] if o["organisation_id"] == tenant.organisation_id]
        return mine["hours_given"], mine["completed"]

    assert totals() == (6.5, 1)
    # Found before, so finding it nowhere after means something.
    assert any("hour_logs" in place for place in _places(stack, {"note": note})["note"])
    asked = httpx.post(f"{stack['signups'].url}/v1/erasure-requests", json={"donor_id": donor_id}, headers=staff)
    assert asked.status_code == 202, asked.text
    progress = f"{stack['signups'].url}/v1/erasure-requests/{asked.json()['request_id']}"
    finished = eventually(
        lambda: got if (got := httpx.get(progress, headers=staff, timeout=5).json())["status"] == "done" else None,
        timeout=ERASED_WITHIN_SECONDS,
        what="the erasure to be done",
    )
    assert finished["services"]["matching"]["counts"]["assignments"] == 1
    assert finished["services"]["matching"]["counts"]["hour_logs"] == 1
    assert totals() == (6.5, 1), "the federation's totals are unchanged"
    kept = _places(stack, {"thanks": thanks, "note": note})
    assert kept == {"thanks": set(), "note": set()}, kept


def _bytes_of(record: Any) -> bytes:
    return b"".join([record.key or b"", record.value or b"", *(v or b"" for _, v in record.headers)])


async def _ingest_records(bootstrap: str, topic: str) -> tuple[int, int, list[bytes]]:
    """A publisher topic as the Kafka admin reads it: where its one partition starts and ends,
    and every record still on it (key, value and headers as bytes)."""
    consumer = AIOKafkaConsumer(**admin_options(bootstrap), enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        start = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        await consumer.seek_to_beginning(tp)
        held: list[bytes] = []
        async with asyncio.timeout(30):
            while await consumer.position(tp) < end:
                for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                    held += [_bytes_of(r) for r in records]
        return start, end, held
    finally:
        await consumer.stop()


def test_what_a_publisher_sent_leaves_kafka_once_every_consumer_has_applied_it(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer
) -> None:
    """Publishers send people in clear, which Pitch In cannot seal: once signups and scheduling
    have both committed past a record, signups deletes it (DeleteRecords, ingest_trim.py), well
    within the minute an erasure has."""
    source = f"/crm/trim-{uuid.uuid4().hex[:8]}"
    stack.register_publisher(source, tenant.federation_id, (tenant.organisation_id,))
    kafka = stack.publisher_kafka[source]
    topic = ingest_topic(source)
    run = uuid.uuid4().hex[:8]
    signed_up = every_type(tenant.federation_id, tenant.organisation_id, run)[0]
    login = kafka_publisher.sasl(kafka.username, kafka.password)
    asyncio.run(kafka_publisher.publish(kafka_server.bootstrap, source, [signed_up], topic=topic, login=login))
    # Applied first: the donor exists (nothing was deleted before signups read it).
    registered = asyncio.run(
        read_topic(
            kafka_server.bootstrap,
            "pitchin.donors.v1",
            lambda r: isinstance(r.get("data"), dict) and r["data"].get("federation_id") == tenant.federation_id,
            1,
            60,
        )
    )
    assert registered[0]["type"] == "org.pitchin.donor.registered.v1"

    def trimmed() -> tuple[int, int, list[bytes]] | None:
        start, end, held = asyncio.run(_ingest_records(kafka_server.bootstrap, topic))
        return (start, end, held) if start == end else None

    start, end, held = eventually(trimmed, timeout=60, interval=1.0, what="the publisher's topic trimmed")
    assert end == 1 and held == [], (start, end, held)  # the one record was written, and is gone
