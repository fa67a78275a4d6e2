"""A strike week in memory: the real ranking and assignment against simulated donors (`make simulate`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from pitchin_matching.domain.escalation import Escalation
from pitchin_matching.domain.policy import PolicyDocument
from pitchin_matching.domain.ranking import Policy
from pitchin_matching.simulation.metrics import Metrics, measure, table
from pitchin_matching.simulation.model import WEEK_START, generate
from pitchin_matching.simulation.policies import Chooser, Everyone, Greedy, PitchIn
from pitchin_matching.simulation.week import Outcome, run

# Where each policy's week is in a `Comparison`: the two baselines, Pitch In as the service runs
# it, and Pitch In without the ask budget, the newcomers' share and escalation (as it ran before).
EVERYONE, GREEDY, PITCH_IN, UNBUDGETED = range(4)


@dataclass(frozen=True)
class Comparison:
    names: tuple[str, ...]
    outcomes: tuple[Outcome, ...]
    metrics: tuple[Metrics, ...]
    seconds: tuple[float, ...]

    def table(self) -> str:
        return table(self.names, self.metrics, judged=(PITCH_IN,), greedy=GREEDY)


def default_policy() -> Policy:
    """The policy a federation gets when it sets none, as the service reads it."""
    return PolicyDocument().to_policy(WEEK_START)


def default_rules() -> Escalation:
    """The escalation rules a federation gets when it sets none."""
    return PolicyDocument().escalation.to_rules()


def compare(
    seed: int,
    *,
    donors: int,
    needs: int,
    critical: int,
    policy: Policy | None = None,
    rules: Escalation | None = None,
) -> Comparison:
    """The policies on the same generated week: everyone who fits, greedy, Pitch In as the service
    runs it, and Pitch In without the ask budget, the newcomers' share, the spreading term and
    escalation (the engine before they were wired in), to show what they change."""
    policy = policy or default_policy()
    rules = rules or default_rules()
    unbudgeted = replace(policy, ask_budget=None, newcomer_share=0.0, weights=replace(policy.weights, spread=0.0))
    world = generate(seed, donors=donors, needs=needs, critical=critical)
    outcomes: list[Outcome] = []
    seconds: list[float] = []
    choosers: tuple[Chooser, ...] = (
        Everyone(policy),
        Greedy(policy),
        PitchIn(policy, rules),
        PitchIn(unbudgeted, None, "Pitch In, no budget or escalation"),
    )
    for chooser in choosers:
        started = time.perf_counter()
        outcomes.append(run(world, chooser, policy))
        seconds.append(time.perf_counter() - started)
    return Comparison(
        names=tuple(o.policy for o in outcomes),
        outcomes=tuple(outcomes),
        metrics=tuple(measure(o) for o in outcomes),
        seconds=tuple(seconds),
    )
