"""Entry point: builds the notifications app from settings; nothing happens at import time."""

from __future__ import annotations

from contextlib import AsyncExitStack
from importlib.resources import files

import httpx
from fastapi import FastAPI
from pydantic import Field, field_validator

from pitchin_core.http import run_beside
from pitchin_core.links import LOCAL_DONOR_LINK_SECRET
from pitchin_core.outbound import parse_allowed
from pitchin_core.personal import PersonKeysSettings
from pitchin_core.retention import enforce
from pitchin_core.runtime import Runtime, serve
from pitchin_core.settings import local_secret
from pitchin_core.subject_access import router_for
from pitchin_notifications import api, handlers
from pitchin_notifications.channels import ChannelAdapter, EmailChannel, SmsChannel, WebhookChannel
from pitchin_notifications.domain.quiet_hours import QuietHours
from pitchin_notifications.erasure import RETENTION, export
from pitchin_notifications.sender import ChannelPolicy, Sender
from pitchin_notifications.service.messages import Notifications, Policy
from pitchin_notifications.templates import Renderer


class NotificationsSettings(PersonKeysSettings):
    service_name: str = "notifications"
    http_port: int = 8003
    # email
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    mail_from: str = "Pitch In <no-reply@pitchin.local>"
    email_concurrency: int = Field(default=10, ge=1, le=200)
    email_max_attempts: int = Field(default=6, ge=1)
    # SMS: service-wide defaults; a federation's channel config (PUT /v1/channel-config) overrides them
    sms_base_url: str = ""
    sms_account_sid: str = ""
    sms_auth_token: str = ""
    sms_from: str = ""
    sms_concurrency: int = Field(default=5, ge=1, le=100)
    sms_max_attempts: int = Field(default=6, ge=1)
    sms_max_segments: int = Field(default=4, ge=1, le=10)
    # webhooks
    webhook_concurrency: int = Field(default=10, ge=1, le=200)
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_disable_after: int = Field(default=5, ge=1, description="dead deliveries in a row before disabling")
    # delivery policy
    sender_batch_size: int = Field(default=100, ge=1, le=5000)
    fanout_batch_size: int = Field(default=1000, ge=1, le=50_000)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_cap_seconds: float = Field(default=900.0, gt=0)
    quiet_hours: str = Field(default="21:00-08:00", description="default quiet hours; '' for none")
    digest_seconds: int = Field(default=86_400, ge=0, description="how long low-priority messages wait for a digest")
    # Private networks the operator lets webhooks, SMS and SMTP reach (comma-separated, e.g. a
    # test receiver's "127.0.0.1/32"); every other inside address is refused (pitchin_core.outbound).
    outbound_allow: str = ""
    # Secrets (ServiceSettings refuses local or weak ones in staging and production).
    unsubscribe_secret: str = local_secret("unsubscribe-secret")
    # Signs the links to donors' own pages and attendees' bookings on the web front (shared with
    # the web front), when the sender sends a message.
    donor_link_secret: str = LOCAL_DONOR_LINK_SECRET

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours_window(cls, value: str) -> str:
        if value:
            QuietHours.parse(value)
        return value


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    settings = settings or NotificationsSettings()
    runtime = Runtime(settings, files("pitchin_notifications") / "migrations")
    notifications = Notifications(
        Renderer(sms_max_segments=settings.sms_max_segments),
        Policy(
            public_base_url=settings.public_base_url,
            unsubscribe_key=settings.unsubscribe_secret.encode("utf-8"),
            donor_link_secret=settings.donor_link_secret,
            quiet_hours=QuietHours.parse(settings.quiet_hours) if settings.quiet_hours else None,
            digest_seconds=settings.digest_seconds,
            fanout_batch=settings.fanout_batch_size,
            webhook_disable_after=settings.webhook_disable_after,
        ),
    )
    handlers.register(runtime, notifications)
    app = runtime.http_app([api.router, router_for("notifications", export)], title="Pitch In notifications")
    app.state.notifications = notifications
    app.state.outbound_allow = allowed = parse_allowed(settings.outbound_allow)

    async def start_sender(workers: AsyncExitStack) -> None:
        http = await workers.enter_async_context(
            httpx.AsyncClient(timeout=settings.webhook_timeout_seconds, follow_redirects=False)
        )
        adapters: dict[str, ChannelAdapter] = {
            "email": EmailChannel(
                settings.smtp_host,
                settings.smtp_port,
                settings.mail_from,
                keep=settings.email_concurrency,
                allowed=allowed,
            ),
            "sms": SmsChannel(
                http,
                settings.sms_base_url,
                settings.sms_account_sid,
                settings.sms_auth_token,
                settings.sms_from,
                allowed=allowed,
            ),
            "webhook": WebhookChannel(http, allowed=allowed),
        }
        batch = settings.sender_batch_size
        sender = Sender(
            runtime.pool,
            runtime.metrics,
            schema=settings.db_schema,
            adapters=adapters,
            policies={
                "email": ChannelPolicy(settings.email_max_attempts, settings.email_concurrency, batch),
                "sms": ChannelPolicy(settings.sms_max_attempts, settings.sms_concurrency, batch),
                "webhook": ChannelPolicy(settings.webhook_max_attempts, settings.webhook_concurrency, batch),
            },
            retry_base=settings.retry_base_seconds,
            retry_cap=settings.retry_cap_seconds,
            # The sender signs the donor and booking links of a message when it sends it.
            donor_link_secret=settings.donor_link_secret,
            jobs=(
                lambda: notifications.expand_next_job(runtime.uow),
                lambda: notifications.make_digests(runtime.uow),
            ),
        )
        runtime.uow.on_committed_writes(sender.wake)
        await sender.start()
        workers.push_async_callback(sender.stop)

    run_beside(app, start_sender)
    enforce(app, runtime, RETENTION)  # docs/privacy.md
    return app


def main() -> None:
    serve("pitchin_notifications.main:create_app", NotificationsSettings())


if __name__ == "__main__":
    main()
