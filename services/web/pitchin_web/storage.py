"""Every SQL statement of the web front: its sessions (the `web` schema, migrations/)."""

from __future__ import annotations

import asyncpg

from pitchin_core.db import Conn

Db = Conn | asyncpg.Pool


async def live_session(
    db: Db, id_hash: str, idle_seconds: int, max_age_seconds: int, touch_after: int
) -> tuple[bytes, bool] | None:
    """A session neither idle too long nor past its lifetime: its sealed body, and whether its
    `seen_at` is older than `touch_after` seconds (then the request marks it seen)."""
    row = await db.fetchrow(
        "SELECT sealed, seen_at < now() - make_interval(secs => $4) AS stale FROM sessions"
        " WHERE id_hash = $1 AND seen_at > now() - make_interval(secs => $2)"
        " AND created_at > now() - make_interval(secs => $3)",
        id_hash,
        float(idle_seconds),
        float(max_age_seconds),
        float(touch_after),
    )
    return None if row is None else (bytes(row["sealed"]), bool(row["stale"]))


async def save_session(db: Db, id_hash: str, sealed: bytes) -> None:
    await db.execute(
        "INSERT INTO sessions (id_hash, sealed) VALUES ($1, $2)"
        " ON CONFLICT (id_hash) DO UPDATE SET sealed = EXCLUDED.sealed, seen_at = now()",
        id_hash,
        sealed,
    )


async def touch_session(db: Db, id_hash: str) -> None:
    await db.execute("UPDATE sessions SET seen_at = now() WHERE id_hash = $1", id_hash)


async def delete_session(db: Db, id_hash: str) -> None:
    await db.execute("DELETE FROM sessions WHERE id_hash = $1", id_hash)


async def purge_sessions(db: Db, idle_seconds: int, max_age_seconds: int) -> int:
    """Delete the sessions that can no longer be used; how many went."""
    done = await db.execute(
        "DELETE FROM sessions WHERE seen_at <= now() - make_interval(secs => $1)"
        " OR created_at <= now() - make_interval(secs => $2)",
        float(idle_seconds),
        float(max_age_seconds),
    )
    return int(done.rsplit(" ", 1)[-1])


async def sessions_answer(db: Db) -> None:
    """A cheap read of the sessions table (readiness)."""
    await db.fetchval("SELECT 1 FROM sessions LIMIT 1")
