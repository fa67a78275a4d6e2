"""Deciding a published event, once, in one transaction of the consuming service.

`Pipeline.decide` claims (source, id) in `ingest_seen`, applies the owning service's use
case in a savepoint of the same transaction (so its rows, its outbox events, the
external-id record and the answer commit together, and a refusal rolls back only the use
case's part), or records the rejection and, for Kafka, stages it on
`pitchin.ingest.rejections.v1` through the outbox. The same id again replays the answer it
got; the same id with other content is refused as reused.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from pitchin_core.contracts.cloudevents import tenant_of
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.ingest import REJECTIONS_TOPIC, IngestRejectedV1
from pitchin_core.db import Conn
from pitchin_core.errors import DomainError
from pitchin_core.ingest.envelope import Envelope
from pitchin_core.ingest.metrics import ingest_counter
from pitchin_core.ingest.publishers import REJECTED_OUTCOME, Registration, Registry
from pitchin_core.ingest.validation import Accepted, Rejection, fingerprint, original_id, validate
from pitchin_core.telemetry import Metrics, current_traceparent
from pitchin_core.uow import Transaction, Transactions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    status: int
    outcome: str  # applied, forwarded, duplicate, rejected
    reason: str
    body: dict[str, Any]
    replayed: bool = False
    retry_after: float | None = None


class NotYet(Exception):
    """What the event refers to is not known here yet (e.g. an RSVP racing its event): retry soon."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(str(rejection))
        self.rejection = rejection


# A service's use of an accepted event, in a savepoint of the pipeline's transaction: it
# passes the savepoint to its use cases as their unit of work. It refuses by raising a
# `DomainError` or a `Rejection`, or `NotYet` to have the whole decision retried later.
Apply = Callable[[Transaction, Accepted, datetime], Awaitable[dict[str, Any]]]

# A service's set-based use of a round of accepted events (no two with the same source and id,
# nor the same external id), in the round's transaction with no savepoint: for each event its
# result, its refusal (a `DomainError` or `Rejection`, decided before anything of it was
# written), or None to have it applied one by one through `Apply`.
ApplyMany = Callable[
    [Transaction, Sequence[Accepted], datetime], Awaitable[Sequence[dict[str, Any] | Exception | None]]
]


@runtime_checkable
class AppliesMany(Protocol):
    """An `Apply` that also has its set-based `ApplyMany`, for the doors that decide batches."""

    async def __call__(self, tx: Transaction, accepted: Accepted, now: datetime) -> dict[str, Any]: ...

    async def many(
        self, tx: Transaction, batch: Sequence[Accepted], now: datetime
    ) -> Sequence[dict[str, Any] | Exception | None]: ...


def rounds(envelopes: Sequence[Envelope]) -> list[list[int]]:
    """The batch's positions cut into consecutive rounds in which no (source, id) and no
    (source, external id) repeats: a later event of the same id or person goes to a later
    round, so it is decided after the earlier one, as one by one."""
    cut: list[list[int]] = []
    current: list[int] = []
    keys: set[tuple[str, str, str]] = set()
    for i, envelope in enumerate(envelopes):
        source = envelope.source or ""
        mine = {("id", source, original_id(envelope) or "")}
        if isinstance(envelope.data, dict) and isinstance(envelope.data.get("external_id"), str):
            mine.add(("external", source, envelope.data["external_id"]))
        if keys & mine:
            cut.append(current)
            current, keys = [], set()
        current.append(i)
        keys |= mine
    if current:
        cut.append(current)
    return cut


