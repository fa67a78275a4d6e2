"""The CloudEvents type registry: every event type by its CloudEvents `type` string.

Event data contracts are one pydantic model per CloudEvents type, in a module per domain,
versioned in the type name. Within v1 a model may only gain optional fields; anything
else is a new `.v2` type that runs beside v1 until every consumer has moved (README,
"Versioning").
"""

from __future__ import annotations

from types import ModuleType

from pitchin_core.contracts import bookings, donors, fights, ingest, keys, matching, privacy, publishers, scheduling
from pitchin_core.contracts.common import EventData

DOMAIN_MODULES: tuple[ModuleType, ...] = (
    donors,
    fights,
    bookings,
    matching,
    scheduling,
    ingest,
    publishers,
    keys,
    privacy,
)


def declared_in(module: ModuleType) -> tuple[type[EventData], ...]:
    """The event types a domain module declares: adding a model to the module is enough."""
    return tuple(
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, EventData)
        and value.__module__ == module.__name__
        and "event_type" in vars(value)
    )


EVENT_TYPES: dict[str, type[EventData]] = {
    model.event_type: model for module in DOMAIN_MODULES for model in declared_in(module)
}
