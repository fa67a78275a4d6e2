"""Who gets asked: Pitch In and the two baselines, all ranking with the real domain code.

Each policy answers one question for the simulated week: given the needs that want offers
now, which donors (index rows) should each be offered? They share the index, the need
states and `rank`/`hard_filter`; they differ only in how they choose.

- `PitchIn` is one pass of `service._match`: the waiting needs as `storage.needs_waiting`
  selects them (escalation steps included), then the very functions `_match` calls
  (`planning.rank_waiting` and `planning.plan_pass`: ranking, escalation, fan-out, the global
  assignment, the newcomers' share), with each donor's spare asks counted as `service._spare`
  counts them from the tables (the load cap and the ask budget), and postponing the needs
  that found too few. Only the storage around them is in memory.
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

from pitchin_matching.domain.budget import WEEK_SECONDS, spare_asks
from pitchin_matching.domain.escalation import Escalation
from pitchin_matching.domain.needs import URGENCY_RANK, NeedState, offers_wanted
from pitchin_matching.domain.ranking import Ints, NeedQuery, Policy, asked_this_week, hard_filter, rank, slots_of
from pitchin_matching.index import DonorIndex
from pitchin_matching.planning import Waiting, plan_pass, rank_waiting

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
    escalation_stage: int = 0


class Chooser(Protocol):
    name: str
    policy: Policy
    rules: Escalation | None  # how its urgent needs escalate; None: they never do

    def choose(
        self, index: DonorIndex, needs: Sequence[NeedProgress], now: float, force: Sequence[str]
    ) -> list[tuple[NeedProgress, list[int]]]:
        """Rows to offer each need now."""
        ...


def waiting(
    needs: Sequence[NeedProgress],
    now: float,
    fan_out: dict[str, float],
    force: Sequence[str],
    more_per_step: float = 0.0,
) -> list[NeedProgress]:
    """`storage.needs_waiting` in memory: open needs with fewer offers in flight than their urgency
    (and escalation step) wants, most urgent and nearest deadline first; needs that found nobody
    wait unless forced."""
    forced = set(force)
    found = [
        p
        for p in needs
        if p.opened
        and not p.closed
        and p.need.deadline.timestamp() > now
        and (p.retry_after <= now or p.need.need_id in forced)
        and p.pending
        < math.ceil(
            max(p.need.donors_wanted - p.active_assignments, 0)
            * (fan_out.get(p.need.urgency, 1.0) + p.escalation_stage * more_per_step)
        )
    ]
    found.sort(key=lambda p: (-URGENCY_RANK.get(p.need.urgency, 0), p.need.deadline, p.need.need_id))
    return found[:MAX_NEEDS_PER_PASS]


def _exclude(progress: NeedProgress) -> Ints:
    return np.fromiter(progress.asked, dtype=np.int64, count=len(progress.asked))


def _query(index: DonorIndex, need: NeedState, policy: Policy) -> NeedQuery:
    return index.query(need, policy, slots_of(policy.collaboration_utc))


class PitchIn:
    """The real policy: fairness terms in the score, the cap and the ask budget, escalation, the
    global assignment and the newcomers' share, through the offer engine's own functions."""

    def __init__(self, policy: Policy, rules: Escalation | None = None, name: str = "Pitch In") -> None:
        self.policy = policy
        self.rules = rules
        self.name = name
        # The week's offers as `storage.offers_since` counts them: when, and whether to a newcomer.
        self._made: list[tuple[float, bool]] = []

    def choose(
        self, index: DonorIndex, needs: Sequence[NeedProgress], now: float, force: Sequence[str]
    ) -> list[tuple[NeedProgress, list[int]]]:
        policy = self.policy
        rules = self.rules or Escalation(at=())
        found_waiting = waiting(needs, now, dict(policy.fan_out), force, rules.more_per_step if self.rules else 0.0)
        by_id = {p.need.need_id: p for p in found_waiting}
        entries = [
            Waiting(
                p.need,
                p.active_assignments,
                p.pending,
                p.escalation_stage,
                [index.donor_at(r) for r in p.asked],
            )
            for p in found_waiting
        ]
        found = rank_waiting(index, entries, policy, rules, now)
        capacity = {donor: self._spare(index, donor, now) for donor in found.donors}
        week = [newcomer for at, newcomer in self._made if at > now - WEEK_SECONDS]
        plan = plan_pass(found, capacity, policy, (len(week), sum(week)), now)
        chosen: list[tuple[NeedProgress, list[int]]] = []
        for demand in found.demands:
            progress = by_id[demand.need_id]
            donors = plan[demand.need_id]
            rows = [r for d in donors if (r := index.row_of(d)) is not None]
            self._made += [(now, d in found.newcomers) for d in donors]
            if len(rows) < demand.places:
                progress.retry_after = now + RETRY_SECONDS
            chosen.append((progress, rows))
        return chosen

    def _spare(self, index: DonorIndex, donor: str, now: float) -> int:
        """`service._spare` on the simulation's exact index: the load cap, and the ask budget."""
        columns, policy = index.columns, self.policy
        row = index.row_of(donor)
        if row is None or not columns.active[row]:
            return 0
        spare = policy.max_open_per_donor - int(columns.load[row])
        if policy.ask_budget is not None and columns.pending is not None:
            asked = int(asked_this_week(columns, np.array([row]), now)[0])
            spare = min(spare, spare_asks(int(columns.pending[row]), asked, policy.ask_budget))
        return spare


class Greedy:
    """Best fit, need by need: each need's top candidates by fit, whoever else is asking them."""

    name = "greedy top-k"
    rules: Escalation | None = None

    def __init__(self, policy: Policy) -> None:
        fit_only = replace(policy.weights, load=0.0, recency=0.0, newcomer=0.0, history=0.0, spread=0.0)
        self.policy = replace(
            policy, weights=fit_only, max_open_per_donor=UNCAPPED, ask_budget=None, newcomer_share=0.0
        )

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
    rules: Escalation | None = None

    def __init__(self, policy: Policy) -> None:
        self.policy = replace(policy, max_open_per_donor=UNCAPPED, ask_budget=None, newcomer_share=0.0)

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
    uncapped = replace(policy, max_open_per_donor=UNCAPPED, ask_budget=None)
    return hard_filter(index.columns, _query(index, need, uncapped), uncapped)
