"""Notifications' HTTP routes: the delivery log and dead letters, re-sending, webhook
subscriptions, template overrides, a federation's channel settings, one-click unsubscribe.

Routes parse and answer; the use cases in `service/` refuse with domain errors, which
pitchin_core.http answers as problem+json."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

import asyncpg
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pitchin_core.auth import CallerDep, checks_credential
from pitchin_core.http import Problem
from pitchin_core.uow import UnitOfWork
from pitchin_notifications.domain.messages import RULES
from pitchin_notifications.domain.quiet_hours import QuietHours
from pitchin_notifications.service import configuration, deliveries, subscriptions
from pitchin_notifications.service.messages import Notifications
from pitchin_notifications.storage import LogFilter
from pitchin_notifications.templates import PARTS

router = APIRouter(prefix="/v1")

Status = Literal["pending", "held", "sent", "dead", "digested", "suppressed"]
ChannelName = Literal["email", "sms", "webhook"]
Part = Literal["subject", "text", "html", "sms"]


def _uow(request: Request) -> UnitOfWork:
    uow: UnitOfWork = request.app.state.runtime.uow
    return uow


def _service(request: Request) -> Notifications:
    service: Notifications = request.app.state.notifications
    return service


def _row(record: asyncpg.Record) -> dict[str, Any]:
    return {k: v for k, v in dict(record).items() if k not in ("secret", "sms_auth_token")}


# -- delivery log ---------------------------------------------------------------------------


@router.get("/deliveries", tags=["deliveries"])
async def delivery_log(
    caller: CallerDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[datetime | None, Query(description="Cursor: created_at of the last row seen")] = None,
    status: Status | None = None,
    channel: ChannelName | None = None,
    event_type: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    only = LogFilter(status=status, channel=channel, event_type=event_type, event_id=event_id)
    items = await deliveries.log(_uow(request), caller, limit, before, only)
    next_cursor = items[-1]["created_at"].isoformat() if len(items) == limit else None
    return {"items": items, "next": next_cursor}


@router.get("/deliveries/{delivery_id}", tags=["deliveries"])
async def one_delivery(caller: CallerDep, request: Request, delivery_id: uuid.UUID) -> dict[str, Any]:
    return await deliveries.one(_uow(request), caller, delivery_id)


@router.post("/deliveries/{delivery_id}/resend", status_code=202, tags=["deliveries"])
async def resend_delivery(caller: CallerDep, request: Request, delivery_id: uuid.UUID) -> dict[str, Any]:
    previous = await deliveries.resend(_uow(request), caller, delivery_id)
    return {"delivery_id": str(delivery_id), "status": "pending", "was": previous}


@router.get("/dead-letters", tags=["deliveries"])
async def dead_letters(
    caller: CallerDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: datetime | None = None,
) -> dict[str, Any]:
    return {"items": await deliveries.dead_letters(_uow(request), caller, limit, before)}


@router.get("/rules", tags=["deliveries"])
async def rules() -> dict[str, Any]:
    """The event → message table this service runs."""
    return {
        "items": [
            {
                "event_type": r.event_type,
                "template": r.template,
                "audience": r.audience.value,
                "channels": [c.value for c in r.channels],
                "priority": r.priority.name,
                "action": r.action,
                "purpose": r.purpose,
                "send_by": r.send_by,
            }
            for r in RULES
        ]
    }


# -- webhooks ---------------------------------------------------------------------------


class NewSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2000)
    event_types: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=100, examples=[["org.pitchin.booking.*"]]
    )
    description: str = Field(default="", max_length=500)
    disable_after: int | None = Field(
        default=None, ge=1, le=1000, description="Disable after this many deliveries in a row were given up on"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http or https URL")
        return url


@router.post("/webhooks", status_code=201, tags=["webhooks"])
async def create_webhook(caller: CallerDep, request: Request, body: NewSubscription) -> dict[str, Any]:
    row = await subscriptions.create(
        _uow(request),
        caller,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        disable_after=body.disable_after or _service(request).policy.webhook_disable_after,
        allowed=request.app.state.outbound_allow,
    )
    # The secret is shown once, here; receivers verify webhook-signature with it.
    return {**_row(row), "secret": row["secret"]}


@router.get("/webhooks", tags=["webhooks"])
async def list_webhooks(caller: CallerDep, request: Request) -> dict[str, Any]:
    return {"items": [_row(r) for r in await subscriptions.of_caller(_uow(request), caller)]}


@router.get("/webhooks/{subscription_id}", tags=["webhooks"])
async def get_webhook(caller: CallerDep, request: Request, subscription_id: uuid.UUID) -> dict[str, Any]:
    return _row(await subscriptions.one(_uow(request), caller, subscription_id))


@router.delete("/webhooks/{subscription_id}", status_code=204, tags=["webhooks"])
async def delete_webhook(caller: CallerDep, request: Request, subscription_id: uuid.UUID) -> Response:
    await subscriptions.delete(_uow(request), caller, subscription_id)
    return Response(status_code=204)


@router.post("/webhooks/{subscription_id}/enable", tags=["webhooks"])
async def enable_webhook(caller: CallerDep, request: Request, subscription_id: uuid.UUID) -> dict[str, Any]:
    return _row(await subscriptions.enable(_uow(request), caller, subscription_id))


@router.post("/webhooks/{subscription_id}/disable", tags=["webhooks"])
async def disable_webhook(caller: CallerDep, request: Request, subscription_id: uuid.UUID) -> dict[str, Any]:
    return _row(await subscriptions.disable(_uow(request), caller, subscription_id))


@router.post("/webhooks/{subscription_id}/resend-failed", status_code=202, tags=["webhooks"])
async def resend_failed(
    caller: CallerDep, request: Request, subscription_id: uuid.UUID, since: datetime | None = None
) -> dict[str, Any]:
    """Re-enable the endpoint and queue every delivery to it that was given up on (since `since`)."""
    count = await subscriptions.resend_failed(_uow(request), caller, subscription_id, since)
    return {"subscription_id": str(subscription_id), "requeued": count}


# -- templates --------------------------------------------------------------------------


class TemplateText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=50_000)


@router.get("/templates", tags=["templates"])
async def list_templates(caller: CallerDep, request: Request) -> dict[str, Any]:
    rows = await configuration.overrides(_uow(request), caller)
    return {
        "templates": sorted({r.template for r in RULES} | {"digest"}),
        "parts": list(PARTS),
        "overrides": [{**dict(r), "scope": "organisation" if r["organisation_id"] else "federation"} for r in rows],
    }


@router.put("/templates/{template}/{language}/{part}", tags=["templates"])
async def put_template(
    caller: CallerDep,
    request: Request,
    template: Annotated[str, Path(pattern=r"^[a-z_]{1,64}$")],
    language: Annotated[str, Path(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")],
    part: Part,
    body: TemplateText,
) -> dict[str, Any]:
    """Override one part of a template for the caller's organisation (or, with a staff key, federation)."""
    await configuration.put_template(
        _uow(request), caller, _service(request).renderer, template, language, part, body.body
    )
    scope = "organisation" if caller.organisation_id else "federation"
    return {"template": template, "language": language, "part": part, "scope": scope}


