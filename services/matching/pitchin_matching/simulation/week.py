"""The simulated clock: a week of needs opening, offers answered, expiring and cancelled.

Events run in time order from one heap. Matching is asked for offers when the service
would be: a need opens, an offer is declined or expires (that need forced), and on the
clock's sweep (hourly here), and when an urgent need's escalation step falls due (as the
offer clock takes `service.escalate_due`). An ask ages out of the donor's weekly count seven
days after it was made (the index keeps ask times, as the service's does). An acceptance
that fills a need stands the others down at once (their offers are cancelled), as
`service.accept_offer` does. The donor index's
load, last-asked, completed and declined columns are kept as `follow.IndexFollower` would
keep them from the tables.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from pitchin_matching.domain.budget import note_ask
from pitchin_matching.domain.escalation import next_step_at
from pitchin_matching.domain.ranking import Policy
from pitchin_matching.index import DonorIndex, DonorStats
from pitchin_matching.simulation.model import HOUR, World, acceptance_chance, decline_reason, true_fit
from pitchin_matching.simulation.policies import Chooser, NeedProgress, fitting

SWEEP_SECONDS = HOUR

# Event kinds, in the order they run when they fall at the same second.
DEADLINE, ANSWER, EXPIRE, OPEN, SWEEP, ESCALATE = range(6)


@dataclass
class Offer:
    need: int  # index into World.needs
    row: int  # donor row in the index
    made_at: float
    status: str = "pending"
    answered_at: float | None = None
    reason: str | None = None


@dataclass
class Outcome:
    """Everything the metrics read, for one policy's week."""

    policy: str
    world: World
    offers: list[Offer]
    accepted_at: list[list[float]]  # per need: times of the acceptances that took a place
    redundant: int  # yeses that came after the places were taken (the offer already cancelled)
    eligible: np.ndarray  # donor rows that fit at least one need
    pools: list[int]  # per need: donors who fit it at all (the most places it could fill)
    drifted: int  # donors who stopped answering, asked too often
    max_load: int  # most open offers + active assignments any donor held at once
    max_pending: int  # most offers any donor had waiting for their answer at once
    passes: int
    reasons: dict[str, int] = field(default_factory=dict)


