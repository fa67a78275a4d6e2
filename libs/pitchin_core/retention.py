"""Retention written down and enforced (issue 19, docs/privacy.md): each service runs one job
that applies its rules a batch at a time, so nothing personal is kept longer than the table says.

A rule is one statement that deletes or blanks at most `$1` rows past their time (it must
choose them with `LIMIT $1 FOR UPDATE SKIP LOCKED`, so every process of a service can run the
job without waiting on the others). The job runs across tenants, as the service's login role
(the rules are the same for every federation), on the pattern of the idempotency janitor.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
from fastapi import FastAPI

from pitchin_core.erasure import rows
from pitchin_core.http import run_beside
from pitchin_core.worker import BatchWorker

if TYPE_CHECKING:
    from pitchin_core.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    """What goes, from which table, after how long (`statement` takes the batch size as $1)."""

    table: str
    keeps: str  # what docs/privacy.md says, for logs and the docs test
    statement: str


class Retention(BatchWorker):
    """Applies a service's retention rules, a batch of each per pass."""

    def __init__(
        self, pool: asyncpg.Pool, rules: tuple[Rule, ...], *, batch_size: int = 1000, every: float = 600.0
    ) -> None:
        super().__init__(pool, name="retention", batch_size=batch_size, idle_poll_seconds=every)
        self.rules = rules
        self.applied: dict[str, int] = {rule.table: 0 for rule in rules}

    async def work_once(self) -> int:
        done = 0
        for rule in self.rules:
            count = rows(await self.pool.execute(rule.statement, self.batch_size))
            self.applied[rule.table] += count
            done += count
        if done:
            log.info("retention: %d rows deleted or blanked", done, extra={"applied": dict(self.applied)})
        # A full batch of any rule means more is due: the worker goes again at once.
        return self.batch_size if done >= self.batch_size else done


def enforce(app: FastAPI, runtime: Runtime, rules: tuple[Rule, ...]) -> None:
    """Run the service's retention job for as long as its app serves (one per process)."""

    async def start(workers: AsyncExitStack) -> None:
        job = Retention(runtime.pool, rules)
        app.state.retention = job
        await job.start()
        workers.push_async_callback(job.stop)

    run_beside(app, start)


# Every service: outbox rows Kafka refused for good are kept 30 days for an operator to replay.
PARKED_EVENTS = Rule(
    table="outbox_dead_letters",
    keeps="30 days",
    statement=(
        "DELETE FROM outbox_dead_letters WHERE seq IN (SELECT seq FROM outbox_dead_letters"
        " WHERE failed_at < now() - interval '30 days' ORDER BY failed_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
    ),
)
