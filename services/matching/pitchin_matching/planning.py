"""One pass of the offer engine without its storage: which donors each waiting need is offered now.

`service._match` reads the waiting needs, the donors' spare asks and the week's offers from
PostgreSQL under the federation's lock, calls these two functions, and writes the offers;
the strike-week simulation (`simulation/`) calls the same two functions on its in-memory
week. So the ranking, the escalation step each need is at, the fan-out, the global
assignment and the newcomers' share are one code path in both.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pitchin_matching.domain.assignment import Demand, assign
from pitchin_matching.domain.escalation import Escalation, widened
from pitchin_matching.domain.needs import NeedState, offers_wanted
from pitchin_matching.domain.ranking import Component, Policy, explain, rank, slots_of
from pitchin_matching.domain.spread import keep_newcomers_share, newcomers_owed
from pitchin_matching.index import DonorIndex


@dataclass(frozen=True)
class Waiting:
    """A need waiting for offers, as `storage.needs_waiting` reads it."""

    need: NeedState
    active_assignments: int
    pending_offers: int
    escalation_stage: int = 0
    asked: Collection[str] = ()  # donors ever asked about it, whatever their answer


@dataclass(frozen=True)
class Choice:
    """How a candidate ranked for a need: what the explanation is built from."""

    row: int
    value: dict[str, float]
    query: Any
    policy: Policy


@dataclass
class Pass:
    """The needs that want offers now, each with its ranked candidates."""

    demands: list[Demand] = field(default_factory=list)
    needs: dict[str, NeedState] = field(default_factory=dict)
    choices: dict[tuple[str, str], Choice] = field(default_factory=dict)
    newcomers: set[str] = field(default_factory=set)

    @property
    def donors(self) -> list[str]:
        return sorted({donor for demand in self.demands for donor, _ in demand.candidates})

    def explain(self, index: DonorIndex, need_id: str, donor: str, now: float) -> list[Component]:
        choice = self.choices[(need_id, donor)]
        return explain(index.columns, choice.row, choice.value, choice.query, choice.policy, now)


def need_policy(policy: Policy, rules: Escalation, urgency: str, stage: int) -> Policy:
    """The policy a need ranks and fans out with: widened by its escalation step when it escalates."""
    return widened(policy, rules, urgency, stage) if rules.applies(urgency) else policy


def rank_waiting(
    index: DonorIndex,
    waiting: Sequence[Waiting],
    policy: Policy,
    rules: Escalation,
    now: float,
    unsure: Collection[str] = (),
) -> Pass:
    """Rank candidates for every need that wants offers now (the index caught up first).

    `unsure`: donors whose offers the running transaction answered (the index still counts
    those as pending); they are ranked whatever the index says of their load and budget.
    """
    unsure_rows = index.rows_of(unsure)
    collaboration = slots_of(policy.collaboration_utc)
    found = Pass()
    for w in waiting:
        need = w.need
        wider = need_policy(policy, rules, need.urgency, w.escalation_stage)
        places = offers_wanted(
            donors_wanted=need.donors_wanted,
            active_assignments=w.active_assignments,
            pending_offers=w.pending_offers,
            urgency=need.urgency,
            fan_out=dict(wider.fan_out),
        )
        if places == 0:
            continue
        found.needs[need.need_id] = need
        query = index.query(need, wider, collaboration)
        exclude = index.rows_of(w.asked)
        # A few more than the places: the global assignment may give some of them elsewhere;
        # and the best newcomers beyond those, for the newcomers' share.
        extra = places if policy.newcomer_share > 0 else 0
        ranking = rank(
            index.columns,
            query,
            wider,
            now,
            limit=places * 3 + 5,
            exclude=exclude,
            newcomers=extra,
            unsure=unsure_rows,
        )
        listed = []
        for i, r in enumerate(ranking.rows.tolist()):
            donor = index.donor_at(r)
            listed.append((donor, float(ranking.scores[i])))
            value = {k: float(v[i]) for k, v in ranking.values.items()}
            found.choices[(need.need_id, donor)] = Choice(r, value, query, wider)
            if value["newcomer"] > 0:
                found.newcomers.add(donor)
        found.demands.append(
            Demand(need.need_id, need.urgency, need.deadline.timestamp(), places, listed, w.active_assignments)
        )
    return found


def plan_pass(
    found: Pass, capacity: Mapping[str, int], policy: Policy, week_offers: tuple[int, int], now: float
) -> dict[str, list[str]]:
    """Who each need is offered: the global assignment within each donor's spare asks (`capacity`),
    then the newcomers' share kept over the week's offers so far (`week_offers`: all, to newcomers)."""
    plan = assign(found.demands, capacity, now)
    if policy.newcomer_share > 0:
        planned = [d for donors in plan.values() for d in donors]
        owed = newcomers_owed(
            policy.newcomer_share, *week_offers, len(planned), sum(d in found.newcomers for d in planned)
        )
        keep_newcomers_share(plan, found.demands, found.newcomers, capacity, owed)
    return plan