def _time(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def build_index(world: World) -> DonorIndex:
    index = DonorIndex(capacity=len(world.donors))
    for donor, at in zip(world.donors, world.registered_at, strict=True):
        index.upsert(donor, at, DonorStats())
    return index


def run(world: World, chooser: Chooser, policy: Policy) -> Outcome:
    """One week under `chooser`; `policy` gives the offer expiry and the pool the spread is measured over."""
    index = build_index(world)
    columns = index.columns
    assert columns.pending is not None and columns.recent_asks is not None
    pending, recent_asks = columns.pending, columns.recent_asks
    rng = np.random.default_rng(world.seed + 1)  # the same draws for every policy's week
    progress = [NeedProgress(need=n.need) for n in world.needs]
    position = {n.need.need_id: i for i, n in enumerate(world.needs)}
    pools = [fitting(index, n.need, policy) for n in world.needs]
    eligible = np.unique(np.concatenate(pools))
    offers: list[Offer] = []
    pending_of: list[set[int]] = [set() for _ in world.needs]
    accepted_at: list[list[float]] = [[] for _ in world.needs]
    assigned_rows: list[list[int]] = [[] for _ in world.needs]
    asks = np.zeros(len(world.donors), dtype=np.int32)
    commitments = np.zeros(len(world.donors), dtype=np.int32)
    drifted = np.zeros(len(world.donors), dtype=np.bool_)
    reasons: dict[str, int] = {}
    redundant = 0
    max_load = 0
    max_pending = 0
    passes = 0
    heap: list[tuple[float, int, int, int]] = []
    sequence = 0
    started: dict[int, float] = {}  # per escalating need: when matching learnt it

    def schedule(at: float, kind: int, subject: int) -> None:
        nonlocal sequence
        sequence += 1
        heapq.heappush(heap, (at, kind, sequence, subject))

    for i, opened in enumerate(world.needs):
        schedule(opened.opened_at, OPEN, i)
        schedule(opened.need.deadline.timestamp(), DEADLINE, i)
    at = world.start
    while at < world.end:
        schedule(at, SWEEP, -1)
        at += SWEEP_SECONDS

    def match(now: float, force: list[str]) -> None:
        nonlocal max_load, max_pending, passes
        passes += 1
        for need_progress, rows in chooser.choose(index, progress, now, force):
            i = position[need_progress.need.need_id]
            for row in rows:
                make_offer(i, row, now)
            if rows:
                max_load = max(max_load, int(columns.load[rows].max()))
                max_pending = max(max_pending, int(pending[rows].max()))

    def retry_all() -> None:
        for p in progress:
            p.retry_after = 0.0

    def make_offer(i: int, row: int, now: float) -> None:
        offer_id = len(offers)
        offers.append(Offer(need=i, row=row, made_at=now))
        progress[i].asked.add(row)
        progress[i].pending += 1
        pending_of[i].add(offer_id)
        columns.load[row] += 1
        columns.last_asked[row] = now
        asks[row] += 1
        pending[row] += 1
        note_ask(recent_asks[row], now)
        responder = world.responders[row]
        schedule(now + policy.offer_ttl_seconds, EXPIRE, offer_id)
        if rng.random() < responder.p_answer:
            delay = rng.lognormal(np.log(responder.delay_hours), 0.6) * HOUR
            if delay < policy.offer_ttl_seconds:
                schedule(now + delay, ANSWER, offer_id)

    def close_offer(offer_id: int, status: str, now: float, reason: str | None = None) -> None:
        offer = offers[offer_id]
        offer.status, offer.answered_at, offer.reason = status, now, reason
        progress[offer.need].pending -= 1
        pending_of[offer.need].discard(offer_id)
        columns.load[offer.row] -= 1
        pending[offer.row] -= 1
        if status in ("declined", "expired"):
            columns.declined[offer.row] += 1

    def answer(offer_id: int, now: float) -> None:
        nonlocal redundant
        offer = offers[offer_id]
        row, i = offer.row, offer.need
        if drifted[row] or asks[row] > world.responders[row].tolerance:
            drifted[row] = True  # asked too often this week: they stop reading the emails
            return
        need = world.needs[i].need
        parts = true_fit(world.donors[row], need)
        fit = float(np.mean(list(parts.values())))
        yes = rng.random() < acceptance_chance(world.responders[row], fit, int(commitments[row]), int(asks[row]))
        if offer.status != "pending":
            redundant += int(yes and offer.status == "cancelled")
            return
        if yes:
            close_offer(offer_id, "accepted", now)
            accepted_at[i].append(now)
            assigned_rows[i].append(row)
            progress[i].active_assignments += 1
            commitments[row] += 1
            columns.load[row] += 1  # the assignment holds the place the offer held
            if progress[i].active_assignments >= need.donors_wanted:
                for other in sorted(pending_of[i]):
                    close_offer(other, "cancelled", now, "the need is filled")
        else:
            reason = decline_reason(parts, int(commitments[row]))
            reasons[reason] = reasons.get(reason, 0) + 1
            close_offer(offer_id, "declined", now, reason)
            retry_all()  # as `service.decline_offer`: the donor's budget has room again
            match(now, [need.need_id])

    while heap:
        now, kind, _, subject = heapq.heappop(heap)
        if kind == OPEN:
            progress[subject].opened = True
            need = world.needs[subject].need
            if chooser.rules is not None and chooser.rules.applies(need.urgency):
                started[subject] = now
                step_at = next_step_at(chooser.rules, _time(now), need.deadline, 0)
                if step_at is not None:
                    schedule(step_at.timestamp(), ESCALATE, subject)
            match(now, [need.need_id])
        elif kind == ESCALATE:
            p, need = progress[subject], world.needs[subject].need
            if p.closed or p.active_assignments >= need.donors_wanted or chooser.rules is None:
                continue  # filled (stood down) or past its deadline: no further step
            p.escalation_stage += 1
            p.retry_after = 0.0
            step_at = next_step_at(chooser.rules, _time(started[subject]), need.deadline, p.escalation_stage)
            if step_at is not None:
                schedule(step_at.timestamp(), ESCALATE, subject)
            match(now, [need.need_id])
        elif kind == ANSWER:
            answer(subject, now)
        elif kind == EXPIRE:
            if offers[subject].status == "pending":
                close_offer(subject, "expired", now)
                retry_all()
                match(now, [world.needs[offers[subject].need].need.need_id])
        elif kind == DEADLINE:
            progress[subject].closed = True
            for other in sorted(pending_of[subject]):
                close_offer(other, "cancelled", now, "the deadline passed")
            for row in assigned_rows[subject]:  # the work is done: the donor is free again
                commitments[row] -= 1
                columns.load[row] -= 1
                columns.completed[row] += 1
        elif kind == SWEEP:
            match(now, [])
    return Outcome(
        policy=chooser.name,
        world=world,
        offers=offers,
        accepted_at=accepted_at,
        redundant=redundant,
        eligible=eligible,
        pools=[int(p.size) for p in pools],
        drifted=int(drifted.sum()),
        max_load=max_load,
        max_pending=max_pending,
        passes=passes,
        reasons=reasons,
    )
