"""Scheduling's Kafka subscribers.

Scheduling owns events and their time and, until bookings and reminders arrive (issue 6),
learns nothing from other services' topics.
"""

from __future__ import annotations

from pitchin_core.runtime import Runtime


def register(runtime: Runtime) -> None:
    """No subscriptions yet; kept so every service is wired the same way."""
    del runtime
