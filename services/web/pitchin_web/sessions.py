"""Server-side sessions: the cookie holds a random id; the session itself stays in PostgreSQL.

Why (issue 17): the signed cookie used to carry the organiser's API key, readable by anyone who
saw the cookie, and a copied cookie outlived logout. Now:

- the cookie `pitchin_session` is 32 random bytes (base64url), HttpOnly, SameSite=Lax, Secure
  over https; it means nothing without the table;
- the table (`web.sessions`, storage.py) keeps the SHA-256 of that id, never the id, and the
  session's JSON encrypted with Fernet under a key derived (HKDF) from PITCHIN_SESSION_SECRET:
  neither a copy of the table nor the secret alone opens a session or shows a key;
- logging in and out gives the browser a new id and deletes the old row, so a copied cookie is
  dead (and a cookie planted before login is never promoted: no session fixation);
- a session ends after `idle` seconds unseen or `max_age` seconds in all; a purge deletes those;
- both web workers (and any replica) read the same table.

A reader who only reads pages costs nothing: a row is written only when the session holds
something (a flash message, a language, a login, a sign-up draft). The CSRF token is an HMAC of
the session id (security.py), so a form needs the cookie but no row.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import HTTPConnection, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pitchin_web import storage

log = logging.getLogger(__name__)

COOKIE = "pitchin_session"
STATE = "pitchin.session"
_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
# A live session's `seen_at` is written at most this often, not on every request.
TOUCH_AFTER_SECONDS = 60


def session_cipher(secret: str) -> Fernet:
    """Fernet with a key of its own derived from the session secret (never the secret itself)."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"pitchin web session store v1")
    return Fernet(base64.urlsafe_b64encode(derived.derive(secret.encode("utf-8"))))


def id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


class SessionStore(Protocol):
    """Where sessions are kept: PostgreSQL in the web front, a dict in the pages' unit tests."""

    async def load(self, id_hash: str) -> tuple[bytes, bool] | None: ...
    async def save(self, id_hash: str, sealed: bytes) -> None: ...
    async def touch(self, id_hash: str) -> None: ...
    async def delete(self, id_hash: str) -> None: ...
    async def purge(self) -> int: ...
    async def ready(self) -> str: ...


