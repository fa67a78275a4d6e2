"""Two matching processes' donor indexes follow each other's commits (issue 23: replicas).

Each process consumes only some partitions, so a donor change one of them commits must
reach the other's index through the tables (pitchin_matching/follow.py). Here two
`Matching` instances stand for two processes: one schema, two pools, two indexes, each
with its own poller where the test says so. Changes are committed through the first and
looked for in the second's ranking, against a deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

import asyncpg
import pytest

from pitchin_core.contracts.donors import DonorRegisteredV1, DonorUpdatedV1, DonorWithdrawnV1
from pitchin_core.contracts.fights import NeedOpenedV1
from pitchin_core.db import create_pool
from pitchin_core.uow import Tenant, UnitOfWork
from pitchin_matching import service, storage
from pitchin_matching.domain.donors import profile_of
from pitchin_matching.domain.tokens import verify
from pitchin_matching.follow import IndexPoller
from pitchin_matching.index import DonorIndex
from pitchin_matching.main import load_index
from pitchin_matching.service import Matching
from tests.e2e.helpers import eventually_async
from tests.integration.conftest import ServiceDatabase, cloud_event
from tests.integration.tenancy import FED, ORG, ORGANISER
from tests.unit.factories import donor_registered

pytestmark = pytest.mark.integration
MIGRATIONS = files("pitchin_matching") / "migrations"
SECRET = "a-test-secret-that-is-long-enough-for-hmac"
NOW = datetime.now(UTC).replace(microsecond=0)
POLL_SECONDS = 0.2
DEADLINE = 10.0  # seconds: fifty polls; a change normally arrives within one
MADE = "org.pitchin.offer.made.v1"

Processes = Callable[..., Awaitable[tuple[ServiceDatabase, Matching, Matching]]]


def _matching(uow: UnitOfWork) -> Matching:
    return Matching(uow=uow, index=DonorIndex(), token_secret=SECRET, public_base_url="https://pitchin.example")


@pytest.fixture
async def two_processes(open_service_database: Any, service_database: str) -> AsyncIterator[Processes]:
    """`await two_processes(poll=...)`: one migrated schema, and matching as two processes over it
    (own pool, own index, loaded; with `poll`, the second also polls as main.py makes it)."""
    opened: list[asyncpg.Pool] = []
    pollers: list[IndexPoller] = []

    async def open_(poll: bool = True) -> tuple[ServiceDatabase, Matching, Matching]:
        db: ServiceDatabase = await open_service_database("matching", MIGRATIONS)
        pool = await create_pool(service_database, db.schema, size=4)
        opened.append(pool)
        first = _matching(db.uow)
        second = _matching(UnitOfWork(pool, source="/pitchin/matching", consumer="matching"))
        for process in (first, second):
            await load_index(process)
        if poll:
            poller = IndexPoller(second.follower, pool, poll_seconds=POLL_SECONDS)
            await poller.start()
            pollers.append(poller)
        return db, first, second

    yield open_
    for poller in pollers:
        await poller.stop()
    for pool in opened:
        await pool.close()


def _donor(donor_id: str, level: str = "expert", **overrides: Any) -> DonorRegisteredV1:
    return DonorRegisteredV1.model_validate(
        donor_registered(
            donor_id=donor_id,
            federation_id=FED,
            organisation_id=ORG,
            email=f"{donor_id}@example.org",
            skills=[{"skill": "social-media", "level": level}],
            **overrides,
        )
    )


def _need(need_id: str) -> NeedOpenedV1:
    return NeedOpenedV1.model_validate(
        {
            "federation_id": FED,
            "organisation_id": ORG,
            "need_id": need_id,
            "fight_id": f"fight-{need_id}",
            "title": "Social media for the bin strike",
            "required_skills": [{"skill": "social-media", "min_level": "advanced"}],
            "estimated_hours": 6,
            "deadline": NOW + timedelta(days=10),
            "language": "en",
            "causes": ["labour"],
            "opened_at": NOW,
        }
    )


async def _learn(m: Matching, *facts: DonorRegisteredV1 | DonorUpdatedV1 | NeedOpenedV1) -> None:
    for data in facts:
        if isinstance(data, NeedOpenedV1):
            assert await service.learn_need(m, cloud_event(data), data, NOW)
        else:
            assert await service.learn_donor(m, cloud_event(data), data, NOW)


def _figures(m: Matching, donor_id: str) -> tuple[bool, int, int] | None:
    """What a process's index holds for a donor: active, load, offers declined (None: unknown)."""
    row = m.index.row_of(donor_id)
    if row is None:
        return None
    c = m.index.columns
    return bool(c.active[row]), int(c.load[row]), int(c.declined[row])


async def _ranked(m: Matching, need_id: str) -> list[str]:
    """The donors an organiser sees ranked for a need, best first, from this process's index."""
    ranked = await service.candidates(m, ORGANISER, need_id, 10, NOW)
    return [c["donor_id"] for c in ranked["candidates"]]


async def _until(condition: Callable[[], bool], what: str) -> None:
    async def probe() -> bool:
        return condition()

    await eventually_async(probe, DEADLINE, 0.02, what)


