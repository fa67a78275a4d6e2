"""Who gets asked: Pitch In and the two baselines, all ranking with the real domain code.

Each policy answers one question for the simulated week: given the needs that want offers
now, which donors (index rows) should each be offered? They share the index, the need
states and `rank`/`hard_filter`; they differ only in how they choose.

- `PitchIn` is one pass of `service._match` step by step: the waiting needs as
  `storage.needs_waiting` selects them, `offers_wanted`, `DonorIndex.query`, `rank` with the
  same limit and exclusions, capacity from the per-donor cap, `assign`, and postponing the
  needs that found too few. `_match` itself reads and writes PostgreSQL, so the simulation
  drives its steps in memory; the ranking, offer counts and assignment are the real functions.
- `Greedy` ranks by fit alone (no load, recency, newcomer or history terms, no cap) and
  lets each need take its own top candidates, as many as Pitch In's fan-out would ask.
- `Everyone` offers each need to every donor who fits, once, when it opens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from pitchin_matching.domain.assignment import Demand, assign
from pitchin_matching.domain.budget import spare_asks
from pitchin_matching.domain.needs import URGENCY_RANK, NeedState, offers_wanted
from pitchin_matching.domain.ranking import Ints, NeedQuery, Policy, hard_filter, rank, slots_of
from pitchin_matching.index import DonorIndex

# The service's `max_needs_per_pass` default.
MAX_NEEDS_PER_PASS = 200
# A need that found too few waits this long before the sweep retries it. The service waits
# `retry_seconds` (60 s) and sweeps every 30 s; the simulation's sweep is hourly.
RETRY_SECONDS = 3600.0
UNCAPPED = 1_000_000


@dataclass
class NeedProgress:
    """What matching knows of a need during the week: its offers and acceptances."""

    need: NeedState
    opened: bool = False
    closed: bool = False
    pending: int = 0
    active_assignments: int = 0
    asked: set[int] = field(default_factory=set)  # index rows offered this need, whatever the answer
    retry_after: float = 0.0


class Chooser(Protocol):
    name: str
    policy: Policy

    def choose(
        self, index: DonorIndex, needs: Sequence[NeedProgress], now: float, force: Sequence[str]
    ) -> list[tuple[NeedProgress, list[int]]]:
        """Rows to offer each need now."""
        ...


def waiting(
    needs: Sequence[NeedProgress], now: float, fan_out: dict[str, float], force: Sequence[str]
) -> list[NeedProgress]:
    """`storage.needs_waiting` in memory: open needs with fewer offers in flight than their urgency
    wants, most urgent and nearest deadline first; needs that found nobody wait unless forced."""
    forced = set(force)
    found = [
        p
        for p in needs
        if p.opened
        and not p.closed
        and p.need.deadline.timestamp() > now
        and (p.retry_after <= now or p.need.need_id in forced)
        and p.pending
        < math.ceil(max(p.need.donors_wanted - p.active_assignments, 0) * fan_out.get(p.need.urgency, 1.0))
    ]
    found.sort(key=lambda p: (-URGENCY_RANK.get(p.need.urgency, 0), p.need.deadline, p.need.need_id))
    return found[:MAX_NEEDS_PER_PASS]


def _exclude(progress: NeedProgress) -> Ints:
    return np.fromiter(progress.asked, dtype=np.int64, count=len(progress.asked))


def _query(index: DonorIndex, need: NeedState, policy: Policy) -> NeedQuery:
    return index.query(need, policy, slots_of(policy.collaboration_utc))


class PitchIn:
    """The real policy: fairness terms in the score, the per-donor cap, the global assignment."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.name = "Pitch In" if policy.ask_budget is None else "Pitch In + ask budget"

    def choose(
        self, index: DonorIndex, needs: Sequence[NeedProgress], now: float, force: Sequence[str]
    ) -> list[tuple[NeedProgress, list[int]]]:
        policy = self.policy
        fan_out = dict(policy.fan_out)
        demands: list[Demand] = []
        by_id: dict[str, NeedProgress] = {}
        for progress in waiting(needs, now, fan_out, force):
            need = progress.need
            places = offers_wanted(
                donors_wanted=need.donors_wanted,
                active_assignments=progress.active_assignments,
                pending_offers=progress.pending,
                urgency=need.urgency,
                fan_out=fan_out,
            )
            if places == 0:
                continue
            by_id[need.need_id] = progress
            query = _query(index, need, policy)
            ranking = rank(index.columns, query, policy, now, limit=places * 3 + 5, exclude=_exclude(progress))
            listed = [(str(r), float(s)) for r, s in zip(ranking.rows.tolist(), ranking.scores.tolist(), strict=True)]
            demands.append(Demand(need.need_id, need.urgency, need.deadline.timestamp(), places, listed))
        active = index.columns.active
        everyone = {int(d) for demand in demands for d, _ in demand.candidates}
        capacity = {str(r): self._spare(index, r) for r in everyone if active[r]}
        plan = assign(demands, capacity, now)
        chosen: list[tuple[NeedProgress, list[int]]] = []
        for demand in demands:
            progress = by_id[demand.need_id]
            rows = [int(d) for d in plan[demand.need_id]]
            if len(rows) < demand.places:
                progress.retry_after = now + RETRY_SECONDS
            chosen.append((progress, rows))
        return chosen

    def _spare(self, index: DonorIndex, row: int) -> int:
        """Offers a donor may still get now: the load cap, and the ask budget when there is one."""
        columns, policy = index.columns, self.policy
        spare = policy.max_open_per_donor - int(columns.load[row])
        if policy.ask_budget is not None and columns.pending is not None and columns.asked_this_week is not None:
            budget = spare_asks(int(columns.pending[row]), int(columns.asked_this_week[row]), policy.ask_budget)
            spare = min(spare, budget)
        return spare


