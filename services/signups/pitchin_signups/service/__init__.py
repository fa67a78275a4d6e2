"""Signups' use cases, a module per aggregate: one function per command, one transaction each.

Callers import the aggregate they act on (`from pitchin_signups.service import donors`).
Every use case takes the unit of work first (`Transactions`): the service's `UnitOfWork`,
or, when ingest applies a publisher's event, the pipeline's open transaction, in which the
use case runs as a savepoint. Rules live in `domain/`; a use case loads, asks the domain,
stores and emits.
"""

from __future__ import annotations

import uuid


def new_id(prefix: str) -> str:
    """A new id in signups' shape: the prefix, `_`, then 20 hex digits (`don_…`, `fgt_…`, `ned_…`, `bkg_…`)."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"
