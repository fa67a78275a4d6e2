"""Channel adapters: SMTP, an SMS provider's REST API, webhooks. Each turns a claimed row into an Outcome."""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import json
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from email.header import Header
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr
from functools import lru_cache
from typing import Any, Protocol

import aiosmtplib
import httpx
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from pitchin_core import outbound
from pitchin_core.outbound import Network, OutboundRefused, Target
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
    """SMTP with a pool of kept-open connections per server (one per concurrency slot at most).

    Each mail is built straight as RFC 5322 / MIME bytes (`mime_message`) and handed to
    ``sendmail``: building an ``EmailMessage`` and flattening it with the email package's
    policies cost about 1 ms of CPU per mail here, more than everything else a send does.
    Addresses that are not ASCII (they need SMTPUTF8) take the email package's path.
    """

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        mail_from: str,
        timeout: float = 15.0,
        keep: int = 10,
        allowed: Sequence[Network] = (),
    ) -> None:
        self.allowed = allowed
        self.host = host
        self.port = port
        self.mail_from = mail_from
        self.timeout = timeout
        self.keep = keep
        self._idle: dict[tuple[str, int], list[aiosmtplib.SMTP]] = defaultdict(list)

    def build(self, row: Row) -> EmailMessage:
        """The same mail as an ``EmailMessage``: for addresses only SMTPUTF8 can carry."""
        sender = row["mail_from"] or self.mail_from
        domain = parseaddr(sender)[1].rpartition("@")[2] or "pitchin.local"
        message = EmailMessage()
        message["From"] = sender
        message["To"] = row["recipient"]
        message["Subject"] = row["subject"]
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = message_id(row["idempotency_key"], domain)
        if row["unsubscribe_url"]:
            # RFC 8058 one-click: the POST target and the header that says it takes one click.
            message["List-Unsubscribe"] = f"<{row['unsubscribe_url']}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(row["body_text"])
        if row["body_html"]:
            message.add_alternative(row["body_html"], subtype="html")
        return message

    def envelope(self, row: Row) -> tuple[str, str, bytes] | None:
        """(envelope sender, recipient, message bytes), or None when only SMTPUTF8 can carry the addresses."""
        sender = _sender(row["mail_from"] or self.mail_from)
        recipient: str = row["recipient"]
        if sender is None or not recipient.isascii() or _UNSAFE.search(recipient):
            return None
        header_from, address, domain = sender
        raw = mime_message(
            header_from=header_from,
            to=recipient,
            subject=row["subject"],
            message_id=message_id(row["idempotency_key"], domain),
            text=row["body_text"],
            html=row["body_html"],
            unsubscribe_url=row["unsubscribe_url"],
        )
        return address, recipient, raw

    async def _connect(self, host: str, port: int) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(hostname=host, port=port, timeout=self.timeout, start_tls=False)
        await client.connect()
        return client

    async def send(self, row: Row) -> Outcome:
        host, port = row["smtp_host"] or self.host, row["smtp_port"] or self.port
        if row["smtp_host"]:
            # A federation's own server (set by the operator) passes the same guard, and is
            # connected to at the address checked.
            try:
                host = (await outbound.check_host(host, port, field="smtp_host", allowed=self.allowed)).address
            except OutboundRefused as refused:
                return Outcome(error=str(refused), permanent=True)
        mail: tuple[str, str, bytes] | EmailMessage = self.envelope(row) or self.build(row)
        with _span("smtp send", row, "email", **{"server.address": host, "server.port": port}) as span:
            outcome = await self._send(host, port, mail)
            if not outcome.ok:
                span.set_status(Status(StatusCode.ERROR, outcome.error))
            return outcome

    async def _send(self, host: str, port: int, mail: tuple[str, str, bytes] | EmailMessage) -> Outcome:
        idle = self._idle[(host, port)]
        for attempt in range(2):
            client = idle.pop() if idle and attempt == 0 else None
            reused = client is not None
            try:
                if client is None:
                    client = await self._connect(host, port)
                if isinstance(mail, EmailMessage):
                    await client.send_message(mail)
                else:
                    await client.sendmail(*mail)
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


# A header value with a line break in it would start a header of its own (header injection).
_UNSAFE = re.compile(r"[\r\n\0]")


@lru_cache(maxsize=64)
def _sender(mail_from: str) -> tuple[str, str, str] | None:
    """(From header, envelope address, Message-ID domain) of a configured sender; None if it is not ASCII."""
    name, address = parseaddr(mail_from)
    if not address or not address.isascii() or _UNSAFE.search(mail_from):
        return None
    domain = address.rpartition("@")[2] or "pitchin.local"
    # formataddr quotes what needs quoting and encodes a non-ASCII display name (RFC 2047).
    return formataddr((name, address), charset="utf-8"), address, domain


def _header_text(name: str, value: str) -> str:
    """An unstructured header's value (RFC 5322 2.2.1): as it is if it can be, else RFC 2047 encoded and folded."""
    value = _UNSAFE.sub(" ", value)
    if value.isascii() and len(name) + len(value) < 76:
        return value
    return Header(value, "utf-8" if not value.isascii() else "us-ascii", header_name=name).encode(linesep="\r\n")


def _quoted_printable(text: str) -> bytes:
    """UTF-8 text as quoted-printable (RFC 2045 6.7) with CRLF line ends; '=' is always escaped, so the
    boundary below (which starts with '=_') can never occur in a part."""
    plain = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(plain, quotetabs=False, istext=True).replace(b"\n", b"\r\n")


