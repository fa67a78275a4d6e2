"""Registered publishing systems: produced by signups on pitchin.publishers.v1, keyed by source.

Federation staff register and revoke publishers (docs/ingest.md) through signups' HTTP API;
every other service that decides published events (scheduling, for its event types) keeps
its own copy of the registrations from these facts. They carry the publisher's scope, never
its credentials: only signups' HTTP door checks keys and signatures.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field

from pitchin_core.contracts.common import EventData, Identifier

TOPIC = "pitchin.publishers.v1"
RESERVED_SOURCE_PREFIX = "/pitchin/"

# A CloudEvents `source` is a URI-reference (RFC 3986). Pitch In takes the two forms that name
# a system unambiguously: an absolute path (`/crm/unite-west-midlands`) or an absolute URI
# (`https://crm.example/unite`, `urn:…`), in URI characters only (percent-encode the rest).
_URI_CHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?#\[\]]|%[0-9A-Fa-f]{2})"
_SOURCE = re.compile(rf"^(?:[A-Za-z][A-Za-z0-9+.\-]*:|/){_URI_CHAR}+$")


def _check_source(source: str) -> str:
    if not _SOURCE.match(source):
        raise ValueError(
            "not a URI-reference of the form /<system>/<name> (e.g. /crm/unite-west-midlands) or an absolute URI:"
            " URI characters only, no spaces"
        )
    if source.startswith(RESERVED_SOURCE_PREFIX):
        raise ValueError(f"sources under {RESERVED_SOURCE_PREFIX} are Pitch In's own services'")
    return source


# What the staff API accepts as a new source (the facts below carry whatever was registered).
Source = Annotated[
    str,
    Field(min_length=2, max_length=255, examples=["/crm/unite-west-midlands"]),
    AfterValidator(_check_source),
]


class PublisherRegisteredV1(EventData):
    """A publisher was registered, or re-registered with new credentials and this scope (replacing the old)."""

    event_type: ClassVar[str] = "org.pitchin.publisher.registered.v1"
    source: str = Field(min_length=1, max_length=500, description="The publisher's CloudEvents source")
    label: str = Field(default="", max_length=200)
    organisations: list[Identifier] = Field(
        default_factory=list, max_length=10_000, description="Member organisations it publishes for"
    )
    any_organisation: bool = False
    rate_per_second: float = Field(gt=0)
    burst: int = Field(ge=1)
    registered_at: datetime


class PublisherRevokedV1(EventData):
    """A publisher's registration was revoked: its events are refused as `unregistered-source`."""

    event_type: ClassVar[str] = "org.pitchin.publisher.revoked.v1"
    source: str = Field(min_length=1, max_length=500)
    revoked_at: datetime
