"""What a tenant sets: template overrides (an organisation's over its federation's over ours)
and a federation's channels (its SMTP server, SMS account, quiet hours, retries, digests)."""

from __future__ import annotations

from typing import Any

import asyncpg

from pitchin_core.auth import Caller
from pitchin_core.errors import DomainError, FieldError, NotFound
from pitchin_core.uow import Transactions
from pitchin_notifications import storage
from pitchin_notifications.service import require_federation_staff, require_manager
from pitchin_notifications.templates import Renderer


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


async def put_channels(uow: Transactions, caller: Caller, values: dict[str, Any]) -> asyncpg.Record | None:
    """Replace the federation's channel settings (a None value: the service's default); the row stored."""
    require_federation_staff(caller)
    async with uow(caller.tenant) as tx:
        await storage.put_channel_config(tx.conn, caller.federation_id, values)
        return await storage.channel_config(tx.conn, caller.federation_id)
