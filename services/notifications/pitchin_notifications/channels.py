"""Channel adapters: SMTP, an SMS provider's REST API, webhooks. Each turns a claimed row into an Outcome."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any, Protocol

import aiosmtplib
import httpx
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from pitchin_core.telemetry import context_from
from pitchin_notifications.domain import sms, webhooks
from pitchin_notifications.domain.messages import message_id

tracer = trace.get_tracer("pitchin.notifications")
Row = Any  # an asyncpg.Record from storage.claim_due


@dataclass(frozen=True)
class Outcome:
    error: str | None = None
    permanent: bool = False  # retrying cannot help (a refused address, a 4xx from the provider)
    gone: bool = False  # the webhook endpoint answered 410 Gone: disable it
    provider_ref: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ChannelAdapter(Protocol):
    name: str

    async def send(self, row: Row) -> Outcome: ...

    async def close(self) -> None: ...


def _span(name: str, row: Row, channel: str, **attributes: Any) -> Any:
    return tracer.start_as_current_span(
        name,
        context=context_from(row["traceparent"]),
        kind=SpanKind.CLIENT,
        attributes={"pitchin.delivery.channel": channel, "pitchin.delivery.attempt": row["attempts"] + 1, **attributes},
    )


class EmailChannel:
    """SMTP with a pool of kept-open connections per server (one per concurrency slot at most)."""

    name = "email"

    def __init__(self, host: str, port: int, mail_from: str, timeout: float = 15.0, keep: int = 10) -> None:
        self.host = host
        self.port = port
        self.mail_from = mail_from
        self.timeout = timeout
        self.keep = keep
        self._idle: dict[tuple[str, int], list[aiosmtplib.SMTP]] = defaultdict(list)

    def build(self, row: Row) -> EmailMessage:
        sender = row["mail_from"] or self.mail_from
        domain = parseaddr(sender)[1].rpartition("@")[2] or "pitchin.local"
        message = EmailMessage()
        message["From"] = sender
        message["To"] = row["recipient"]
        message["Subject"] = row["subject"]
        message["Message-ID"] = message_id(row["idempotency_key"], domain)
        if row["unsubscribe_url"]:
            # RFC 8058 one-click: the POST target and the header that says it takes one click.
            message["List-Unsubscribe"] = f"<{row['unsubscribe_url']}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(row["body_text"])
        if row["body_html"]:
            message.add_alternative(row["body_html"], subtype="html")
        return message

    async def _connect(self, host: str, port: int) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(hostname=host, port=port, timeout=self.timeout, start_tls=False)
        await client.connect()
        return client

    async def send(self, row: Row) -> Outcome:
        host, port = row["smtp_host"] or self.host, row["smtp_port"] or self.port
        message = self.build(row)
        with _span("smtp send", row, "email", **{"server.address": host, "server.port": port}) as span:
            outcome = await self._send(host, port, message)
            if not outcome.ok:
                span.set_status(Status(StatusCode.ERROR, outcome.error))
            return outcome

    async def _send(self, host: str, port: int, message: EmailMessage) -> Outcome:
        idle = self._idle[(host, port)]
        for attempt in range(2):
            client = idle.pop() if idle and attempt == 0 else None
            reused = client is not None
            try:
                if client is None:
                    client = await self._connect(host, port)
                await client.send_message(message)
            except aiosmtplib.SMTPServerDisconnected as exc:
                await _discard(client)
                if reused:
                    continue  # a kept connection the server had closed: try once on a fresh one
                return Outcome(error=f"SMTPServerDisconnected: {exc}")
            except aiosmtplib.SMTPRecipientsRefused as exc:
                await _discard(client)
                codes = [e.code for e in exc.recipients]
                return Outcome(error=f"recipients refused: {exc}", permanent=all(c >= 500 for c in codes))
            except aiosmtplib.SMTPResponseException as exc:
                await _discard(client)
                return Outcome(error=f"SMTP {exc.code}: {exc.message}", permanent=exc.code >= 500)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                await _discard(client)
                return Outcome(error=f"{type(exc).__name__}: {exc}")
            if len(idle) < self.keep:
                idle.append(client)
            else:
                await _discard(client)
            return Outcome()
        return Outcome(error="SMTP server closed the connection twice")

    async def close(self) -> None:
        for clients in self._idle.values():
            while clients:
                await _discard(clients.pop())


async def _discard(client: aiosmtplib.SMTP | None) -> None:
    if client is None:
        return
    with contextlib.suppress(Exception):
        if client.is_connected:
            await asyncio.wait_for(client.quit(), 2)
    with contextlib.suppress(Exception):
        client.close()


class SmsChannel:
    """A provider speaking the common REST shape: POST a form to /2010-04-01/Accounts/{sid}/Messages.json."""

    name = "sms"

    def __init__(self, client: httpx.AsyncClient, base_url: str, account_sid: str, auth_token: str, sender: str):
        self.client = client
        self.base_url = base_url
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.sender = sender

    async def send(self, row: Row) -> Outcome:
        base = row["sms_base_url"] or self.base_url
        sid = row["sms_account_sid"] or self.account_sid
        token = row["sms_auth_token"] or self.auth_token
        sender = row["sms_from"] or self.sender
        if not (base and sid and sender):
            return Outcome(error="no SMS provider is configured for this federation", permanent=True)
        try:
            to = sms.to_e164(row["recipient"])
        except sms.InvalidNumber as exc:
            return Outcome(error=str(exc), permanent=True)
        url = f"{base.rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"
        segmented = sms.segments(row["body_text"])
        with _span(
            "sms send",
            row,
            "sms",
            **{"pitchin.sms.segments": segmented.count, "pitchin.sms.encoding": segmented.encoding},
        ) as span:
            try:
                answer = await self.client.post(
                    url, data={"To": to, "From": sender, "Body": row["body_text"]}, auth=(sid, token)
                )
            except httpx.HTTPError as exc:
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                return Outcome(error=f"{type(exc).__name__}: {exc}")
            if answer.is_success:
                ref: str | None = None
                with contextlib.suppress(ValueError, AttributeError):
                    ref = answer.json().get("sid")
                return Outcome(provider_ref=ref)
            span.set_status(Status(StatusCode.ERROR, f"HTTP {answer.status_code}"))
            detail = answer.text[:300]
            with contextlib.suppress(ValueError, AttributeError):
                detail = str(answer.json().get("message", detail))
            transient = answer.status_code == 429 or answer.status_code >= 500
            return Outcome(error=f"provider answered {answer.status_code}: {detail}", permanent=not transient)

    async def close(self) -> None:
        return None


class WebhookChannel:
    """POSTs the stored JSON body, signed per Standard Webhooks; the same webhook-id on every attempt."""

    name = "webhook"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(self, row: Row) -> Outcome:
        if row["webhook_status"] != "active" or not row["webhook_url"]:
            return Outcome(error="the endpoint is disabled or deleted", permanent=True)
        body = row["body_text"].encode("utf-8")
        msg_id = f"msg_{row['delivery_id'].hex}"
        headers = webhooks.headers(row["webhook_secret"], msg_id, int(time.time()), body)
        with _span("webhook send", row, "webhook", **{"url.full": row["webhook_url"]}) as span:
            try:
                answer = await self.client.post(row["webhook_url"], content=body, headers=headers)
            except httpx.HTTPError as exc:
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                return Outcome(error=f"{type(exc).__name__}: {exc}")
            span.set_attribute("http.response.status_code", answer.status_code)
            if answer.is_success:
                return Outcome(provider_ref=str(answer.status_code))
            span.set_status(Status(StatusCode.ERROR, f"HTTP {answer.status_code}"))
            if answer.status_code == 410:
                return Outcome(error="endpoint answered 410 Gone", permanent=True, gone=True)
            return Outcome(error=f"endpoint answered HTTP {answer.status_code}: {answer.text[:200]}")

    async def close(self) -> None:
        return None


def json_body(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), default=str)
