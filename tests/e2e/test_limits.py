"""Bad or hostile input is refused at the door, before it costs anyone else anything (issue 18).

Each against the real services: the request gate answers from the headers alone (a body
it never reads), lists have maxima, a runaway RRULE is a 422, and a stranger's
Idempotency-Key leaves no row behind.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from pitchin_core.auth import hash_key
from pitchin_testing.stack import Stack
from tests.e2e.conftest import Tenant
from tests.e2e.helpers import bearer, sign_up
from tests.unit.factories import donor_signup

pytestmark = pytest.mark.e2e

EIGHT_MB = 8 * 1024 * 1024


def _raw_request(url: str, head: str, body: bytes = b"", timeout: float = 5.0) -> tuple[int, float]:
    """Send `head` (and `body`) on a socket of our own; the status line and how soon it came."""
    parts = urlsplit(url)
    began = time.perf_counter()
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as conn:
        conn.sendall(head.encode("latin-1") + body)
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, time.perf_counter() - began


def test_an_unauthenticated_8_mb_post_is_refused_from_its_headers(stack: Stack) -> None:
    url = stack["signups"].url
    head = (
        f"POST /v1/donors HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {EIGHT_MB}\r\n\r\n"
    )
    # Not one byte of the body is sent: an answer at all shows the server did not wait to read it.
    status, _ = _raw_request(url, head)
    assert status == 401


def test_an_authenticated_body_over_the_limit_is_refused_unread_or_as_it_streams(stack: Stack, tenant: Tenant) -> None:
    url = stack["signups"].url
    declared = (
        f"POST /v1/donors HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.organiser_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {EIGHT_MB}\r\n\r\n"
    )
    assert _raw_request(url, declared)[0] == 413
    # Chunked, so no length is declared: refused once 1 MiB has streamed in, before the end.
    chunk = b"x" * 65536
    streamed = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20))  # 1.25 MiB, not terminated
    chunked = (
        f"POST /v1/donors HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.organiser_key}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    assert _raw_request(url, chunked, streamed)[0] == 413


def test_a_url_over_8_kib_is_414(stack: Stack, tenant: Tenant) -> None:
    answer = httpx.get(
        f"{stack['signups'].url}/v1/donors", params={"skill": "x" * 9000}, headers=bearer(tenant.organiser_key)
    )
    assert answer.status_code == 414
    assert answer.json()["errors"][0]["field"] == "url"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (donor_signup(causes=[f"cause-{i}" for i in range(10_000)]), "causes"),
        (donor_signup(languages=["en"] * 500), "languages"),
    ],
)
def test_an_oversized_list_is_a_422_naming_it(
    stack: Stack, tenant: Tenant, body: dict[str, object], field: str
) -> None:
    answer = httpx.post(f"{stack['signups'].url}/v1/donors", json=body, headers=bearer(tenant.organiser_key))
    assert answer.status_code == 422, answer.text
    assert field in [e["field"] for e in answer.json()["errors"]]


def test_a_runaway_rrule_is_a_422_at_once(stack: Stack, tenant: Tenant) -> None:
    event = {
        "kind": "training",
        "title": "Steward training",
        "starts_at": "2027-03-27T18:00:00",
        "ends_at": "2027-03-27T19:00:00",
        "time_zone": "Europe/London",
        "venue_name": "Union Hall",
        "organiser_email": "events@example.org",
    }
    url = f"{stack['scheduling'].url}/v1/series"
    for rule in ("FREQ=SECONDLY;COUNT=200000", "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"):
        answer = httpx.post(url, json={"event": event, "rrule": rule}, headers=bearer(tenant.organiser_key))
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == "rrule"
    past = {**event, "starts_at": "1900-01-02T18:00:00", "ends_at": "1900-01-02T19:00:00"}
    answer = httpx.post(url, json={"event": past, "rrule": "FREQ=DAILY"}, headers=bearer(tenant.organiser_key))
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "event.starts_at"


def test_a_strangers_idempotency_key_stores_nothing(stack: Stack, tenant: Tenant) -> None:
    stranger = "pk_" + uuid.uuid4().hex
    idempotency_key = f"stranger-{uuid.uuid4()}"
    answer = httpx.post(
        f"{stack['signups'].url}/v1/donors",
        json=donor_signup(email=f"{uuid.uuid4().hex[:10]}@example.org"),
        headers={**bearer(stranger), "Idempotency-Key": idempotency_key},
    )
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")  # RFC 9110: a 401 says how to authenticate
    # The same key from a known caller is stored, so the query below can see a row when there is one.
    known = httpx.post(
        f"{stack['signups'].url}/v1/donors",
        json=donor_signup(email=f"{uuid.uuid4().hex[:10]}@example.org"),
        headers={**bearer(tenant.organiser_key), "Idempotency-Key": idempotency_key},
    )
    assert known.status_code == 201, known.text

    async def stored() -> list[str]:
        conn = await asyncpg.connect(stack.database_url)
        try:
            rows = await conn.fetch(
                "SELECT caller_key_hash FROM signups.idempotency_keys WHERE idempotency_key = $1", idempotency_key
            )
            return [r["caller_key_hash"] for r in rows]
        finally:
            await conn.close()

    assert asyncio.run(stored()) == [hash_key(tenant.organiser_key)]


def test_tokens_forged_with_the_built_in_secrets_are_refused(stack: Stack, tenant: Tenant) -> None:
    from pitchin_core.settings import local_secret
    from pitchin_matching.domain.tokens import sign
    from pitchin_notifications.domain.unsubscribe import Unsubscribe, make_token

    victim = Unsubscribe(tenant.federation_id, "someone@example.org", "email")
    forged = make_token(local_secret("unsubscribe-secret").encode("utf-8"), victim)
    answer = httpx.post(
        f"{stack['notifications'].url}/v1/unsubscribe",
        params={"token": forged},
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 404, answer.text  # not a token this deployment made
    donor = sign_up(stack, tenant.organiser_key, email=f"{uuid.uuid4().hex[:10]}@example.org").json()
    donor_token = sign(local_secret("offer-token-secret"), "donor", donor["donor_id"], int(time.time()) + 3600)
    offers = httpx.get(f"{stack['matching'].url}/v1/donors/{donor['donor_id']}/offers", params={"token": donor_token})
    assert offers.status_code == 401, offers.text
