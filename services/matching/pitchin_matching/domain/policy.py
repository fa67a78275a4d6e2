"""A federation's matching policy as it is stored and edited: validated, with defaults."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pitchin_core.contracts.common import TimeZoneName, Weekday, WeeklyWindow
from pitchin_matching.domain.budget import RECENT_ASKS, AskBudget
from pitchin_matching.domain.donors import windows_in_utc
from pitchin_matching.domain.escalation import Escalation
from pitchin_matching.domain.ranking import Policy, Weights

_WORKDAYS = (Weekday.mon, Weekday.tue, Weekday.wed, Weekday.thu, Weekday.fri)


class CollaborationHours(BaseModel):
    """When the organisations work, for the time-window overlap of remote donors."""

    model_config = ConfigDict(extra="forbid")
    time_zone: TimeZoneName = "Europe/London"
    windows: list[WeeklyWindow] = Field(
        default_factory=lambda: [WeeklyWindow(day=day, start="09:00", end="17:00") for day in _WORKDAYS],
        max_length=50,
    )


UrgencyName = Literal["critical", "high", "normal"]


def _critical_only() -> list[UrgencyName]:
    return ["critical"]


class EscalationRules(BaseModel):
    """How an urgent need's ask widens as its deadline nears (`domain.escalation`)."""

    model_config = ConfigDict(extra="forbid")
    urgencies: list[UrgencyName] = Field(default_factory=_critical_only, max_length=3)
    at: list[float] = Field(
        default_factory=lambda: [0.01, 0.03, 0.08, 0.2],
        max_length=10,
        description="Fractions of the time from learning the need to its deadline at which the ask widens",
    )
    more_per_step: float = Field(default=1.0, ge=0, le=10, description="Offers in flight per free place added")
    reach_per_step: float = Field(default=1.5, ge=1, le=10, description="Factor on the on-site reach per step")

    @field_validator("at")
    @classmethod
    def _increasing_fractions(cls, at: list[float]) -> list[float]:
        if any(not 0 < a < 1 for a in at) or at != sorted(set(at)):
            raise ValueError("steps are increasing fractions strictly between 0 and 1")
        return at

    def to_rules(self) -> Escalation:
        return Escalation(frozenset(self.urgencies), tuple(self.at), self.more_per_step, self.reach_per_step)


class PolicyDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weights: dict[str, float] = Field(
        default_factory=dict, max_length=32, description="Overrides of the default weights by name"
    )
    max_open_per_donor: int = Field(default=2, ge=1, le=20)
    max_pending_per_donor: int = Field(
        default=1, ge=1, le=20, description="Offers one donor may have waiting for their answer at once"
    )
    weekly_asks: int = Field(
        default=3, ge=1, le=RECENT_ASKS, description="Offers one donor may be made in any seven days"
    )
    newcomer_share: float = Field(
        default=0.3, ge=0, le=1, description="Share of a week's offers kept for newcomers when any fit"
    )
    escalation: EscalationRules = Field(default_factory=EscalationRules)
    offer_ttl_seconds: int = Field(default=48 * 3600, ge=1, le=60 * 24 * 3600)
    fan_out: dict[str, float] = Field(
        default_factory=lambda: {"critical": 3.0, "high": 2.0, "normal": 1.0}, max_length=8
    )
    max_distance_km: float = Field(default=50.0, gt=0, le=20_000)
    recency_days: float = Field(default=14.0, gt=0)
    newcomer_days: float = Field(default=30.0, gt=0)
    overlap_target_hours: float = Field(default=3.0, gt=0)
    collaboration: CollaborationHours | None = Field(default_factory=CollaborationHours)

    @field_validator("weights")
    @classmethod
    def _known_weights(cls, weights: dict[str, float]) -> dict[str, float]:
        Weights().with_overrides(weights)
        return weights

    @field_validator("fan_out")
    @classmethod
    def _known_urgencies(cls, fan_out: dict[str, float]) -> dict[str, float]:
        unknown = set(fan_out) - {"critical", "high", "normal"}
        if unknown:
            raise ValueError(f"unknown urgency: {', '.join(sorted(unknown))}")
        if any(not 0 < v <= 10 for v in fan_out.values()):
            raise ValueError("fan-out must be above 0 and at most 10")
        return fan_out

    def to_policy(self, at: datetime) -> Policy:
        collaboration = (
            windows_in_utc(self.collaboration.windows, self.collaboration.time_zone, at) if self.collaboration else ()
        )
        return Policy(
            weights=Weights().with_overrides(self.weights),
            max_open_per_donor=self.max_open_per_donor,
            offer_ttl_seconds=self.offer_ttl_seconds,
            fan_out={"critical": 3.0, "high": 2.0, "normal": 1.0, **self.fan_out},
            max_distance_km=self.max_distance_km,
            recency_days=self.recency_days,
            newcomer_days=self.newcomer_days,
            overlap_target_hours=self.overlap_target_hours,
            collaboration_utc=collaboration,
            ask_budget=AskBudget(max_pending=self.max_pending_per_donor, weekly_asks=self.weekly_asks),
            newcomer_share=self.newcomer_share,
        )
