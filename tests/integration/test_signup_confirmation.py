"""Double opt-in on signups' own: a held sign-up becomes a donor only when its emailed token is
confirmed, once, before it expires (issue 18). Against the real PostgreSQL, no Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from pitchin_core.errors import Conflict, FieldError
from pitchin_signups.domain.donors import ConfirmationRefused, DonorSignup
from pitchin_signups.service import donors
from tests.integration.tenancy import FED, NEIGHBOUR, ORG, ORGANISER, STAFF
from tests.unit.factories import donor_signup

pytestmark = pytest.mark.integration
MIGRATIONS = files("pitchin_signups") / "migrations"
NOW = datetime.now(UTC).replace(microsecond=0)
BASE = "https://pitchin.example"
REQUESTED = "org.pitchin.donor.confirmation-requested.v1"
REGISTERED = "org.pitchin.donor.registered.v1"


def _signup(**overrides: Any) -> DonorSignup:
    return DonorSignup.model_validate(donor_signup(**overrides))


async def _token_mailed_to(db: Any, email: str) -> str:
    """The token of the newest confirmation link staged for `email`, as the mail will carry it."""
    [*_, asked] = [e for e in await db.outbox() if e["type"] == REQUESTED and e["data"]["email"] == email]
    link = urlsplit(asked["data"]["confirm_url"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{BASE}/donors/confirm"
    token: str = parse_qs(link.query)["token"][0]
    return token


async def _donors(db: Any) -> list[str]:
    return [d["email"] for d in await donors.find(db.uow, STAFF, skill=None, status=None, after=None, limit=50)]


async def test_a_held_signup_becomes_a_donor_when_confirmed_and_only_once(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    asked = await donors.ask_to_confirm(db.uow, STAFF, _signup(email="Dana@Example.org", name="Dana Okafor"), NOW, BASE)
    assert (asked.email, asked.name, asked.federation_id) == ("dana@example.org", "Dana Okafor", FED)
    assert await _donors(db) == [], "nobody is registered before they confirm"
    assert await db.types_emitted() == [REQUESTED]
    token = await _token_mailed_to(db, "dana@example.org")
    stored = await db.pool.fetchrow("SELECT token_hash, signup::text AS signup FROM pending_signups")
    assert token not in stored["token_hash"] and token not in stored["signup"], "only the token's hash is kept"

    later = NOW + timedelta(minutes=5)
    donor = await donors.confirm(db.uow, STAFF, token, later)
    assert (donor.email, donor.name, donor.registered_at) == ("dana@example.org", "Dana Okafor", later)
    assert await _donors(db) == ["dana@example.org"]
    assert await db.types_emitted() == [REQUESTED, REGISTERED]
    assert await db.pool.fetchval("SELECT signup FROM pending_signups") is None, "the held copy of their data is gone"

    with pytest.raises(Conflict) as twice:
        await donors.confirm(db.uow, STAFF, token, NOW + timedelta(minutes=6))
    assert twice.value.errors == [FieldError("token", "already used")]
    with pytest.raises(Conflict) as again:
        await donors.ask_to_confirm(db.uow, STAFF, _signup(email="dana@example.org"), NOW, BASE)
    assert again.value.errors == [FieldError("email", "already signed up")], "refused as a sign-up is"
    assert await db.types_emitted() == [REQUESTED, REGISTERED]


async def test_an_expired_token_is_refused_and_its_signup_forgotten(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    await donors.ask_to_confirm(db.uow, STAFF, _signup(email="late@example.org"), NOW, BASE)
    token = await _token_mailed_to(db, "late@example.org")
    with pytest.raises(ConfirmationRefused) as expired:
        await donors.confirm(db.uow, STAFF, token, NOW + timedelta(hours=48, seconds=1))
    assert expired.value.errors == [FieldError("token", "expired: sign up again")]
    assert await db.pool.fetchval("SELECT count(*) FROM pending_signups") == 0
    with pytest.raises(ConfirmationRefused) as gone:
        await donors.confirm(db.uow, STAFF, token, NOW + timedelta(hours=49))
    assert gone.value.field == "token"
    assert await _donors(db) == [] and await db.types_emitted() == [REQUESTED]


async def test_expired_signups_are_cleared_as_new_ones_arrive(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    for i in range(3):
        await donors.ask_to_confirm(db.uow, STAFF, _signup(email=f"old{i}@example.org"), NOW, BASE)
    await donors.ask_to_confirm(db.uow, STAFF, _signup(email="new@example.org"), NOW + timedelta(hours=49), BASE)
    assert [r["email"] for r in await db.pool.fetch("SELECT email FROM pending_signups")] == ["new@example.org"]


async def test_a_newer_signup_for_the_address_replaces_the_older_link(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    await donors.ask_to_confirm(db.uow, STAFF, _signup(email="twice@example.org", name="First Try"), NOW, BASE)
    first = await _token_mailed_to(db, "twice@example.org")
    await donors.ask_to_confirm(db.uow, STAFF, _signup(email="twice@example.org", name="Second Try"), NOW, BASE)
    second = await _token_mailed_to(db, "twice@example.org")
    assert first != second
    with pytest.raises(ConfirmationRefused):
        await donors.confirm(db.uow, STAFF, first, NOW)
    assert (await donors.confirm(db.uow, STAFF, second, NOW)).name == "Second Try"


async def test_an_organisations_signup_is_its_own_and_others_cannot_confirm_it(open_service_database: Any) -> None:
    db = await open_service_database("signups", MIGRATIONS)
    asked = await donors.ask_to_confirm(db.uow, ORGANISER, _signup(email="org@example.org"), NOW, BASE)
    assert asked.organisation_id == ORG
    token = await _token_mailed_to(db, "org@example.org")
    with pytest.raises(ConfirmationRefused):
        await donors.confirm(db.uow, NEIGHBOUR, token, NOW)
    donor = await donors.confirm(db.uow, STAFF, token, NOW)  # the federation's key (the web front's) may carry it
    assert donor.organisation_id == ORG
