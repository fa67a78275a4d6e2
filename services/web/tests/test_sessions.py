"""Server-side sessions (issue 17): the cookie is a random id, logout kills a copied cookie, a
refused key ends the session. Against stand-in services and the in-memory store; the same
middleware on PostgreSQL is in tests/integration/test_web_sessions.py."""

from __future__ import annotations

import asyncio
import base64
import re
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from pitchin_web.clients import Services
from pitchin_web.main import WebSettings, create_app
from pitchin_web.sessions import COOKIE, MemorySessions, id_hash, session_cipher

KNOWN = {"pk_org"}


def services(request: httpx.Request) -> httpx.Response:
    key = request.headers.get("authorization", "").removeprefix("Bearer ")
    if key not in KNOWN:
        return httpx.Response(401, json={"title": "Unauthorised", "detail": "unknown key"})
    if request.url.path in ("/v1/fights", "/v1/needs"):
        return httpx.Response(200, json={"items": [], "next": None})
    if request.url.path == "/v1/events":
        return httpx.Response(200, json=[])
    return httpx.Response(404, json={"title": "Not found", "detail": request.url.path})


@pytest.fixture
def store() -> MemorySessions:
    return MemorySessions(idle_seconds=3600, max_age_seconds=8 * 3600)


def web(store: MemorySessions) -> TestClient:
    settings = WebSettings(environment="test", session_secret="s" * 40, donor_link_secret="d" * 40)
    app = create_app(settings, store)
    app.state.web.services = Services(settings.service_urls, 2.0, httpx.MockTransport(services))
    return TestClient(app)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def log_in(client: TestClient, key: str = "pk_org") -> None:
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"csrf": token, "api_key": key, "role": "organiser"}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/organiser", answer.text


def test_the_cookie_is_a_random_id_and_the_stored_session_is_sealed(store: MemorySessions) -> None:
    client = web(store)
    log_in(client)
    cookie = client.cookies[COOKIE]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", cookie), cookie
    decoded = base64.urlsafe_b64decode(cookie + "=")
    assert b"pk_org" not in decoded and b"key" not in decoded, "the cookie carries nothing readable"
    # The store keeps the id's hash, never the id, and the key only encrypted.
    assert list(store.rows) == [id_hash(cookie)]
    sealed = store.rows[id_hash(cookie)].sealed
    assert b"pk_org" not in sealed
    assert b'"key":"pk_org"' in session_cipher("s" * 40).decrypt(sealed)
    assert client.get("/organiser").status_code == 200


def test_login_gives_a_new_id_so_a_planted_cookie_is_never_promoted(store: MemorySessions) -> None:
    client = web(store)
    client.get("/language/cy")  # a session with something in it, before login
    before = client.cookies[COOKIE]
    log_in(client)
    assert client.cookies[COOKIE] != before
    assert id_hash(before) not in store.rows
    assert '<html lang="cy">' in client.get("/organiser").text, "the language chosen survives the login"


def test_a_copied_cookie_is_dead_after_logout(store: MemorySessions) -> None:
    client = web(store)
    log_in(client)
    copied = client.cookies[COOKIE]
    thief = web(store)
    thief.cookies.set(COOKIE, copied)
    assert thief.get("/organiser", follow_redirects=False).status_code == 200, "the copy works while logged in"
    token = csrf_of(client.get("/organiser").text)
    assert client.post("/logout", data={"csrf": token}, follow_redirects=False).status_code == 303
    assert client.cookies[COOKIE] != copied
    answer = thief.get("/organiser", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    # The thief's browser may start a session of its own under that id (the "log in" notice),
    # holding nothing of the organiser's.
    left = store.rows.get(id_hash(copied))
    assert left is None or b"pk_org" not in session_cipher("s" * 40).decrypt(left.sealed)


def test_a_key_the_services_refuse_ends_the_session(store: MemorySessions) -> None:
    KNOWN.add("pk_soon_revoked")
    client = web(store)
    try:
        log_in(client, "pk_soon_revoked")
        assert client.get("/organiser").status_code == 200
        KNOWN.discard("pk_soon_revoked")  # revoked: the services answer 401
        answer = client.get("/organiser", follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/organiser"
        assert store.rows == {} or all(
            b"pk_soon_revoked" not in session_cipher("s" * 40).decrypt(r.sealed) for r in store.rows.values()
        )
        again = client.get("/organiser", follow_redirects=False)
        assert again.headers["location"].startswith("/login"), "the session no longer holds the key"
    finally:
        KNOWN.discard("pk_soon_revoked")


def test_an_idle_or_too_old_session_ends_and_is_purged(store: MemorySessions) -> None:
    idle, old, fresh = web(store), web(store), web(store)
    for client in (idle, old, fresh):
        log_in(client)
    store.rows[id_hash(idle.cookies[COOKIE])].seen = time.time() - 3601
    store.rows[id_hash(old.cookies[COOKIE])].created = time.time() - 8 * 3600 - 1
    for client in (idle, old):
        answer = client.get("/organiser", follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    assert fresh.get("/organiser", follow_redirects=False).status_code == 200
    store.rows[id_hash(fresh.cookies[COOKIE])].seen = time.time() - 3601
    gone = asyncio.run(store.purge())
    assert gone == 2, "the idle one and the one past its lifetime (the first was renewed by its 'log in' notice)"
    assert id_hash(fresh.cookies[COOKIE]) not in store.rows and id_hash(old.cookies[COOKIE]) not in store.rows


def test_a_form_token_of_another_session_is_refused(store: MemorySessions) -> None:
    mine, theirs = web(store), web(store)
    token = csrf_of(theirs.get("/login").text)
    mine.get("/login")
    answer = mine.post("/login", data={"csrf": token, "api_key": "pk_org", "role": "organiser"})
    assert answer.status_code == 403


def test_reading_pages_stores_no_session(store: MemorySessions) -> None:
    client = web(store)
    client.get("/login")
    assert store.rows == {}, "a form needs the cookie's id, not a stored row"
