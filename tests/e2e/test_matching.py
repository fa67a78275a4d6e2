"""Matching end to end: signups, matching and notifications as processes on real Kafka and PostgreSQL.

Need events are published to Kafka here as CloudEvents (signups does not emit them yet);
donors sign up through signups' HTTP API. Offers are answered with the token the
offer.made event carries, as a donor would from the email link.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from pitchin_core.contracts.cloudevents import CloudEvent, tenant_of
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.donors import DonorUpdatedV1, DonorWithdrawnV1
from pitchin_core.contracts.fights import NeedClosedV1, NeedOpenedV1, NeedUpdatedV1
from pitchin_core.contracts.topics import MATCHES as MATCHES_TOPIC
from pitchin_testing.kafka import KafkaServer
from pitchin_testing.smtp_sink import SmtpSink
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import as_cloud_event, bearer, eventually, fetch, opened, send_cloud_events, sign_up
from tests.e2e.test_notifications_kit import configure
from tests.unit.factories import donor_signup

pytestmark = pytest.mark.e2e

MATCHES = "pitchin.matches.v1"
OFFER = "org.pitchin.offer."


# --- helpers -----------------------------------------------------------------------------


def _sign_up(stack: Stack, tenant: Tenant, count: int, **overrides: Any) -> list[str]:
    donors = [
        sign_up(
            stack, tenant.organiser_key, name=f"Donor {n}", email=f"m-{uuid.uuid4().hex[:10]}@example.org", **overrides
        ).json()["donor_id"]
        for n in range(count)
    ]
    for donor_id in donors:
        eventually(_known_to_matching(stack, tenant, donor_id), timeout=60, what=f"matching to learn {donor_id}")
    return donors


def _known_to_matching(stack: Stack, tenant: Tenant, donor_id: str) -> Callable[[], bool]:
    def probe() -> bool:
        url = f"{stack['matching'].url}/v1/donors/{donor_id}"
        return httpx.get(url, headers=bearer(tenant.staff_key), timeout=5).status_code == 200

    return probe


def _event(data: EventData, tenant: Tenant) -> CloudEvent:
    """As signups sends it, in the organisation's tenant (a donor's withdrawal names only the federation)."""
    return as_cloud_event(data, source="/test/signups", tenant=tenant_of(tenant.federation_id, tenant.organisation_id))


def _publish(kafka: KafkaServer, topic: str, key: str, *events: CloudEvent) -> None:
    asyncio.run(send_cloud_events(kafka.bootstrap, topic, [(key, event) for event in events]))


def _need_opened(tenant: Tenant, need_id: str, **overrides: Any) -> NeedOpenedV1:
    body: dict[str, Any] = {
        "federation_id": tenant.federation_id,
        "organisation_id": tenant.organisation_id,
        "need_id": need_id,
        "fight_id": f"fight-{need_id}",
        "title": "Social media for the bin strike",
        "required_skills": [{"skill": "social-media", "min_level": "advanced"}],
        "estimated_hours": 6,
        "deadline": (datetime.now(UTC) + timedelta(days=10)).isoformat(),
        "urgency": "normal",
        "language": "en",
        "causes": ["labour"],
        "opened_at": datetime.now(UTC).isoformat(),
    }
    body.update(overrides)
    return NeedOpenedV1.model_validate(body)


def _need_updated(opened: NeedOpenedV1, version: int, status: str = "open", **overrides: Any) -> NeedUpdatedV1:
    body = opened.model_dump(mode="json", exclude={"opened_at"})
    body.update(version=version, status=status, updated_at=datetime.now(UTC).isoformat(), **overrides)
    return NeedUpdatedV1.model_validate(body)


def _matches_for(kafka: KafkaServer, need_id: str) -> list[dict[str, Any]]:
    """Every pitchin.matches.v1 record of a need so far, in order.

    Records are keyed by need id, so only the key's partition is read (as the producer's
    default partitioner chose it), from the beginning to its end offset now.
    """

    async def read() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(**kafka.admin_options(), group_id=None, enable_auto_commit=False)
        await consumer.start()
        found: list[dict[str, Any]] = []
        try:
            every = list(range(MATCHES_TOPIC.partitions))  # as the services create the topic
            partition = TopicPartition(MATCHES, DefaultPartitioner()(need_id.encode(), every, every))
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            end = (await consumer.end_offsets([partition]))[partition]
            async with asyncio.timeout(60):
                while await consumer.position(partition) < end:
                    for r in (await consumer.getmany(partition, timeout_ms=500)).get(partition, []):
                        if r.key == need_id.encode():
                            headers = {k: v.decode() for k, v in r.headers}
                            found.append({"id": headers["ce_id"], "type": headers["ce_type"], **json.loads(r.value)})
        finally:
            await consumer.stop()
        return found

    return asyncio.run(read())


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"].removeprefix("org.pitchin.").removesuffix(".v1") for e in events]


def _offers(stack: Stack, tenant: Tenant, need_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{stack['matching'].url}/v1/needs/{need_id}/offers", headers=bearer(tenant.organiser_key), timeout=10
    )
    if answer.status_code == 404:
        return []
    assert answer.status_code == 200, answer.text
    offers: list[dict[str, Any]] = answer.json()["offers"]
    return offers


def _wait_offers(stack: Stack, tenant: Tenant, need_id: str, what: str, ok: Any, timeout: float = 60) -> Any:
    return eventually(
        lambda: (lambda offers: offers if ok(offers) else None)(_offers(stack, tenant, need_id)),
        timeout=timeout,
        what=what,
    )


def _made_event(kafka: KafkaServer, need_id: str, offer_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next(
            (
                e
                for e in _matches_for(kafka, need_id)
                if e["type"].endswith("offer.made.v1") and e["offer_id"] == offer_id
            ),
            None,
        )

    return eventually(find, timeout=90, what=f"offer.made for {offer_id} on Kafka")


def _at(base: str, link: str) -> str:
    """An email link (on the public base URL, behind an ingress in production) sent straight to matching."""
    parts = urlsplit(link)
    return f"{base}{parts.path}?{parts.query}"


def _set_policy(stack: Stack, tenant: Tenant, **policy: Any) -> None:
    answer = httpx.put(f"{stack['matching'].url}/v1/policy", json=policy, headers=bearer(tenant.staff_key), timeout=10)
    assert answer.status_code == 200, answer.text


# --- tests -------------------------------------------------------------------------------


def test_offer_workflow_decline_accept_confirm_release_with_explanations_and_tenancy(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer
) -> None:
    matching = stack["matching"].url
    donors = _sign_up(stack, tenant, 3)
    need_id = f"need-{uuid.uuid4().hex[:8]}"
    _publish(kafka_server, "pitchin.needs.v1", need_id, _event(_need_opened(tenant, need_id), tenant))

    first = _wait_offers(stack, tenant, need_id, "a first offer", lambda o: len(o) == 1)[0]
    assert first["donor_id"] in donors and first["status"] == "pending"
    assert {c["name"] for c in first["explanation"]} >= {"skills", "hours", "language", "recency", "history"}

    # Organisers see ranked candidates with every component explained; other federations see nothing.
    ranked = httpx.get(
        f"{matching}/v1/needs/{need_id}/candidates", headers=bearer(tenant.organiser_key), timeout=10
    ).json()
    assert {c["donor_id"] for c in ranked["candidates"]} <= set(donors) and ranked["eligible"] >= 2
    best = ranked["candidates"][0]
    assert best["score"] == pytest.approx(sum(c["points"] for c in best["components"]), abs=0.05)
    assert any("social-media: expert" in c["why"] for c in best["components"])
    stranger = stack.issue_key(f"fed-{uuid.uuid4().hex[:6]}", None, "federation-staff")
    for path in (f"/v1/needs/{need_id}/candidates", f"/v1/needs/{need_id}/offers"):
        assert httpx.get(f"{matching}{path}", headers=bearer(stranger), timeout=10).status_code == 404

    made = _made_event(kafka_server, need_id, first["offer_id"])
    token = made["offer_token"]
    assert made["accept_url"].endswith(f"/v1/offers/{first['offer_id']}/accept?token={token}")
    # A wrong or foreign credential is refused.
    assert httpx.post(f"{matching}/v1/offers/{first['offer_id']}/accept", timeout=10).status_code == 401
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert httpx.post(f"{matching}/v1/offers/{first['offer_id']}/accept?token={forged}", timeout=10).status_code == 401

    # The donor declines: the next candidate is asked.
    declined = httpx.post(
        f"{matching}/v1/offers/{first['offer_id']}/decline", json={"token": token, "reason": "busy"}, timeout=10
    )
    assert declined.status_code == 200, declined.text
    offers = _wait_offers(stack, tenant, need_id, "a second offer", lambda o: len(o) == 2)
    second = next(o for o in offers if o["offer_id"] != first["offer_id"])
    assert second["donor_id"] != first["donor_id"]
    assert httpx.post(f"{matching}/v1/offers/{second['offer_id']}/accept?token={token}", timeout=10).status_code == 404

    # The donor sees their offers with a donor token, then accepts from the email link.
    second_made = _made_event(kafka_server, need_id, second["offer_id"])
    mine = httpx.get(_at(matching, second_made["offers_url"]), timeout=10)
    assert mine.status_code == 200 and [o["offer_id"] for o in mine.json()["offers"]] == [second["offer_id"]]
    shown = httpx.get(f"{matching}/v1/offers/{second['offer_id']}?token={second_made['offer_token']}", timeout=10)
    assert shown.status_code == 200 and shown.json()["status"] == "pending", "looking does not answer"
    accepted = httpx.post(_at(matching, second_made["accept_url"]), timeout=10)
    assert accepted.status_code == 200 and accepted.json()["assignment_id"] == second["offer_id"]
    assert httpx.post(_at(matching, second_made["accept_url"]), timeout=10).status_code == 200, (
        "a second click changes nothing"
    )
    late = httpx.post(f"{matching}/v1/offers/{first['offer_id']}/accept?token={token}", timeout=10)
    assert late.status_code == 409, "a declined offer cannot be accepted"

    assignment = second["offer_id"]
    assert (
        httpx.post(f"{matching}/v1/assignments/{assignment}/confirm", headers=bearer(stranger), timeout=10).status_code
        == 404
    )
    confirmed = httpx.post(
        f"{matching}/v1/assignments/{assignment}/confirm", headers=bearer(tenant.organiser_key), timeout=10
    )
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    # Releasing the assignment frees the place: the third donor is asked.
    released = httpx.post(
        f"{matching}/v1/assignments/{assignment}/release",
        json={"reason": "moved away"},
        headers=bearer(tenant.organiser_key),
        timeout=10,
    )
    assert released.status_code == 200
    offers = _wait_offers(stack, tenant, need_id, "a third offer after the release", lambda o: len(o) == 3)
    assert len({o["donor_id"] for o in offers}) == 3

    events = eventually(lambda: (lambda e: e if len(e) >= 7 else None)(_matches_for(kafka_server, need_id)), timeout=90)
    assert _types(events) == [
        "offer.made",
        "offer.declined",
        "offer.made",
        "offer.accepted",
        "assignment.confirmed",
        "assignment.released",
        "offer.made",
    ]
    assert all(e["federation_id"] == tenant.federation_id for e in events)


def test_work_marked_done_gives_the_donor_hours_and_thanks_on_their_record_and_by_email(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer, mailbox: SmtpSink
) -> None:
    matching = stack["matching"].url
    # The thank-you is a normal-priority mail: without this, quiet hours (21:00-08:00 by default)
    # hold it until morning and the test would pass or fail with the time of day.
    configure(stack, tenant, quiet_hours="")
    email = f"done-{uuid.uuid4().hex[:10]}@example.org"
    donor_id = sign_up(stack, tenant.organiser_key, name="Rosa Done", email=email).json()["donor_id"]
    eventually(_known_to_matching(stack, tenant, donor_id), timeout=60, what="matching to learn the donor")
    need_id = f"need-{uuid.uuid4().hex[:8]}"
    _publish(kafka_server, "pitchin.needs.v1", need_id, _event(_need_opened(tenant, need_id), tenant))
    offer = _wait_offers(stack, tenant, need_id, "the offer", lambda o: len(o) == 1)[0]
    made = _made_event(kafka_server, need_id, offer["offer_id"])
    assignment = offer["offer_id"]
    complete = f"{matching}/v1/assignments/{assignment}/complete"
    organiser = bearer(tenant.organiser_key)
    thanks = "Your posters were on every picket line by Monday."

    assert httpx.post(_at(matching, made["accept_url"]), timeout=10).status_code == 200
    early = httpx.post(complete, json={"hours_given": 3}, headers=organiser, timeout=10)
    assert early.status_code == 409 and "accepted" in early.json()["detail"], "only confirmed work is marked done"
    assert httpx.post(f"{matching}/v1/assignments/{assignment}/confirm", headers=organiser, timeout=10).is_success

    # Bad input names the field; another federation cannot see the assignment.
    for body, field in (({"hours_given": 0}, "hours_given"), ({"hours_given": 2, "thanks": "x" * 2001}, "thanks")):
        refused = httpx.post(complete, json=body, headers=organiser, timeout=10)
        assert refused.status_code == 422 and field in refused.text, refused.text
    stranger = stack.issue_key(f"fed-{uuid.uuid4().hex[:6]}", None, "federation-staff")
    assert httpx.post(complete, json={"hours_given": 2}, headers=bearer(stranger), timeout=10).status_code == 404

    done = httpx.post(complete, json={"hours_given": 6.54, "thanks": thanks}, headers=organiser, timeout=10)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed" and done.json()["hours_given"] == 6.5
    again = httpx.post(complete, json={"hours_given": 6.5, "thanks": thanks}, headers=organiser, timeout=10)
    assert again.status_code == 200, "saying it again changes nothing"
    other = httpx.post(complete, json={"hours_given": 9, "thanks": thanks}, headers=organiser, timeout=10)
    assert other.status_code == 409, "other figures are a conflict, not a rewrite"
    assert (
        httpx.post(f"{matching}/v1/assignments/{assignment}/release", headers=organiser, timeout=10).status_code == 409
    )

    # The record: for the donor with the token from their email, and for their federation.
    donor_token = urlsplit(made["offers_url"]).query.removeprefix("token=")
    mine = httpx.get(f"{matching}/v1/donors/{donor_id}/record", params={"token": donor_token}, timeout=10)
    assert mine.status_code == 200, mine.text
    record = mine.json()
    assert record["hours_given"] == 6.5 and record["completed"] == 1
    [work] = record["work"]
    assert (
        work["thanks"] == thanks
        and work["need_title"] == "Social media for the bin strike"
        and work["need_id"] == need_id
    )
    staff = httpx.get(f"{matching}/v1/donors/{donor_id}/record", headers=bearer(tenant.staff_key), timeout=10)
    assert staff.status_code == 200 and staff.json()["hours_given"] == 6.5
    assert httpx.get(f"{matching}/v1/donors/{donor_id}/record", headers=bearer(stranger), timeout=10).status_code == 404
    foreign = httpx.get(f"{matching}/v1/donors/someone-else/record", params={"token": donor_token}, timeout=10)
    assert foreign.status_code == 404, "a donor's token opens their own record only"
    totals = httpx.get(f"{matching}/v1/totals", headers=bearer(tenant.staff_key), timeout=10)
    assert totals.status_code == 200, totals.text
    [mine_org] = [o for o in totals.json()["organisations"] if o["organisation_id"] == tenant.organisation_id]
    assert (mine_org["hours_given"], mine_org["completed"]) == (6.5, 1)
    assert httpx.get(f"{matching}/v1/totals", headers=organiser, timeout=10).status_code == 403
    assert all(
        o["organisation_id"] != tenant.organisation_id
        for o in httpx.get(f"{matching}/v1/totals", headers=bearer(stranger), timeout=10).json()["organisations"]
    ), "another federation's totals hold nothing of this one"

    # Everyone else learns it from Kafka; the donor is thanked by email.
    events = eventually(
        lambda: (lambda e: e if "assignment.completed" in _types(e) else None)(_matches_for(kafka_server, need_id)),
        timeout=90,
        what="assignment.completed on Kafka",
    )
    [completed] = [e for e in events if e["type"] == "org.pitchin.assignment.completed.v1"]
    assert completed["hours_given"] == 6.5 and completed["donor_id"] == donor_id
    assert thanks not in json.dumps(completed), "the thanks leave sealed (pitchin_core.personal)"
    assert opened(stack, completed)["thanks"] == thanks
    mail = mailbox.wait_for(lambda m: m["To"] == email and "Thank you" in str(m["Subject"]), timeout=60)
    assert mail["Subject"] == "Thank you for your work on Social media for the bin strike"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert thanks in text and "6.5 hours" in text


def test_an_offer_expires_once_and_the_next_donor_is_asked_across_a_crash_of_matching(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer
) -> None:
    _set_policy(stack, tenant, offer_ttl_seconds=3)
    donors = _sign_up(stack, tenant, 2)
    need_id = f"need-{uuid.uuid4().hex[:8]}"
    _publish(kafka_server, "pitchin.needs.v1", need_id, _event(_need_opened(tenant, need_id), tenant))
    first = _wait_offers(stack, tenant, need_id, "a first offer", lambda o: len(o) == 1)[0]
    expires_at = datetime.fromisoformat(first["expires_at"])

    # Killed while the offer is pending: its timer is the row, not the process.
    stack["matching"].kill()
    eventually(lambda: datetime.now(UTC) > expires_at + timedelta(seconds=1), timeout=30, what="the offer to be due")
    stack["matching"].start()
    stack["matching"].wait_ready()

    offers = _wait_offers(
        stack,
        tenant,
        need_id,
        "expiry of the first offer and a second offer",
        lambda o: len(o) == 2 and o[0]["status"] == "expired",
    )
    assert {o["donor_id"] for o in offers} == set(donors)
    # The second one expires too (with matching up); nobody is left to ask.
    _wait_offers(stack, tenant, need_id, "both offers expired", lambda o: [x["status"] for x in o] == ["expired"] * 2)

    def distinct(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # The relay publishes at least once: a SIGKILL between Kafka's ack and the outbox
        # row's deletion re-sends that row after the restart, with the same CloudEvent id,
        # which every consumer's inbox drops. What must hold is one event per id.
        first: dict[str, dict[str, Any]] = {}
        for record in records:
            first.setdefault(record["id"], record)
        return list(first.values())

    events = eventually(
        lambda: (lambda e: e if len(e) >= 4 else None)(distinct(_matches_for(kafka_server, need_id))), timeout=90
    )
    assert _types(events) == ["offer.made", "offer.expired", "offer.made", "offer.expired"]
    assert [e["offer_id"] for e in events if e["type"].endswith("expired.v1")] == [o["offer_id"] for o in offers]


def test_duplicate_and_out_of_order_events_change_nothing_and_withdrawal_or_closing_cancels_offers(
    stack: Stack, tenant: Tenant, kafka_server: KafkaServer
) -> None:
    donors = _sign_up(stack, tenant, 3)
    need_id = f"need-{uuid.uuid4().hex[:8]}"
    opened = _need_opened(tenant, need_id, title="Version 1")
    update = _event(_need_updated(opened, 2, title="Version 2"), tenant)
    # The update overtakes the opening; the update comes twice (same id) and the opening twice (new id).
    _publish(
        kafka_server,
        "pitchin.needs.v1",
        need_id,
        update,
        update,
        _event(opened, tenant),
        _event(opened, tenant),
    )
    offers = _wait_offers(stack, tenant, need_id, "an offer", lambda o: len(o) == 1)
    need = fetch(stack, "SELECT title, version FROM matching.needs WHERE need_id = $1", need_id)
    assert (need[0]["title"], need[0]["version"]) == ("Version 2", 2)

    # A donor update overtaken by an older one: the newer (paused) stands.
    someone = next(d for d in donors if d != offers[0]["donor_id"])
    profile = {
        **donor_signup(email="x@example.org"),
        "federation_id": tenant.federation_id,
        "organisation_id": tenant.organisation_id,
        "donor_id": someone,
        "updated_at": datetime.now(UTC).isoformat(),
    }
    newer = DonorUpdatedV1.model_validate({**profile, "version": 3, "status": "paused"})
    older = DonorUpdatedV1.model_validate({**profile, "version": 2, "status": "active"})
    _publish(kafka_server, "pitchin.donors.v1", someone, _event(newer, tenant), _event(older, tenant))

    def donor_state() -> tuple[str, int] | None:
        rows = fetch(stack, "SELECT status, version FROM matching.donors WHERE donor_id = $1", someone)
        return (rows[0]["status"], rows[0]["version"]) if rows and rows[0]["version"] == 3 else None

    assert eventually(donor_state, timeout=30) == ("paused", 3)

    # The offered donor withdraws: their offer is cancelled and the one active donor left is asked.
    offered = offers[0]["donor_id"]
    withdrawn = DonorWithdrawnV1(federation_id=tenant.federation_id, donor_id=offered, withdrawn_at=datetime.now(UTC))
    _publish(kafka_server, "pitchin.donors.v1", offered, _event(withdrawn, tenant))
    offers = _wait_offers(
        stack, tenant, need_id, "cancel and re-offer", lambda o: len(o) == 2 and o[0]["status"] == "cancelled"
    )
    last = next(d for d in donors if d not in (offered, someone))
    assert offers[1]["donor_id"] == last, "the paused donor is not asked"

    # Closing the need cancels the pending offer.
    closed = NeedClosedV1(
        federation_id=tenant.federation_id,
        organisation_id=tenant.organisation_id,
        need_id=need_id,
        fight_id=opened.fight_id,
        closed_at=datetime.now(UTC),
    )
    _publish(kafka_server, "pitchin.needs.v1", need_id, _event(closed, tenant))
    _wait_offers(stack, tenant, need_id, "closing cancels", lambda o: [x["status"] for x in o] == ["cancelled"] * 2)
    events = eventually(lambda: (lambda e: e if len(e) >= 4 else None)(_matches_for(kafka_server, need_id)), timeout=90)
    assert _types(events) == ["offer.made", "offer.cancelled", "offer.made", "offer.cancelled"]
    reasons = [e["reason"] for e in events if e["type"].endswith("cancelled.v1")]
    assert reasons == ["the donor withdrew", "the need is closed"]


def test_the_read_model_is_rebuilt_from_the_topics(stack: Stack, tenant: Tenant, kafka_server: KafkaServer) -> None:
    donors = _sign_up(stack, tenant, 2)
    need_id = f"need-{uuid.uuid4().hex[:8]}"
    opened = _need_opened(tenant, need_id)
    _publish(
        kafka_server,
        "pitchin.needs.v1",
        need_id,
        _event(opened, tenant),
        _event(_need_updated(opened, 2, title="Renamed", donors_wanted=2), tenant),
    )
    _wait_offers(stack, tenant, need_id, "offers", lambda o: len(o) == 2)
    snapshot_sql = (
        "SELECT d.donor_id, d.status, d.version, d.windows_utc, d.languages,"
        " (SELECT array_agg(skill || level ORDER BY skill) FROM matching.donor_skills s WHERE s.donor_id = d.donor_id)"
        " AS skills FROM matching.donors d WHERE d.federation_id = $1 ORDER BY d.donor_id"
    )
    needs_sql = "SELECT need_id, title, version, donors_wanted, status FROM matching.needs WHERE federation_id = $1"
    before = (
        fetch(stack, snapshot_sql, tenant.federation_id),
        fetch(stack, needs_sql, tenant.federation_id),
    )
    assert len(before[0]) == len(donors) and before[1][0]["title"] == "Renamed"

    stack["matching"].stop()
    try:
        env = {**os.environ, **stack["matching"].env}
        done = subprocess.run(
            [sys.executable, "-m", "pitchin_matching.rebuild"], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        after = (
            fetch(stack, snapshot_sql, tenant.federation_id),
            fetch(stack, needs_sql, tenant.federation_id),
        )
        assert [dict(r) for r in after[0]] == [dict(r) for r in before[0]]
        assert [dict(r) for r in after[1]] == [dict(r) for r in before[1]]
        assert len(fetch(stack, "SELECT 1 FROM matching.offers WHERE need_id = $1", need_id)) == 2
    finally:
        stack["matching"].start()
        stack["matching"].wait_ready()
    # Back up: the redelivered events are in the inbox and nothing new is offered.
    started = time.monotonic()
    eventually(
        lambda: (
            httpx.get(
                f"{stack['matching'].url}/v1/needs/{need_id}/candidates",
                headers=bearer(tenant.organiser_key),
                timeout=10,
            ).status_code
            == 200
        ),
        timeout=30,
    )
    assert len(_offers(stack, tenant, need_id)) == 2
    assert time.monotonic() - started < 60
