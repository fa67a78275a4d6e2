"""Signups' use cases, a module per aggregate: one function per command, one transaction each.

Callers import the aggregate they act on (`from pitchin_signups.service import donors`).
Every use case takes the unit of work first (`Transactions`): the service's `UnitOfWork`,
or, when ingest applies a publisher's event, the pipeline's open transaction, in which the
use case runs as a savepoint. Rules live in `domain/`; a use case loads, asks the domain,
stores and emits.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, TypeVar

from pitchin_core.auth import Caller
from pitchin_core.db import Conn
from pitchin_core.uow import Transactions

P = ParamSpec("P")
T = TypeVar("T")


def new_id(prefix: str) -> str:
    """A new id in signups' shape: the prefix, `_`, then 20 hex digits (`don_…`, `fgt_…`, `ned_…`, `bkg_…`)."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


async def visible_to(
    uow: Transactions,
    caller: Caller,
    listing: Callable[Concatenate[Conn, str, str | None, P], Awaitable[T]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """A storage listing (conn, federation, organisation, …) of what the caller may see.

    An organisation's key sees its own organisation's; a federation key (no organisation) the
    whole federation's.
    """
    async with uow(caller.tenant, readonly=True) as tx:
        return await listing(tx.conn, caller.federation_id, caller.organisation_id, *args, **kwargs)
