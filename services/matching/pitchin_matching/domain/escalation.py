"""Escalation of an urgent need: ask the best-fit few first, widen the ask as its deadline nears.

After staged alerting in responder apps (GoodSAM): a first wave of the best placed few (the
need's fan-out per free place); each decline or expiry replaced at once (the offer engine
re-matches the need in the same transaction as the answer); and at set fractions of the
time between matching learning the need and its deadline, one more step: nice-to-have
skills no longer count (a donor without them ranks as one with them), the reach for an
on-site need widens, and more offers are in flight at once. The places filled, the others
are stood down (their offers cancelled, the donors thanked by mail).

Pure: times and policies in, times and policies out. The step's timer is a column of the
need (`escalate_at`), claimed by the offer clock like an offer's expiry.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from pitchin_matching.domain.ranking import Policy


@dataclass(frozen=True)
class Escalation:
    """A federation's escalation rules (defaults: critical needs, three steps)."""

    urgencies: frozenset[str] = field(default_factory=lambda: frozenset({"critical"}))
    # Fractions of the time from learning the need to its deadline at which each step is taken.
    at: tuple[float, ...] = (0.01, 0.03, 0.08, 0.2)
    # Offers in flight per free place added at each step.
    more_per_step: float = 1.0
    # The reach of an on-site need is multiplied by this at each step.
    reach_per_step: float = 1.5

    def __post_init__(self) -> None:
        if any(not 0 < a < 1 for a in self.at) or list(self.at) != sorted(set(self.at)):
            raise ValueError("escalation steps are increasing fractions strictly between 0 and 1")

    def applies(self, urgency: str) -> bool:
        return urgency in self.urgencies and bool(self.at)


def next_step_at(rules: Escalation, start: datetime, deadline: datetime, stage: int) -> datetime | None:
    """When a need at `stage` takes its next step; None when it has taken them all."""
    if stage >= len(rules.at) or deadline <= start:
        return None
    return start + (deadline - start) * rules.at[stage]


def widened(policy: Policy, rules: Escalation, urgency: str, stage: int) -> Policy:
    """The policy a need ranks and fans out with at `stage` (0: the first wave, as the policy says)."""
    if stage <= 0:
        return policy
    fan_out = {**policy.fan_out, urgency: policy.fan_out.get(urgency, 1.0) + rules.more_per_step * stage}
    return replace(
        policy,
        weights=replace(policy.weights, nice_to_have=0.0),
        fan_out=fan_out,
        max_distance_km=policy.max_distance_km * rules.reach_per_step**stage,
    )


def describe(policy: Policy, rules: Escalation, urgency: str, stage: int) -> str:
    """What a step did, in an organiser's words."""
    wider = widened(policy, rules, urgency, stage)
    return (
        f"step {stage}: nice-to-have skills no longer count, reach {wider.max_distance_km:.0f} km,"
        f" {wider.fan_out[urgency]:g} offers at once per free place"
    )
