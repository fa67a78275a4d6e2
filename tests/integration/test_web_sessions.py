"""The web front's sessions on the real PostgreSQL (issue 17): two web processes share them, the
table holds no id and no readable key, logout and expiry end them, the purge deletes them."""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any

import httpx

from pitchin_web.clients import Services
from pitchin_web.main import WebSettings, create_app
from pitchin_web.sessions import COOKIE, PostgresSessions, id_hash, session_cipher

SECRET = "s" * 40


def services(request: httpx.Request) -> httpx.Response:
    if request.headers.get("authorization") != "Bearer pk_org":
        return httpx.Response(401, json={"title": "Unauthorised", "detail": "unknown key"})
    if request.url.path in ("/v1/fights", "/v1/needs"):
        return httpx.Response(200, json={"items": [], "next": None})
    return httpx.Response(200, json=[])


def web_process(store: PostgresSessions) -> httpx.AsyncClient:
    """One web worker: an app of its own (its own store object) on the shared table."""
    settings = WebSettings(environment="test", session_secret=SECRET, donor_link_secret="d" * 40)
    app = create_app(settings, store)
    app.state.web.services = Services(settings.service_urls, 2.0, httpx.MockTransport(services))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def stores(open_service_database: Any) -> tuple[Any, PostgresSessions, PostgresSessions]:
    db = await open_service_database("web", files("pitchin_web") / "migrations")
    first, second = PostgresSessions(3600, 8 * 3600), PostgresSessions(3600, 8 * 3600)
    first.open(db.pool)
    second.open(db.pool)
    return db, first, second


async def log_in(client: httpx.AsyncClient) -> str:
    page = (await client.get("/login")).text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    answer = await client.post("/login", data={"csrf": found.group(1), "api_key": "pk_org", "role": "organiser"})
    assert answer.status_code == 303, answer.text
    return str(client.cookies[COOKIE])


async def test_a_session_made_by_one_worker_is_used_by_another_and_holds_no_readable_key(
    open_service_database: Any,
) -> None:
    db, first, second = await stores(open_service_database)
    async with web_process(first) as one, web_process(second) as other:
        cookie = await log_in(one)
        other.cookies.set(COOKIE, cookie)
        assert (await other.get("/organiser")).status_code == 200
        rows = await db.pool.fetch("SELECT id_hash, sealed FROM sessions")
        assert [r["id_hash"] for r in rows] == [id_hash(cookie)], "the id itself is not stored"
        sealed = bytes(rows[0]["sealed"])
        assert b"pk_org" not in sealed
        assert b'"key":"pk_org"' in session_cipher(SECRET).decrypt(sealed)


async def test_logout_on_one_worker_kills_the_cookie_on_the_other(open_service_database: Any) -> None:
    db, first, second = await stores(open_service_database)
    async with web_process(first) as one, web_process(second) as thief:
        cookie = await log_in(one)
        thief.cookies.set(COOKIE, cookie)
        page = (await one.get("/organiser")).text
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found
        assert (await one.post("/logout", data={"csrf": found.group(1)})).status_code == 303
        answer = await thief.get("/organiser")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
        kept = await db.pool.fetch("SELECT sealed FROM sessions")
        assert all(b"pk_org" not in session_cipher(SECRET).decrypt(bytes(r["sealed"])) for r in kept)


async def test_idle_and_old_sessions_are_refused_and_purged(open_service_database: Any) -> None:
    db, first, _ = await stores(open_service_database)
    async with web_process(first) as idle, web_process(first) as old, web_process(first) as fresh:
        idle_id, old_id = await log_in(idle), await log_in(old)
        await log_in(fresh)
        await db.pool.execute(
            "UPDATE sessions SET seen_at = now() - interval '61 minutes' WHERE id_hash = $1", id_hash(idle_id)
        )
        await db.pool.execute(
            "UPDATE sessions SET created_at = now() - interval '9 hours' WHERE id_hash = $1", id_hash(old_id)
        )
        assert await first.load(id_hash(idle_id)) is None
        assert await first.load(id_hash(old_id)) is None
        assert await first.purge() == 2
        assert await db.pool.fetchval("SELECT count(*) FROM sessions") == 1
        assert (await fresh.get("/organiser")).status_code == 200
        assert (await idle.get("/organiser")).status_code == 303