class PostgresSessions:
    """The `web` schema's sessions table; the pool is made at start (`open`)."""

    def __init__(self, idle_seconds: int, max_age_seconds: int) -> None:
        self.idle_seconds = idle_seconds
        self.max_age_seconds = max_age_seconds
        self._pool: asyncpg.Pool | None = None

    def open(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the session store is used before the web front started")
        return self._pool

    async def load(self, id_hash: str) -> tuple[bytes, bool] | None:
        return await storage.live_session(
            self.pool, id_hash, self.idle_seconds, self.max_age_seconds, TOUCH_AFTER_SECONDS
        )

    async def save(self, id_hash: str, sealed: bytes) -> None:
        await storage.save_session(self.pool, id_hash, sealed)

    async def touch(self, id_hash: str) -> None:
        await storage.touch_session(self.pool, id_hash)

    async def delete(self, id_hash: str) -> None:
        await storage.delete_session(self.pool, id_hash)

    async def purge(self) -> int:
        return await storage.purge_sessions(self.pool, self.idle_seconds, self.max_age_seconds)

    async def ready(self) -> str:
        """ "ok" when the sessions table answers (no login works without it)."""
        try:
            await storage.sessions_answer(self.pool)
        except (OSError, RuntimeError, asyncpg.PostgresError) as exc:
            return f"failing: {type(exc).__name__}"
        return "ok"


@dataclass
class _Row:
    sealed: bytes
    created: float
    seen: float


class MemorySessions:
    """The same rules in a dict, for the pages' unit tests (one process, no database)."""

    def __init__(self, idle_seconds: int, max_age_seconds: int) -> None:
        self.idle_seconds = idle_seconds
        self.max_age_seconds = max_age_seconds
        self.rows: dict[str, _Row] = {}

    def _live(self, row: _Row, now: float) -> bool:
        return row.seen > now - self.idle_seconds and row.created > now - self.max_age_seconds

    async def load(self, id_hash: str) -> tuple[bytes, bool] | None:
        row, now = self.rows.get(id_hash), time.time()
        if row is None or not self._live(row, now):
            return None
        return row.sealed, row.seen < now - TOUCH_AFTER_SECONDS

    async def save(self, id_hash: str, sealed: bytes) -> None:
        now = time.time()
        found = self.rows.get(id_hash)
        self.rows[id_hash] = _Row(sealed, found.created if found else now, now)

    async def touch(self, id_hash: str) -> None:
        if id_hash in self.rows:
            self.rows[id_hash].seen = time.time()

    async def delete(self, id_hash: str) -> None:
        self.rows.pop(id_hash, None)

    async def purge(self) -> int:
        now = time.time()
        gone = [h for h, row in self.rows.items() if not self._live(row, now)]
        for h in gone:
            del self.rows[h]
        return len(gone)

    async def ready(self) -> str:
        return "ok"


@dataclass
class _State:
    """One request's session: its id, whether a row holds it, and what it held when read."""

    session_id: str | None
    stored: bool
    loaded: str
    stale: bool
    issue_cookie: bool = False
    ended: str | None = None  # the hash of an id given up (login, logout): its row goes


def _state(conn: HTTPConnection) -> _State:
    state = conn.scope.get(STATE)
    if not isinstance(state, _State):
        raise RuntimeError("ServerSessions is not installed")
    return state


def session_id(conn: HTTPConnection) -> str:
    """This browser's session id, made (and sent as a cookie) when it has none yet."""
    state = _state(conn)
    if state.session_id is None:
        state.session_id, state.issue_cookie = secrets.token_urlsafe(32), True
    return state.session_id


def renew(conn: HTTPConnection) -> None:
    """A new id for this browser and the old one's row deleted (at login and logout): whoever
    holds a copy of the old cookie holds nothing. What the session holds is the caller's to clear."""
    state = _state(conn)
    if state.stored and state.session_id is not None:
        state.ended = id_hash(state.session_id)
    state.session_id, state.stored, state.issue_cookie = secrets.token_urlsafe(32), False, True


class ServerSessions:
    """ASGI middleware: `request.session` read from the store and written back before the answer."""

    def __init__(self, app: ASGIApp, store: SessionStore, secret: str, max_age_seconds: int, https: bool) -> None:
        self.app = app
        self.store = store
        self.cipher = session_cipher(secret)
        self.max_age_seconds = max_age_seconds
        self.flags = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if https else "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sent_id = _cookie(scope)
        data: dict[str, Any] = {}
        state = _State(session_id=sent_id, stored=False, loaded="{}", stale=False)
        if sent_id is not None:
            found = await self.store.load(id_hash(sent_id))
            if found is not None:
                opened = self._open(found[0])
                if opened is not None:
                    data, state.stored, state.stale = opened, True, found[1]
                    state.loaded = _dump(data)
        scope["session"] = data
        scope[STATE] = state

        async def send_with_session(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = await self._write_back(scope, state)
                if cookie is not None:
                    message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_session)

    def _open(self, sealed: bytes) -> dict[str, Any] | None:
        try:
            body = json.loads(self.cipher.decrypt(sealed, ttl=self.max_age_seconds))
        except (InvalidToken, ValueError):
            return None  # sealed under another secret (rotated) or past its lifetime: a new session
        return body if isinstance(body, dict) else None

    async def _write_back(self, scope: Scope, state: _State) -> str | None:
        data = scope.get("session") or {}
        if state.ended is not None:
            await self.store.delete(state.ended)
        if data:
            if state.session_id is None:
                state.session_id, state.issue_cookie = secrets.token_urlsafe(32), True
            body = _dump(data)
            if not state.stored or body != state.loaded:
                await self.store.save(id_hash(state.session_id), self.cipher.encrypt(body.encode("utf-8")))
            elif state.stale:
                await self.store.touch(id_hash(state.session_id))
        elif state.stored and state.session_id is not None:
            await self.store.delete(id_hash(state.session_id))  # emptied: nothing left to keep
        if not state.issue_cookie or state.session_id is None:
            return None
        return f"{COOKIE}={state.session_id}; Max-Age={self.max_age_seconds}{self.flags}"


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _cookie(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            found = cookie_parser(value.decode("latin-1")).get(COOKIE)
            if found is not None and _ID.match(found):
                return found
    return None


@contextlib.asynccontextmanager
async def purging(store: SessionStore, every_seconds: float) -> AsyncIterator[None]:
    """Delete dead sessions now and every `every_seconds` while the web front runs."""

    async def loop() -> None:
        while True:
            try:
                gone = await store.purge()
                if gone:
                    log.info("purged %d expired web sessions", gone)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("could not purge web sessions: %s", exc)
            await asyncio.sleep(every_seconds)

    task = asyncio.create_task(loop(), name="web-session-purge")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