@router.delete("/templates/{template}/{language}/{part}", status_code=204, tags=["templates"])
async def delete_template(caller: CallerDep, request: Request, template: str, language: str, part: Part) -> Response:
    await configuration.delete_template(_uow(request), caller, template, language, part)
    return Response(status_code=204)


# -- a federation's channels --------------------------------------------------------------


class ChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    smtp_host: str | None = Field(default=None, max_length=253)
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    mail_from: str | None = Field(default=None, max_length=320)
    sms_base_url: str | None = Field(default=None, max_length=2048, description="The SMS provider's API base URL")
    sms_account_sid: str | None = Field(default=None, max_length=200)
    sms_auth_token: str | None = Field(default=None, max_length=500)
    sms_from: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$")
    sms_max_segments: int | None = Field(default=None, ge=1, le=10)
    quiet_hours: str | None = Field(
        default=None,
        max_length=20,
        description="'21:00-08:00' in each recipient's zone; '' for none; null for the default",
    )
    max_attempts: int | None = Field(default=None, ge=1, le=50)
    retry_base_seconds: float | None = Field(default=None, gt=0, le=3600)
    digest_seconds: int | None = Field(default=None, ge=0, le=7 * 86400)

    @field_validator("quiet_hours")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value:
            try:
                return str(QuietHours.parse(value))
            except ValueError as exc:
                raise ValueError("must look like 21:00-08:00") from exc
        return value


@router.get("/channel-config", tags=["settings"])
async def get_channel_config(caller: CallerDep, request: Request) -> dict[str, Any]:
    row = await configuration.channels(_uow(request), caller)
    return {"federation_id": caller.federation_id, **(_row(row) if row else {})}


@router.put("/channel-config", tags=["settings"])
async def put_channel_config(caller: CallerDep, request: Request, body: ChannelConfig) -> dict[str, Any]:
    row = await configuration.put_channels(
        _uow(request), caller, body.model_dump(), allowed=request.app.state.outbound_allow
    )
    return {"federation_id": caller.federation_id, **(_row(row) if row else {})}


# -- one-click unsubscribe (RFC 8058) -----------------------------------------------------

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Unsubscribe</title></head><body>
<p>{text}</p>{form}</body></html>"""


@router.get(
    "/unsubscribe",
    response_class=HTMLResponse,
    tags=["unsubscribe"],
    responses={404: {"description": "The link is not valid (a page saying so)", "content": {"text/html": {}}}},
)
@checks_credential("the signed unsubscribe token in the mail")
async def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    """A page with a button: a GET never unsubscribes (link scanners follow links)."""
    who = _service(request).check_token(token)
    if who is None:
        return HTMLResponse(_PAGE.format(text="This unsubscribe link is not valid.", form=""), status_code=404)
    form = (
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return HTMLResponse(_PAGE.format(text="Stop these messages from Pitch In?", form=form))


@router.post("/unsubscribe", tags=["unsubscribe"])
@checks_credential("the signed unsubscribe token in the mail")
async def unsubscribe(request: Request, token: str) -> dict[str, Any]:
    """The one-click POST a mail client sends with body ``List-Unsubscribe=One-Click``."""
    raw = (await request.body()).decode("utf-8", "replace")
    form = parse_qs(raw)
    if form.get("List-Unsubscribe") != ["One-Click"]:
        raise Problem(
            400,
            "Bad request",
            "Send List-Unsubscribe=One-Click as the form body (RFC 8058).",
            errors=[{"field": "List-Unsubscribe", "message": "must be One-Click"}],
        )
    who = await _service(request).unsubscribe(_uow(request), token)
    return {"unsubscribed": True, "channel": who.channel}