@dataclass
class Pipeline:
    """The decision every door shares, for one consuming service."""

    service: str
    metrics: Metrics
    registry: Registry = field(default_factory=Registry)

    def __post_init__(self) -> None:
        self.counter = ingest_counter(self.metrics)

    async def decide(
        self,
        uow: Transactions,
        envelope: Envelope,
        registration: Registration | None,
        apply: Apply,
        *,
        now: datetime,
        door: str | None = None,
        stage_rejections: bool = False,
    ) -> Answer:
        door = door or envelope.door
        ident = original_id(envelope)
        try:
            accepted = validate(envelope, registration)
        except Rejection as rejection:
            answer = self.reject(envelope, rejection)
            if stage_rejections and envelope.source:
                async with uow() as tx:
                    claimed = await self._claim_rejection(tx.conn, envelope, ident)
                    if claimed:
                        await self._stage_rejection(tx.conn, envelope, ident, registration, rejection, door, now)
                        await _remember(tx.conn, envelope, ident, "rejected", answer)
            elif registration is not None and ident is not None and envelope.source == registration.source:
                # Answered at once (HTTP): recorded only to be counted for the publisher's staff.
                await _note_rejection(uow, envelope, ident)
            self._count(door, answer, envelope, registration)
            return answer
        assert ident is not None and envelope.source is not None
        async with uow() as tx:
            prior = await _claim(tx.conn, envelope.source, ident, accepted.data.event_type, fingerprint(envelope))
            if prior is not None:
                answer = await self._replay(tx.conn, envelope, ident, registration, prior, door, now, stage_rejections)
            else:
                answer = await self._apply_claimed(
                    tx, envelope, ident, accepted, registration, apply, door, now, stage_rejections
                )
        self._count(door, answer, envelope, registration)
        return answer

    async def decide_many(
        self,
        uow: Transactions,
        batch: Sequence[tuple[Envelope, Registration | None]],
        apply: Apply,
        apply_many: ApplyMany | None = None,
        *,
        now: datetime,
        door: str | None = None,
        stage_rejections: bool = False,
    ) -> list[Answer]:
        """A batch's decisions, set-based: one claim, one `apply_many` and one answer statement
        per round, each event with its own answer, as `decide` would have given one by one.

        The batch is cut into rounds where no (source, id) and no (source, external id) repeats
        (`rounds`), so a later event of the same person sees what the earlier one did. Events
        refused before any write, ids decided before (replays) and whatever `apply_many` leaves
        (None) are decided one by one inside the round's transaction. Raises whatever `apply`
        raises (NotYet, an unexpected error): the caller redoes the batch event by event.
        """
        answers: list[Answer | None] = [None] * len(batch)
        for round_ in rounds([envelope for envelope, _ in batch]):
            accepted: list[tuple[int, str, Accepted]] = []
            for i in round_:
                envelope, registration = batch[i]
                try:
                    accepted.append((i, original_id(envelope) or "", validate(envelope, registration)))
                except Rejection:
                    answers[i] = await self.decide(
                        uow, envelope, registration, apply, now=now, door=door, stage_rejections=stage_rejections
                    )
            if not accepted:
                continue
            async with uow() as tx:
                claims = [(batch[i][0], ident, a.data.event_type) for i, ident, a in accepted]
                claimed = await _claim_many(tx.conn, claims)
                fresh: list[tuple[int, str, Accepted]] = []
                for i, ident, a in accepted:
                    envelope, registration = batch[i]
                    event_door = door or envelope.door
                    assert envelope.source is not None
                    if (envelope.source, ident) in claimed:
                        fresh.append((i, ident, a))
                        continue
                    answer: Answer | None = await _prior(
                        tx.conn, envelope.source, ident, a.data.event_type, fingerprint(envelope)
                    )
                    if answer is None:  # a corrected event under a refused one's id: afresh
                        answer = await self._apply_claimed(
                            tx, envelope, ident, a, registration, apply, event_door, now, stage_rejections
                        )
                    else:
                        answer = await self._replay(
                            tx.conn, envelope, ident, registration, answer, event_door, now, stage_rejections
                        )
                    answers[i] = answer
                    self._count(event_door, answer, envelope, registration)
                results: Sequence[dict[str, Any] | Exception | None] = [None] * len(fresh)
                if apply_many is not None and fresh:
                    results = await apply_many(tx, [a for _, _, a in fresh], now)
                decided: list[tuple[Envelope, str, Answer]] = []
                for (i, ident, a), result in zip(fresh, results, strict=True):
                    envelope, registration = batch[i]
                    event_door = door or envelope.door
                    if result is None:
                        answer = await self._apply_claimed(
                            tx, envelope, ident, a, registration, apply, event_door, now, stage_rejections
                        )
                    else:
                        answer = await self._answer(
                            tx.conn, envelope, ident, registration, result, event_door, now, stage_rejections
                        )
                        decided.append((envelope, ident, answer))
                    answers[i] = answer
                    self._count(event_door, answer, envelope, registration)
                await _remember_many(tx.conn, decided)
        assert all(answer is not None for answer in answers)
        return [answer for answer in answers if answer is not None]

    async def _replay(
        self,
        conn: Conn,
        envelope: Envelope,
        ident: str,
        registration: Registration | None,
        prior: Answer,
        door: str,
        now: datetime,
        stage_rejections: bool,
    ) -> Answer:
        """The answer an id got before; a reused id's refusal is staged for the publisher (Kafka)."""
        if prior.reason == "id-reused" and stage_rejections:
            reused = Rejection.one(409, "id-reused", "id", str(prior.body.get("detail", "")).partition(": ")[2])
            await self._stage_rejection(conn, envelope, ident, registration, reused, door, now)
        return prior

    async def _apply_claimed(
        self,
        tx: Transaction,
        envelope: Envelope,
        ident: str,
        accepted: Accepted,
        registration: Registration | None,
        apply: Apply,
        door: str,
        now: datetime,
        stage_rejections: bool,
    ) -> Answer:
        """A claimed id's use case in a savepoint (a refusal rolls back only its part), and its answer kept."""
        result: dict[str, Any] | Exception
        try:
            async with tx() as savepoint:
                result = await apply(savepoint, accepted, now)
        except (DomainError, Rejection) as refused:
            result = refused
        answer = await self._answer(tx.conn, envelope, ident, registration, result, door, now, stage_rejections)
        await _remember(tx.conn, envelope, ident, answer.outcome, answer)
        return answer

    async def _answer(
        self,
        conn: Conn,
        envelope: Envelope,
        ident: str,
        registration: Registration | None,
        result: dict[str, Any] | Exception,
        door: str,
        now: datetime,
        stage_rejections: bool,
    ) -> Answer:
        """The answer to a use case's result or refusal; a refusal is staged for the publisher (Kafka)."""
        if isinstance(result, dict):
            outcome = "forwarded" if result.get("forwarded") else "applied"
            body = {"status": 202, "outcome": outcome, "id": ident, "source": envelope.source}
            return Answer(202, outcome, "", {**body, "type": envelope.type, **result})
        if isinstance(result, DomainError):
            refused = Rejection.from_error(result)
        elif isinstance(result, Rejection):
            refused = result
        else:
            raise result
        if stage_rejections:
            await self._stage_rejection(conn, envelope, ident, registration, refused, door, now)
        return self.reject(envelope, refused)

    def reject(self, envelope: Envelope, rejection: Rejection) -> Answer:
        body = rejection.problem_body()
        body.update({"id": original_id(envelope), "source": envelope.source, "event_type": envelope.type})
        return Answer(rejection.status, "rejected", rejection.reason, body, retry_after=rejection.retry_after)

    async def _claim_rejection(self, conn: Conn, envelope: Envelope, ident: str | None) -> bool:
        if ident is None or envelope.source is None:
            return True
        prior = await _claim(conn, envelope.source, ident, envelope.type or "", fingerprint(envelope))
        return prior is None

    async def _stage_rejection(
        self,
        conn: Conn,
        envelope: Envelope,
        ident: str | None,
        registration: Registration | None,
        rejection: Rejection,
        door: str,
        now: datetime,
    ) -> None:
        assert envelope.source is not None
        forwarded = ident != envelope.id
        rejected = IngestRejectedV1(
            federation_id=registration.federation_id if registration else "unregistered",
            source=envelope.source,
            id=ident,
            type=envelope.type,
            reason=rejection.reason,
            reasons=rejection.reasons,
            door="http" if forwarded else door,
            rejected_by=self.service,
            rejected_at=now,
        )
        await stage(
            conn,
            rejected,
            topic=REJECTIONS_TOPIC,
            key=envelope.source,
            source=f"/pitchin/{self.service}",
            subject=f"rejections/{ident}" if ident else None,
        )

    def _count(self, door: str, answer: Answer, envelope: Envelope, registration: Registration | None) -> None:
        outcome = "duplicate" if answer.replayed else answer.outcome
        self.counter.labels(self.service, door, outcome, answer.reason or "none").inc()
        if answer.outcome == "rejected" and not answer.replayed:
            log.warning(
                "ingest rejected %s from %s (%s): %s",
                original_id(envelope),
                envelope.source,
                "registered" if registration else "unregistered",
                answer.body.get("detail"),
                extra={"reason": answer.reason, "event_type": envelope.type},
            )

    def count(self, door: str, outcome: str, reason: str) -> None:
        self.counter.labels(self.service, door, outcome, reason or "none").inc()


