"""What a tenant sets: template overrides (an organisation's over its federation's over ours)
and a federation's channels (its SMTP server, SMS account, quiet hours, retries, digests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from pitchin_core import outbound
from pitchin_core.auth import Caller
from pitchin_core.errors import DomainError, FieldError, Forbidden, NotFound
from pitchin_core.outbound import Network
from pitchin_core.uow import Transactions
from pitchin_notifications import storage
from pitchin_notifications.service import PLATFORM_OPERATOR, require_federation_staff, require_manager
from pitchin_notifications.templates import OverBudget, Renderer


class TemplateDoesNotCompile(DomainError):
    """Override text the renderer cannot compile: refused before it is stored, so no message ever fails on it."""

    status = 422
    default_title = "Invalid request"


async def overrides(uow: Transactions, caller: Caller) -> list[asyncpg.Record]:
    """The federation's overrides, and the caller's organisation's."""
    async with uow(caller.tenant, readonly=True) as tx:
        return await storage.list_overrides(tx.conn, caller.federation_id, caller.organisation_id)


async def put_template(
    uow: Transactions, caller: Caller, renderer: Renderer, template: str, language: str, part: str, body: str
) -> None:
    """Override one part of a template for the caller's organisation (or, with a staff key, federation)."""
    require_manager(caller)
    try:
        renderer.check(part, body)
    except OverBudget as exc:
        raise TemplateDoesNotCompile(
            f"body: the template does not render within its budget: {exc}", errors=[FieldError("body", str(exc))]
        ) from exc
    except Exception as exc:
        raise TemplateDoesNotCompile(
            f"body: the template does not compile: {exc}", errors=[FieldError("body", str(exc))]
        ) from exc
    async with uow(caller.tenant) as tx:
        await storage.put_override(
            tx.conn, caller.federation_id, caller.organisation_id, template, language, part, body
        )


async def delete_template(uow: Transactions, caller: Caller, template: str, language: str, part: str) -> None:
    require_manager(caller)
    async with uow(caller.tenant) as tx:
        found = await storage.delete_override(
            tx.conn, caller.federation_id, caller.organisation_id, template, language, part
        )
    if not found:
        raise NotFound("override", f"{template}/{language}/{part}", detail="No such override.")


async def channels(uow: Transactions, caller: Caller) -> asyncpg.Record | None:
    """The caller's federation's channel settings; None when it set none (the service's defaults apply)."""
    async with uow(caller.tenant, readonly=True) as tx:
        return await storage.channel_config(tx.conn, caller.federation_id)


# Where a federation's mail and texts go: only the platform operator moves them (a tenant's
# server would receive the platform's SMS credentials, or let it probe the platform's network).
SERVER_FIELDS = ("smtp_host", "smtp_port", "sms_base_url")


async def put_channels(
    uow: Transactions, caller: Caller, values: dict[str, Any], *, allowed: Sequence[Network] = ()
) -> asyncpg.Record | None:
    """Replace the federation's channel settings (a None value: the service's default); the row stored.

    Federation staff set everything but the servers, which stay as they are (whether a staff
    PUT leaves them out or repeats them) unless a platform operator's key moves them; every
    server named passes the outbound guard first.
    """
    require_federation_staff(caller)
    if values.get("smtp_host"):
        await outbound.check_host(
            values["smtp_host"], values.get("smtp_port") or 25, field="smtp_host", allowed=allowed
        )
    if values.get("sms_base_url"):
        await outbound.check(values["sms_base_url"], field="sms_base_url", allowed=allowed, schemes=("https", "http"))
    async with uow(caller.tenant) as tx:
        current = await storage.channel_config(tx.conn, caller.federation_id)
        if caller.role != PLATFORM_OPERATOR:
            for name in SERVER_FIELDS:
                stored = current[name] if current is not None else None
                if values.get(name) is None:
                    values = {**values, name: stored}  # left out by staff: stays as the operator set it
                elif values[name] != stored:
                    raise Forbidden(f"{name}: only the platform operator may change where messages are sent from")
        await storage.put_channel_config(tx.conn, caller.federation_id, values)
        return await storage.channel_config(tx.conn, caller.federation_id)
