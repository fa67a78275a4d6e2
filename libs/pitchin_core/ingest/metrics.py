"""The one counter of what publishers sent, shared by both doors."""

from __future__ import annotations

from prometheus_client import Counter

from pitchin_core.telemetry import Metrics

_COUNTERS: dict[int, Counter] = {}


def ingest_counter(metrics: Metrics) -> Counter:
    """`pitchin_ingest_events_total{service,door,outcome,reason}`, once per registry.

    No source label: sources are registered systems, but an unregistered one is whatever a
    caller claims, and hundreds of member organisations' systems times outcomes times reasons
    would make the series explode. The source is in the logs and the rejection records.
    """
    counter = _COUNTERS.get(id(metrics.registry))
    if counter is None:
        counter = Counter(
            "pitchin_ingest_events",
            "Events published into Pitch In by other systems, by door, outcome and reason class.",
            ["service", "door", "outcome", "reason"],
            registry=metrics.registry,
        )
        _COUNTERS[id(metrics.registry)] = counter
    return counter