async def _claim(conn: Conn, source: str, ident: str, event_type: str, print_: str) -> Answer | None:
    """Claim (source, id) for this transaction, or the answer it got before (None: go ahead)."""
    claimed = await conn.fetchval(
        "INSERT INTO ingest_seen (source, event_id, event_type, fingerprint, outcome)"
        " VALUES ($1, $2, $3, $4, 'pending')"
        " ON CONFLICT (source, event_id) DO NOTHING RETURNING true",
        source,
        ident,
        event_type,
        print_,
    )
    if claimed:
        return None
    return await _prior(conn, source, ident, event_type, print_)


async def _claim_many(conn: Conn, claims: Sequence[tuple[Envelope, str, str]]) -> set[tuple[str, str]]:
    """Claim each (source, id) of a round (envelope, id, event type) in one statement: the ones claimed."""
    rows = await conn.fetch(
        "INSERT INTO ingest_seen (source, event_id, event_type, fingerprint, outcome)"
        " SELECT source, event_id, event_type, fingerprint, 'pending'"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS c(source, event_id, event_type, fingerprint)"
        " ON CONFLICT (source, event_id) DO NOTHING RETURNING source, event_id",
        [envelope.source for envelope, _, _ in claims],
        [ident for _, ident, _ in claims],
        [event_type for _, _, event_type in claims],
        [fingerprint(envelope) for envelope, _, _ in claims],
    )
    return {(row["source"], row["event_id"]) for row in rows}