class Greedy:
    """Best fit, need by need: each need's top candidates by fit, whoever else is asking them."""

    name = "greedy top-k"

    def __init__(self, policy: Policy) -> None:
        fit_only = replace(policy.weights, load=0.0, recency=0.0, newcomer=0.0, history=0.0)
        self.policy = replace(policy, weights=fit_only, max_open_per_donor=UNCAPPED)

    def choose(
        self, index: DonorIndex, needs: Sequence[NeedProgress], now: float, force: Sequence[str]
    ) -> list[tuple[NeedProgress, list[int]]]:
        fan_out = dict(self.policy.fan_out)
        chosen: list[tuple[NeedProgress, list[int]]] = []
        for progress in waiting(needs, now, fan_out, force):
            need = progress.need
            k = offers_wanted(
                donors_wanted=need.donors_wanted,
                active_assignments=progress.active_assignments,
                pending_offers=progress.pending,
                urgency=need.urgency,
                fan_out=fan_out,
            )
            if k == 0:
                continue
            query = _query(index, need, self.policy)
            ranking = rank(index.columns, query, self.policy, now, limit=k, exclude=_exclude(progress))
            if ranking.rows.size < k:
                progress.retry_after = now + RETRY_SECONDS
            chosen.append((progress, ranking.rows.tolist()))
        return chosen


class Everyone:
    """Broadcast: a need is offered to every donor who fits as soon as it opens."""

    name = "everyone who fits"

    def __init__(self, policy: Policy) -> None:
        self.policy = replace(policy, max_open_per_donor=UNCAPPED)

    def choose(
        self, index: DonorIndex, needs: Sequence[NeedProgress], now: float, force: Sequence[str]
    ) -> list[tuple[NeedProgress, list[int]]]:
        chosen: list[tuple[NeedProgress, list[int]]] = []
        for progress in needs:
            if progress.need.need_id in force and progress.opened and not progress.asked and not progress.closed:
                query = _query(index, progress.need, self.policy)
                chosen.append((progress, hard_filter(index.columns, query, self.policy).tolist()))
        return chosen


def fitting(index: DonorIndex, need: NeedState, policy: Policy) -> Ints:
    """Every donor who could be asked for a need, however busy: the pool the spread is measured over."""
    uncapped = replace(policy, max_open_per_donor=UNCAPPED)
    return hard_filter(index.columns, _query(index, need, uncapped), uncapped)