def mime_message(
    *,
    header_from: str,
    to: str,
    subject: str,
    message_id: str,
    text: str,
    html: str | None,
    unsubscribe_url: str | None,
    date: str | None = None,
) -> bytes:
    """An RFC 5322 mail: text/plain, or multipart/alternative (text then HTML), in quoted-printable UTF-8."""
    headers = [
        f"From: {header_from}",
        f"To: {to}",
        f"Subject: {_header_text('Subject', subject)}",
        f"Date: {date or formatdate(usegmt=True)}",
        f"Message-ID: {message_id}",
    ]
    if unsubscribe_url:
        # RFC 8058 one-click: the POST target and the header that says it takes one click.
        headers.append(f"List-Unsubscribe: <{_UNSAFE.sub('', unsubscribe_url)}>")
        headers.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
    headers.append("MIME-Version: 1.0")
    part_headers = '; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
    if not html:
        headers.append("Content-Type: text/plain" + part_headers)
        return "\r\n".join(headers).encode("ascii") + _quoted_printable(text)
    boundary = "=_" + uuid.uuid4().hex
    headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n')
    delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
    return b"".join(
        (
            "\r\n".join(headers).encode("ascii"),
            delimiter[2:],
            b"Content-Type: text/plain" + part_headers.encode("ascii"),
            _quoted_printable(text),
            delimiter,
            b"Content-Type: text/html" + part_headers.encode("ascii"),
            _quoted_printable(html),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        )
    )


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

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        account_sid: str,
        auth_token: str,
        sender: str,
        allowed: Sequence[Network] = (),
    ):
        self.client = client
        self.base_url = base_url
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.sender = sender
        self.allowed = allowed

    async def send(self, row: Row) -> Outcome:
        own_provider = bool(row["sms_base_url"]) and row["sms_base_url"] != self.base_url
        base = row["sms_base_url"] or self.base_url
        if own_provider:
            # A federation's own provider is sent the federation's own account, never the platform's.
            sid, token = row["sms_account_sid"] or "", row["sms_auth_token"] or ""
            if not (sid and token):
                return Outcome(error="this federation's SMS provider has no account of its own set", permanent=True)
        else:
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
        try:
            target = await outbound.check(url, field="sms_base_url", allowed=self.allowed) if own_provider else None
        except OutboundRefused as refused:
            return Outcome(error=str(refused), permanent=True)
        segmented = sms.segments(row["body_text"])
        with _span(
            "sms send",
            row,
            "sms",
            **{"pitchin.sms.segments": segmented.count, "pitchin.sms.encoding": segmented.encoding},
        ) as span:
            try:
                form = {"To": to, "From": sender, "Body": row["body_text"]}
                if target is None:  # the platform's own provider, which the operator configured
                    answer = await self.client.post(url, data=form, auth=(sid, token))
                else:
                    answer = await _pinned_post(self.client, target, data=form, auth=(sid, token))
            except httpx.HTTPError as exc:
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                return Outcome(error=f"{type(exc).__name__}: {exc}")
            if answer.is_success:
                ref: str | None = None
                with contextlib.suppress(ValueError, AttributeError):
                    ref = answer.json().get("sid")
                return Outcome(provider_ref=ref)
            span.set_status(Status(StatusCode.ERROR, f"HTTP {answer.status_code}"))
            # The provider's error code, never its reply's text (which may echo the message or account).
            code = ""
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                code = f" (code {int(answer.json().get('code'))})"
            transient = answer.status_code == 429 or answer.status_code >= 500
            return Outcome(error=f"provider answered {answer.status_code}{code}", permanent=not transient)

    async def close(self) -> None:
        return None


class WebhookChannel:
    """POSTs the stored JSON body, signed per Standard Webhooks; the same webhook-id on every attempt."""

    name = "webhook"

    def __init__(self, client: httpx.AsyncClient, allowed: Sequence[Network] = ()) -> None:
        self.client = client
        self.allowed = allowed

    async def send(self, row: Row) -> Outcome:
        if row["webhook_status"] != "active" or not row["webhook_url"]:
            return Outcome(error="the endpoint is disabled or deleted", permanent=True)
        # Checked again at each send, and the connection made to the address checked: a name
        # that resolved to a public address when the webhook was saved may not any more.
        try:
            target = await outbound.check(row["webhook_url"], allowed=self.allowed)
        except OutboundRefused as refused:
            return Outcome(error=str(refused), permanent=True)
        body = row["body_text"].encode("utf-8")
        msg_id = f"msg_{row['delivery_id'].hex}"
        headers = webhooks.headers(row["webhook_secret"], msg_id, int(time.time()), body)
        with _span("webhook send", row, "webhook", **{"url.full": row["webhook_url"]}) as span:
            try:
                answer = await _pinned_post(self.client, target, content=body, headers=headers)
            except httpx.HTTPError as exc:
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                return Outcome(error=f"{type(exc).__name__}: {exc}")
            span.set_attribute("http.response.status_code", answer.status_code)
            if answer.is_success:
                return Outcome(provider_ref=str(answer.status_code))
            span.set_status(Status(StatusCode.ERROR, f"HTTP {answer.status_code}"))
            if answer.status_code == 410:
                return Outcome(error="endpoint answered 410 Gone", permanent=True, gone=True)
            # Only the status: the reply's body is the remote's, and could be anything it chose to show us.
            return Outcome(error=f"endpoint answered HTTP {answer.status_code}")

    async def close(self) -> None:
        return None


async def _pinned_post(client: httpx.AsyncClient, target: Target, **request: Any) -> httpx.Response:
    """POST to the address the outbound guard checked; the name goes in Host and in TLS's SNI (so the
    certificate is still checked against it). Redirects are never followed (the client's setting)."""
    headers = {**request.pop("headers", {}), "Host": target.host_header}
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    return await client.post(target.pinned_url, headers=headers, extensions=extensions, **request)


def json_body(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), default=str)