async def _prior(conn: Conn, source: str, ident: str, event_type: str, print_: str) -> Answer | None:
    """The answer an id already claimed got (replayed), a refusal as reused, or None: decide it afresh."""
    row = await conn.fetchrow(
        "SELECT fingerprint, outcome, answer::text AS answer FROM ingest_seen WHERE source = $1 AND event_id = $2"
        " FOR UPDATE",
        source,
        ident,
    )
    assert row is not None
    if row["fingerprint"] == print_ and row["answer"] is not None:
        stored = json.loads(row["answer"])
        return Answer(stored["status"], row["outcome"], stored.get("reason", ""), stored["body"], replayed=True)
    if row["outcome"] == "rejected":
        # A corrected event under the id of a refused one: decide it afresh.
        await conn.execute(
            "UPDATE ingest_seen SET fingerprint = $3, event_type = $4 WHERE source = $1 AND event_id = $2",
            source,
            ident,
            print_,
            event_type,
        )
        return None
    rejection = Rejection.one(409, "id-reused", "id", f"{ident!r} was already used by this source for another event")
    body = rejection.problem_body() | {"id": ident, "source": source, "event_type": event_type}
    return Answer(409, "rejected", "id-reused", body)


async def _note_rejection(uow: Transactions, envelope: Envelope, ident: str) -> None:
    """Record an authenticated publisher's invalid event, without an answer to replay.

    The same id again is judged afresh (as before), and a row of an id already decided is
    left as it is.
    """
    assert envelope.source is not None
    async with uow() as tx:
        await tx.conn.execute(
            "INSERT INTO ingest_seen (source, event_id, event_type, fingerprint, outcome) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (source, event_id) DO NOTHING",
            envelope.source,
            ident,
            envelope.type or "",
            fingerprint(envelope),
            REJECTED_OUTCOME,
        )


async def _remember(conn: Conn, envelope: Envelope, ident: str | None, outcome: str, answer: Answer) -> None:
    if ident is None or envelope.source is None or answer.reason == "id-reused":
        return
    stored = {"status": answer.status, "reason": answer.reason, "body": answer.body}
    await conn.execute(
        "UPDATE ingest_seen SET outcome = $3, answer = $4::jsonb WHERE source = $1 AND event_id = $2",
        envelope.source,
        ident,
        outcome,
        json.dumps(stored, default=str),
    )


async def _remember_many(conn: Conn, decided: Sequence[tuple[Envelope, str, Answer]]) -> None:
    """`_remember` for a round's answers (envelope, id, answer), in one statement."""
    if not decided:
        return
    stored = [json.dumps({"status": a.status, "reason": a.reason, "body": a.body}, default=str) for _, _, a in decided]
    await conn.execute(
        "UPDATE ingest_seen AS s SET outcome = d.outcome, answer = d.answer::jsonb"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS d(source, event_id, outcome, answer)"
        " WHERE s.source = d.source AND s.event_id = d.event_id",
        [envelope.source for envelope, _, _ in decided],
        [ident for _, ident, _ in decided],
        [answer.outcome for _, _, answer in decided],
        stored,
    )


