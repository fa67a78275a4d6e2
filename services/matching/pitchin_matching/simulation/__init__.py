"""A strike week in memory: the real ranking and assignment against simulated donors (`make simulate`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from pitchin_matching.domain.budget import AskBudget
from pitchin_matching.domain.policy import PolicyDocument
from pitchin_matching.domain.ranking import Policy
from pitchin_matching.simulation.metrics import Metrics, measure, table
from pitchin_matching.simulation.model import WEEK_START, generate
from pitchin_matching.simulation.policies import Everyone, Greedy, PitchIn
from pitchin_matching.simulation.week import Outcome, run

# Where each policy's week is in a `Comparison`.
EVERYONE, GREEDY, PITCH_IN, BUDGETED = range(4)


@dataclass(frozen=True)
class Comparison:
    names: tuple[str, ...]
    outcomes: tuple[Outcome, ...]
    metrics: tuple[Metrics, ...]
    seconds: tuple[float, ...]

    def table(self) -> str:
        return table(self.names, self.metrics, judged=(PITCH_IN, BUDGETED), greedy=GREEDY)


def default_policy() -> Policy:
    """The policy a federation gets when it sets none, as the service reads it."""
    return PolicyDocument().to_policy(WEEK_START)


def compare(seed: int, *, donors: int, needs: int, critical: int, policy: Policy | None = None) -> Comparison:
    """The policies on the same generated week: everyone who fits, greedy, Pitch In as the service runs
    it today, and Pitch In with the per-donor ask budget (`domain.budget`, not yet in the service)."""
    policy = policy or default_policy()
    budgeted = replace(policy, ask_budget=policy.ask_budget or AskBudget())
    world = generate(seed, donors=donors, needs=needs, critical=critical)
    outcomes: list[Outcome] = []
    seconds: list[float] = []
    for chooser in (Everyone(policy), Greedy(policy), PitchIn(policy), PitchIn(budgeted)):
        started = time.perf_counter()
        outcomes.append(run(world, chooser, policy))
        seconds.append(time.perf_counter() - started)
    return Comparison(
        names=tuple(o.policy for o in outcomes),
        outcomes=tuple(outcomes),
        metrics=tuple(measure(o) for o in outcomes),
        seconds=tuple(seconds),
    )