async def test_a_donor_committed_through_one_process_is_ranked_by_the_other(two_processes: Processes) -> None:
    db, first, second = await two_processes()
    await _learn(first, _need("need_1"))  # nobody to ask yet: the need waits
    assert await db.types_emitted() == []
    assert await _ranked(second, "need_1") == []

    await _learn(first, _donor("don_1"))  # consumed by the first process only
    await _until(lambda: _figures(second, "don_1") == (True, 0, 0), "the second process's poll to learn don_1")
    assert await _ranked(second, "need_1") == ["don_1"]

    # A rematch through the first process asks don_1: the offer counts in the second's index.
    assert await service.match_waiting(first, FED, NOW, force_all=True) == 1
    [made] = await db.outbox()
    assert (made["type"], made["data"]["donor_id"]) == (MADE, "don_1")
    await _until(lambda: _figures(second, "don_1") == (True, 1, 0), "the second index to count don_1's offer")

    # An update the second process never consumed changes its ranking too: don_1's skill drops below the need's.
    body = _donor("don_1", level="beginner").model_dump(mode="json")
    del body["registered_at"]
    update = DonorUpdatedV1.model_validate({**body, "version": 2, "status": "active", "updated_at": NOW.isoformat()})
    await _learn(first, update)
    skill = second.index.columns.skills["social-media"]
    await _until(lambda: int(skill[second.index.row_of("don_1") or 0]) == 0, "the second index to see the update")
    assert await _ranked(second, "need_1") == []


async def test_a_withdrawn_donor_leaves_the_other_processes_ranking(two_processes: Processes) -> None:
    db, first, second = await two_processes()
    await _learn(first, _donor("don_1"), _donor("don_2", level="advanced"))
    # Organisers look through the second process, which catches up before it ranks.
    await _learn(second, _need("need_1"))
    assert [e["data"]["donor_id"] for e in await db.outbox()] == ["don_1"]
    assert set(await _ranked(second, "need_1")) == {"don_1", "don_2"}

    withdrawn = DonorWithdrawnV1(federation_id=FED, donor_id="don_1", withdrawn_at=NOW, erase=True)
    assert await service.withdraw_donor(first, cloud_event(withdrawn), withdrawn, NOW)
    await _until(lambda: _figures(second, "don_1") == (False, 0, 0), "the second index to see don_1 withdrawn")
    assert await _ranked(second, "need_1") == ["don_2"]
    assert await _ranked(first, "need_1") == ["don_2"]


async def test_offer_making_ranks_from_every_commit_of_its_federation_without_waiting_for_a_poll(
    two_processes: Processes,
) -> None:
    db, first, second = await two_processes(poll=False)
    await _learn(first, _donor("don_1"), _donor("don_2", level="advanced"))
    assert _figures(second, "don_1") is None, "no poll ran in the second process"

    # The need is consumed by the second process: under the federation's lock it catches
    # up first, so it asks the best donor the first process learnt a moment ago.
    await _learn(second, _need("need_1"))
    [made] = await db.outbox()
    assert made["data"]["donor_id"] == "don_1"

    # The donor declines through the first process (an HTTP request it served): it asks the
    # next donor, and the second process's index counts the decline and the new offer.
    claims = verify(SECRET, made["data"]["offer_token"], NOW.timestamp())
    await service.decline_offer(first, made["data"]["offer_id"], claims, "", NOW)
    assert [e["data"]["donor_id"] for e in await db.outbox() if e["type"] == MADE] == ["don_1", "don_2"]
    await second.follower.catch_up()
    assert (_figures(second, "don_1"), _figures(second, "don_2")) == ((True, 0, 1), (True, 1, 0))


async def test_a_transaction_that_commits_after_a_later_one_is_not_skipped(two_processes: Processes) -> None:
    db, first, second = await two_processes(poll=False)
    early, late = profile_of(_donor("don_early")), profile_of(_donor("don_late"))
    conn_early = await db.pool.acquire()
    try:
        # The early transaction writes first (its id is the lower one) but commits last.
        tx_early = conn_early.transaction()
        await tx_early.start()
        await storage.upsert_donor(conn_early, early, NOW)
        async with first.uow(Tenant(FED)) as tx:
            await storage.upsert_donor(tx.conn, late, NOW)
        assert await second.follower.catch_up() == 1
        assert (_figures(second, "don_late"), _figures(second, "don_early")) == ((True, 0, 0), None)
        await tx_early.commit()
    finally:
        await db.pool.release(conn_early)
    await second.follower.catch_up()
    assert _figures(second, "don_early") == (True, 0, 0), "the watermark did not pass the early transaction"
    assert await second.follower.catch_up() == 0, "once the horizon passed both, nothing is read again"


async def test_a_writing_transaction_catches_up_with_others_but_not_with_itself(two_processes: Processes) -> None:
    _, first, second = await two_processes(poll=False)
    await _learn(first, _donor("don_other"))
    watermark = second.follower.watermark

    class RolledBack(Exception):
        pass

    with pytest.raises(RolledBack):
        async with second.uow(Tenant(FED)) as tx:
            await storage.upsert_donor(tx.conn, profile_of(_donor("don_mine")), NOW)
            assert await second.follower.catch_up_within(tx) == 1
            raise RolledBack
    assert _figures(second, "don_other") == (True, 0, 0), "others' commits reach the index inside a transaction"
    assert _figures(second, "don_mine") is None, "its own uncommitted donor does not"
    assert second.follower.watermark == watermark, "a read that skipped donors does not move the watermark"
    await second.follower.catch_up()
    assert _figures(second, "don_mine") is None, "the rolled-back donor never appears"