async def stage(
    conn: Conn,
    data: EventData,
    *,
    topic: str,
    key: str,
    source: str,
    subject: str | None = None,
    event_id: uuid.UUID | None = None,
    payload: str | None = None,
) -> uuid.UUID:
    """An outbox row with an explicit topic and id (the outbox relay publishes it like any other)."""
    event_id = event_id or uuid.uuid4()
    traceparent, tracestate = current_traceparent()
    await conn.execute(
        "INSERT INTO outbox (event_id, topic, message_key, event_type, source, subject, tenant,"
        " payload, traceparent, tracestate) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)"
        " ON CONFLICT (event_id) DO NOTHING",
        event_id,
        topic,
        key,
        data.event_type,
        source,
        subject,
        tenant_of(data.federation_id, data.organisation_id),
        payload or data.model_dump_json(),
        traceparent,
        tracestate,
    )
    return event_id


# -- external ids ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    internal_id: str
    state: str
    updated_at: datetime
    organisation_id: str | None


async def subject_of(conn: Conn, source: str, kind: str, external_id: str) -> Subject | None:
    row = await conn.fetchrow(
        "SELECT internal_id, state, updated_at, organisation_id FROM ingest_subjects"
        " WHERE source = $1 AND kind = $2 AND external_id = $3 FOR UPDATE",
        source,
        kind,
        external_id,
    )
    if row is None:
        return None
    return Subject(row["internal_id"], row["state"], row["updated_at"], row["organisation_id"])


async def save_subject(conn: Conn, accepted: Accepted, kind: str, internal_id: str, state: str = "active") -> None:
    data = accepted.data
    await conn.execute(
        "INSERT INTO ingest_subjects (source, kind, external_id, internal_id, federation_id, organisation_id, state,"
        " updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (source, kind, external_id) DO UPDATE SET internal_id = EXCLUDED.internal_id,"
        " state = EXCLUDED.state, updated_at = EXCLUDED.updated_at",
        accepted.source,
        kind,
        data.external_id,
        internal_id,
        data.federation_id,
        data.organisation_id,
        state,
        data.updated_at,
    )


async def subjects_of(conn: Conn, source: str, kind: str, external_ids: Sequence[str]) -> dict[str, Subject]:
    """What each of these external ids of one source names here, in one statement (locked, as `subject_of`)."""
    rows = await conn.fetch(
        "SELECT external_id, internal_id, state, updated_at, organisation_id FROM ingest_subjects"
        " WHERE source = $1 AND kind = $2 AND external_id = ANY($3::text[]) ORDER BY external_id FOR UPDATE",
        source,
        kind,
        list(external_ids),
    )
    return {
        r["external_id"]: Subject(r["internal_id"], r["state"], r["updated_at"], r["organisation_id"]) for r in rows
    }


async def save_subjects(conn: Conn, saved: Sequence[tuple[Accepted, str]], kind: str, state: str = "active") -> None:
    """`save_subject` for many (accepted event, internal id) of distinct external ids, in one statement."""
    if not saved:
        return
    await conn.execute(
        "INSERT INTO ingest_subjects (source, kind, external_id, internal_id, federation_id, organisation_id, state,"
        " updated_at) SELECT source, $1, external_id, internal_id, federation_id, organisation_id, $2, updated_at"
        " FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])"
        " AS s(source, external_id, internal_id, federation_id, organisation_id, updated_at)"
        " ON CONFLICT (source, kind, external_id) DO UPDATE SET internal_id = EXCLUDED.internal_id,"
        " state = EXCLUDED.state, updated_at = EXCLUDED.updated_at",
        kind,
        state,
        [a.source for a, _ in saved],
        [a.data.external_id for a, _ in saved],
        [internal_id for _, internal_id in saved],
        [a.data.federation_id for a, _ in saved],
        [a.data.organisation_id for a, _ in saved],
        [a.data.updated_at for a, _ in saved],
    )


def check_fresh(subject: Subject, accepted: Accepted) -> None:
    """Refuse an update no newer than the last one applied for the same external id."""
    if accepted.data.updated_at <= subject.updated_at:
        raise Rejection.one(
            409,
            "stale",
            "data.updated_at",
            f"{accepted.data.updated_at.isoformat()} is not later than {subject.updated_at.astimezone(UTC).isoformat()}"
            f" already applied for external_id {accepted.data.external_id!r}: nothing changed",
        )


def unknown(kind: str, external_id: str, hint: str) -> Rejection:
    return Rejection.one(422, "not-found", "data.external_id", f"no {kind} {external_id!r} from this source: {hint}")
