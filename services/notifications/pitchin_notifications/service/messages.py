"""The messages events cause: Notifications' service object.

- a consumed event: keep the read models it feeds and stage the messages and webhook
  deliveries it causes, in one transaction with the inbox record (a redelivered event adds
  nothing). One use case per read model an event feeds (`learn_donor`, `donor_withdrew`,
  `learn_booking`, `learn_event`); `stage` for events that feed none;
- `expand_next_job`: turn a batch of an event-wide message (or a message for a donor not
  known yet) into deliveries;
- `make_digests`: fold a recipient's held low-priority messages into one email;
- `unsubscribe`: the one-click unsubscribe every email links to.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import asyncpg

from pitchin_core.contracts.bookings import (
    BookingCancelledV1,
    BookingConfirmedV1,
    BookingFacts,
    BookingOfferAcceptedV1,
    BookingOfferDeclinedV1,
    BookingOfferExpiredV1,
    BookingPromotedV1,
    BookingWaitlistedV1,
)
from pitchin_core.contracts.cloudevents import CloudEvent
from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.donors import DonorRegisteredV1, DonorStatus, DonorUpdatedV1, DonorWithdrawnV1
from pitchin_core.db import Conn
from pitchin_core.errors import NotFound
from pitchin_core.links import BOOKING_PREFIX, LOCAL_DONOR_LINK_SECRET, PREFIX, link_reference, rebind_references
from pitchin_core.telemetry import current_traceparent
from pitchin_core.uow import AMBIENT, BatchTransaction, Tenant, Transactions
from pitchin_notifications import storage
from pitchin_notifications.domain import webhooks
from pitchin_notifications.domain.messages import (
    EVENT_WIDE,
    RULES,
    SECRET_FIELDS,
    Audience,
    Channel,
    PlannedMessage,
    Priority,
    Recipient,
    Rule,
    link_holder,
    plan,
    rules_for,
)
from pitchin_notifications.domain.quiet_hours import QuietHours, release_at
from pitchin_notifications.domain.unsubscribe import Unsubscribe, address_hash, make_token, read_token
from pitchin_notifications.templates import Overrides, Renderer

log = logging.getLogger(__name__)

T = TypeVar("T")
# A consumer's batch is one transaction in which a federation's channel settings, template
# overrides and webhook subscriptions do not change; each record of a 500-record batch asking
# again cost three round trips of its own. Keyed by the batch, so nothing outlives it.
_PER_BATCH: WeakKeyDictionary[BatchTransaction, dict[tuple[str, ...], Any]] = WeakKeyDictionary()


async def _once_per_batch(key: tuple[str, ...], load: Callable[[], Awaitable[T]]) -> T:
    """`load()`, or what it gave earlier in this consumer batch's transaction."""
    batch = AMBIENT.get()
    if not isinstance(batch, BatchTransaction):
        return await load()
    memo = _PER_BATCH.setdefault(batch, {})
    if key not in memo:
        memo[key] = await load()
    value: T = memo[key]
    return value


DIGEST_TYPE = "org.pitchin.notifications.digest"
RULES_BY_KEY = {rule.key(): rule for rule in RULES}
# A message for a donor this service has not heard of waits this long for their sign-up.
UNKNOWN_DONOR_PATIENCE = timedelta(minutes=15)
# Who is on an event's list after each booking event (other booking facts leave the list alone).
BOOKING_STATUS: dict[type[BookingFacts], str] = {
    BookingConfirmedV1: "confirmed",
    BookingPromotedV1: "confirmed",
    BookingWaitlistedV1: "waitlisted",
    BookingCancelledV1: "cancelled",
    BookingOfferAcceptedV1: "confirmed",  # waitlist offers (issue 22): taken, or given up / lapsed
    BookingOfferDeclinedV1: "cancelled",
    BookingOfferExpiredV1: "cancelled",
}

# What a consumed event teaches the read models, inside the transaction that stages its messages.
Learn = Callable[[Conn], Awaitable[None]]


@dataclass(frozen=True)
class Policy:
    """The service's defaults; a federation's `channel_config` row overrides them."""

    public_base_url: str
    unsubscribe_key: bytes
    quiet_hours: QuietHours | None
    digest_seconds: int
    fanout_batch: int = 1000
    webhook_disable_after: int = 5
    donor_link_secret: str = LOCAL_DONOR_LINK_SECRET


@dataclass(frozen=True)
class TenantPolicy:
    quiet_hours: QuietHours | None
    digest_seconds: int


@dataclass(frozen=True)
class _Staging:
    """What every delivery staged for one event (or one page of a fan-out) shares."""

    event_id: str
    event_type: str
    federation_id: str
    organisation_id: str | None
    tenant: TenantPolicy
    now: datetime
    traceparent: str | None
    bulk: bool


async def _nothing_to_learn(conn: Conn) -> None:
    return None


class Notifications:
    def __init__(self, renderer: Renderer, policy: Policy) -> None:
        self.renderer = renderer
        self.policy = policy

    @property
    def base(self) -> str:
        return self.policy.public_base_url.rstrip("/")

    def _donor_page(self, rule: Rule, person: Recipient) -> str | None:
        """The path of a donor's own page on the web front, in mail to a donor: a reference the
        sender signs when it sends the message, so the stored row holds no credential (issue 17)."""
        if rule.audience is not Audience.donor or not person.ref:
            return None
        return self._page("/me/", PREFIX, person.ref, person)

    def _booking_page(self, data: dict[str, Any], person: Recipient) -> str | None:
        """The path of the attendee's booking page: a reference signed for that booking when sent."""
        booking_id = data.get("booking_id")
        if not isinstance(booking_id, str) or not booking_id:
            return None
        return self._page("/bookings/", BOOKING_PREFIX, booking_id, person)

    def _page(self, path: str, kind: str, subject_id: str, person: Recipient) -> str | None:
        holder = link_holder(person.ref, person.email or person.phone)
        try:
            return path + link_reference(self.policy.donor_link_secret, kind, subject_id, holder)
        except ValueError:
            # An id no link can name: the message links to the event or front page instead.
            log.warning("no %s link for id %r", kind, subject_id)
            return None

    # -- consuming -------------------------------------------------------------------------

    async def stage(self, uow: Transactions, event: CloudEvent, data: EventData) -> bool:
        """An event no read model keeps: only the messages and webhook deliveries it causes."""
        return await self._consume(uow, event, data, _nothing_to_learn)

    async def learn_donor(self, uow: Transactions, event: CloudEvent, data: DonorRegisteredV1 | DonorUpdatedV1) -> bool:
        """A donor's contact data and preferences, newest version first; a withdrawn status stops what waits."""

        async def learn(conn: Conn) -> None:
            await storage.upsert_person(
                conn,
                {
                    "donor_id": data.donor_id,
                    "federation_id": data.federation_id,
                    "organisation_id": data.organisation_id,
                    "name": data.name,
                    "email": str(data.email),
                    "phone": data.phone,
                    "email_ok": data.contact.email,
                    "sms_ok": data.contact.sms,
                    "language": data.contact.language,
                    "time_zone": data.availability.time_zone,
                    "purposes": list(data.consent.purposes),
                    "status": data.status.value,
                    "version": data.version if isinstance(data, DonorUpdatedV1) else 0,
                },
            )
            if data.status is DonorStatus.withdrawn:
                await storage.withdraw_person(conn, data.donor_id)

        return await self._consume(uow, event, data, learn)

    async def donor_withdrew(self, uow: Transactions, event: CloudEvent, data: DonorWithdrawnV1) -> bool:
        """Stop what waits for the donor; with `erase`, forget everything here that names them."""

        async def learn(conn: Conn) -> None:
            if data.erase:
                await storage.erase_person(conn, data.donor_id)
            else:
                await storage.withdraw_person(conn, data.donor_id)

        return await self._consume(uow, event, data, learn)

    async def learn_booking(self, uow: Transactions, event: CloudEvent, data: BookingFacts) -> bool:
        """Who is booked on which event (event-wide messages go to them), by booking."""
        status = BOOKING_STATUS.get(type(data))

        async def learn(conn: Conn) -> None:
            if status is None:
                return
            await storage.upsert_attendee(
                conn,
                {
                    "booking_id": data.booking_id,
                    "event_id": data.event_id,
                    "federation_id": data.federation_id,
                    "organisation_id": data.organisation_id,
                    "donor_id": data.donor_id,
                    "name": data.name,
                    "email": str(data.email),
                    "language": data.language,
                    "status": status,
                },
            )

        return await self._consume(uow, event, data, learn)

    async def learn_event(self, uow: Transactions, event: CloudEvent, data: EventData) -> bool:
        """What messages say about an event (title, times, place), merged from every fact about it."""
        dumped = data.model_dump(mode="json")

        async def learn(conn: Conn) -> None:
            if not dumped.get("event_id"):
                return
            details = {
                k: v for k, v in dumped.items() if k not in ("federation_id", "organisation_id") and v is not None
            }
            await storage.merge_event(conn, str(dumped["event_id"]), data.federation_id, data.organisation_id, details)

        return await self._consume(uow, event, data, learn)

    async def _consume(self, uow: Transactions, event: CloudEvent, data: EventData, learn: Learn) -> bool:
        """Learn from `event` and stage what it causes; False when it was applied before."""
        traceparent, _ = current_traceparent()
        dumped = data.model_dump(mode="json")
        now = datetime.now(UTC)
        async with uow(Tenant(data.federation_id)) as tx:
            if not await tx.first_delivery(event):
                return False
            conn = tx.conn
            await learn(conn)
            tenant = await self._tenant_policy(conn, data.federation_id)
            for rule in rules_for(event.type, dumped):
                if rule.audience in EVENT_WIDE:
                    # Everyone booked on the event: a job that expands to them in batches.
                    target = str(dumped["event_id"])
                    statuses = ["confirmed"] if rule.audience is Audience.attendees else ["confirmed", "waitlisted"]
                else:
                    if rule.audience is Audience.booker and await storage.booking_erased(conn, dumped):
                        # The person asked to be forgotten while this fact was on its way: it
                        # names them, so nothing it would send is staged (erasure.py).
                        continue
                    person = await self._recipient(conn, rule.audience, dumped)
                    if person is not None:
                        await self._stage(
                            conn, rule, person, event.id, event.type, dumped, tenant, now, traceparent, bulk=False
                        )
                        continue
                    # The donor's sign-up travels on another topic and may not be here yet: a job
                    # that waits for it.
                    target, statuses = str(dumped.get("donor_id", "")), []
                await storage.create_fanout(
                    conn,
                    event_id=event.id,
                    event_type=event.type,
                    rule_key=rule.key(),
                    federation_id=data.federation_id,
                    organisation_id=data.organisation_id,
                    audience=rule.audience.value,
                    target=target,
                    statuses=statuses,
                    data=dumped,
                    traceparent=traceparent,
                )
            await self._stage_webhooks(conn, event, data, dumped, traceparent, now)
            return True

    async def _tenant_policy(self, conn: Conn, federation_id: str) -> TenantPolicy:
        row = await _once_per_batch(
            ("channel_config", federation_id), lambda: storage.channel_config(conn, federation_id)
        )
        quiet = self.policy.quiet_hours
        digest = self.policy.digest_seconds
        if row is not None:
            if row["quiet_hours"] is not None:
                quiet = QuietHours.parse(row["quiet_hours"]) if row["quiet_hours"] else None
            digest = row["digest_seconds"] if row["digest_seconds"] is not None else digest
        return TenantPolicy(quiet, digest)

    async def _recipient(self, conn: Conn, audience: Audience, data: Mapping[str, Any]) -> Recipient | None:
        # The person's row is read FOR SHARE: an erasure (erasure.py) locks it FOR UPDATE before
        # it looks for their messages, so a message staged from the row's old contents commits
        # before that search (and is found), or waits and reads the erased row.
        if audience is Audience.donor:
            row = await storage.get_person(conn, str(data.get("donor_id", "")), to_message=True)
            return None if row is None else _person(row)
        if audience is Audience.organiser:
            return Recipient(name="", email=data.get("organiser_email"), time_zone=data.get("time_zone"))
        if audience is Audience.booker:
            donor = await storage.get_person(conn, data["donor_id"], to_message=True) if data.get("donor_id") else None
            return _booker(data["name"], data["email"], data.get("language", "en"), donor)
        return None

    async def _overrides(self, conn: Conn, federation_id: str, organisation_id: str | None, template: str) -> Overrides:
        rows = await _once_per_batch(
            ("overrides", federation_id, organisation_id or "", template),
            lambda: storage.overrides(conn, federation_id, organisation_id, template),
        )
        return {
            ("organisation" if r["organisation_id"] else "federation", r["language"], r["part"]): r["body"]
            for r in rows
        }

    def unsubscribe_url(self, federation_id: str, address: str, channel: str) -> str:
        token = make_token(self.policy.unsubscribe_key, Unsubscribe(federation_id, address, channel))
        return f"{self.base}/v1/unsubscribe?token={token}"

    async def _stage(
        self,
        conn: Conn,
        rule: Rule,
        person: Recipient,
        event_id: str,
        event_type: str,
        data: dict[str, Any],
        tenant: TenantPolicy,
        now: datetime,
        traceparent: str | None,
        *,
        bulk: bool,
    ) -> int:
        """Stage what `rule` sends one person (a one-to-one message)."""
        federation_id: str = data["federation_id"]
        event = await storage.get_event(conn, str(data["event_id"])) if data.get("event_id") else None
        suppressed = await self._suppressed(conn, federation_id, [person])
        planned = self._plan(rule, person, data, event, suppressed)
        if not planned:
            return 0
        overrides = await self._overrides(conn, federation_id, data.get("organisation_id"), rule.template)
        job = _Staging(event_id, event_type, federation_id, data.get("organisation_id"), tenant, now, traceparent, bulk)
        return await storage.stage_deliveries(conn, [self._delivery(m, job, overrides) for m in planned])

    async def _suppressed(self, conn: Conn, federation_id: str, people: list[Recipient]) -> frozenset[tuple[str, str]]:
        """(channel, lower-cased address) of these people's addresses unsubscribed in the federation: one query."""
        addresses = {
            (channel, address_hash(address)): (channel, address.lower())
            for person in people
            for channel, address in (("email", person.email), ("sms", person.phone))
            if address
        }
        blocked = await storage.suppressed(conn, federation_id, list(addresses))
        return frozenset(addresses[key] for key in blocked if key in addresses)

    def _plan(
        self,
        rule: Rule,
        person: Recipient,
        data: dict[str, Any],
        event: dict[str, Any] | None,
        suppressed: frozenset[tuple[str, str]],
    ) -> list[PlannedMessage]:
        return plan(
            rule,
            person,
            data,
            event=event,
            public_base_url=self.base,
            suppressed=suppressed,
            donor_page=self._donor_page(rule, person),
            booking_page=self._booking_page(data, person),
        )

    def _delivery(self, message: PlannedMessage, job: _Staging, overrides: Overrides) -> storage.NewDelivery:
        """One planned message rendered into the delivery row that stores it (no I/O)."""
        unsubscribe = (
            self.unsubscribe_url(job.federation_id, message.recipient, message.channel)
            if message.channel == Channel.email
            else None
        )
        rendered = self.renderer.render(message, overrides, unsubscribe)
        tenant, now = job.tenant, job.now
        status = "pending"
        due = release_at(now, message.time_zone, tenant.quiet_hours, message.priority, message.send_by)
        if message.priority is Priority.low and message.channel == Channel.email:
            status = "held"
            due = release_at(
                now + timedelta(seconds=tenant.digest_seconds), message.time_zone, tenant.quiet_hours, Priority.normal
            )
        is_sms = message.channel == Channel.sms
        return storage.NewDelivery(
            idempotency_key=message.idempotency_key(job.event_id),
            federation_id=job.federation_id,
            organisation_id=job.organisation_id,
            event_id=job.event_id,
            event_type=job.event_type,
            channel=message.channel,
            recipient=message.recipient,
            subject=rendered.subject,
            body_text=(rendered.sms or "") if is_sms else rendered.text,
            body_html=None if is_sms else rendered.html,
            traceparent=job.traceparent,
            template=message.template,
            language=rendered.language,
            priority=int(message.priority),
            bulk=job.bulk,
            person_ref=message.person_ref,
            action_url=message.action_url,
            unsubscribe_url=unsubscribe,
            segments=rendered.sms_segments if is_sms else None,
            status=status,
            next_attempt_at=due,
        )

    async def _stage_webhooks(
        self,
        conn: Conn,
        event: CloudEvent,
        data: EventData,
        dumped: dict[str, Any],
        traceparent: str | None,
        now: datetime,
    ) -> None:
        subscriptions = await _once_per_batch(
            ("subscriptions", data.federation_id, data.organisation_id or ""),
            lambda: storage.subscriptions_for(conn, data.federation_id, data.organisation_id),
        )
        wanted = [s for s in subscriptions if webhooks.wants(s["event_types"], event.type)]
        if not wanted:
            return
        public = {k: v for k, v in dumped.items() if k not in SECRET_FIELDS}
        body = webhooks.payload(event.type, event.time or now, {"id": event.id, **public}).decode("utf-8")
        await storage.stage_deliveries(
            conn,
            [
                storage.NewDelivery(
                    idempotency_key=f"{event.id}:{subscription['subscription_id']}:webhook",
                    federation_id=data.federation_id,
                    organisation_id=subscription["organisation_id"],
                    event_id=event.id,
                    event_type=event.type,
                    channel="webhook",
                    recipient=str(subscription["subscription_id"]),
                    subject=event.type,
                    body_text=body,
                    body_html=None,
                    traceparent=traceparent,
                    template="",
                    priority=int(Priority.normal),
                    subscription_id=subscription["subscription_id"],
                )
                for subscription in wanted
            ],
        )

    # -- background jobs -------------------------------------------------------------------

    async def expand_next_job(self, uow: Transactions) -> int:
        """Expand one batch of one waiting job; returns the number of deliveries staged (or -1: nothing to do).

        The job claimed decides the federation, so the transaction is opened for none.
        """
        now = datetime.now(UTC)
        async with uow() as tx:
            conn = tx.conn
            job = await storage.claim_fanout(conn)
            if job is None:
                return -1
            rule = RULES_BY_KEY.get(job["rule_key"])
            data: dict[str, Any] = json.loads(job["data"])
            if rule is None:
                await storage.advance_fanout(conn, job["fanout_id"], job["after_booking"], 0, done=True)
                return 0
            tenant = await self._tenant_policy(conn, job["federation_id"])
            if job["audience"] == Audience.donor.value:
                person = await self._recipient(conn, Audience.donor, data)
                if person is None:
                    give_up = now - job["created_at"] > UNKNOWN_DONOR_PATIENCE
                    if give_up:
                        log.warning("no donor %s for %s; message dropped", job["target"], job["event_type"])
                    await storage.postpone_fanout(conn, job["fanout_id"], min(2.0 ** job["tries"], 60.0), give_up)
                    return 0
                staged = await self._stage(
                    conn,
                    rule,
                    person,
                    job["event_id"],
                    job["event_type"],
                    data,
                    tenant,
                    now,
                    job["traceparent"],
                    bulk=False,
                )
                await storage.advance_fanout(conn, job["fanout_id"], "", staged, done=True)
                return staged
            return await self._expand_page(conn, job, rule, data, tenant, now)

    async def _expand_page(
        self, conn: Conn, job: asyncpg.Record, rule: Rule, data: dict[str, Any], tenant: TenantPolicy, now: datetime
    ) -> int:
        """One page of an event-wide job, set-based: the event, the overrides and the suppressions of the
        whole page read once each, every delivery written by one statement (re-running a page adds nothing:
        the idempotency keys are taken)."""
        page_size = self.policy.fanout_batch
        rows = await storage.attendees_page(conn, job["target"], job["statuses"], job["after_booking"], page_size)
        staged = 0
        if rows:
            event = await storage.get_event(conn, job["target"])
            overrides = await self._overrides(conn, job["federation_id"], job["organisation_id"], rule.template)
            people = [_attendee(row) for row in rows]
            suppressed = await self._suppressed(conn, job["federation_id"], people)
            staging = _Staging(
                job["event_id"],
                job["event_type"],
                job["federation_id"],
                job["organisation_id"],
                tenant,
                now,
                job["traceparent"],
                bulk=True,
            )
            deliveries = [
                self._delivery(message, staging, overrides)
                for row, person in zip(rows, people, strict=True)
                for message in self._plan(rule, person, {**data, "booking_id": row["booking_id"]}, event, suppressed)
            ]
            staged = await storage.stage_deliveries(conn, deliveries)
        last = rows[-1]["booking_id"] if rows else job["after_booking"]
        await storage.advance_fanout(conn, job["fanout_id"], last, staged, done=len(rows) < page_size)
        return staged

    async def make_digests(self, uow: Transactions, limit: int = 20) -> int:
        """Fold each due recipient's held messages into one digest email (any federation's); -1: none due."""
        made = 0
        async with uow() as tx:
            conn = tx.conn
            for group in await storage.due_digests(conn, limit):
                items = await storage.claim_held(conn, group["federation_id"], group["recipient"])
                if not items:
                    continue
                digest_id = uuid.uuid4()
                holder = link_holder(items[0]["person_ref"], group["recipient"])
                planned = PlannedMessage(
                    template="digest",
                    channel="email",
                    recipient=group["recipient"],
                    language=items[0]["language"],
                    context={
                        "name": "",
                        "items": [
                            {"subject": i["subject"], "action_url": self._rebound(i, group["recipient"], holder)}
                            for i in items
                        ],
                    },
                    priority=Priority.normal,
                )
                unsubscribe = self.unsubscribe_url(group["federation_id"], group["recipient"], "email")
                overrides = await self._overrides(conn, group["federation_id"], None, "digest")
                rendered = self.renderer.render(planned, overrides, unsubscribe)
                await storage.stage_delivery(
                    conn,
                    delivery_id=digest_id,
                    idempotency_key=f"digest:{items[0]['delivery_id']}",
                    federation_id=group["federation_id"],
                    organisation_id=None,
                    event_id=f"digest:{digest_id}",
                    event_type=DIGEST_TYPE,
                    channel="email",
                    recipient=group["recipient"],
                    subject=rendered.subject,
                    body_text=rendered.text,
                    body_html=rendered.html,
                    traceparent=items[0]["traceparent"],
                    template="digest",
                    language=rendered.language,
                    priority=int(Priority.normal),
                    person_ref=items[0]["person_ref"],
                    unsubscribe_url=unsubscribe,
                )
                await storage.mark_digested(conn, [i["delivery_id"] for i in items], digest_id)
                made += 1
        return made or -1

    def _rebound(self, item: asyncpg.Record, recipient: str, holder: str) -> str | None:
        """A held message's link as the digest (sent to `holder`) carries it: still a reference."""
        url: str | None = item["action_url"]
        if not url:
            return url
        own = link_holder(item["person_ref"], recipient)
        return rebind_references(url, self.policy.donor_link_secret, own, holder)

    # -- one-click unsubscribe -------------------------------------------------------------

    def check_token(self, token: str) -> Unsubscribe | None:
        """Who an unsubscribe link is for, or None when this service did not make it."""
        return read_token(self.policy.unsubscribe_key, token)

    async def unsubscribe(self, uow: Transactions, token: str) -> Unsubscribe:
        """Suppress the address the token names, in its federation, and stop what still waits for it."""
        who = self.check_token(token)
        if who is None:
            raise NotFound("unsubscribe token", token, detail="This unsubscribe token is not valid.")
        async with uow(Tenant(who.federation_id)) as tx:
            await storage.suppress(
                tx.conn, who.federation_id, who.channel, address_hash(who.address), who.address, "one-click unsubscribe"
            )
        return who


def _person(row: asyncpg.Record) -> Recipient:
    """A donor as this service knows them, with the purposes they consented to."""
    return replace(_booker(row["name"], row["email"], row["language"], row), purposes=frozenset(row["purposes"]))


def _booker(name: str, email: str, language: str, donor: asyncpg.Record | None) -> Recipient:
    """The person who booked, with their donor preferences when they are a donor."""
    if donor is None:
        return Recipient(name=name, email=email, language=language)
    return Recipient(
        name=name,
        email=email,
        phone=donor["phone"],
        language=language,
        time_zone=donor["time_zone"],
        email_ok=donor["email_ok"],
        sms_ok=donor["sms_ok"],
        active=donor["status"] != DonorStatus.withdrawn.value,
        ref=donor["donor_id"],
    )


def _attendee(row: asyncpg.Record) -> Recipient:
    known = row["donor_status"] is not None
    return Recipient(
        name=row["name"],
        email=row["email"],
        phone=row["phone"] if known else None,
        language=row["language"],
        time_zone=row["time_zone"] if known else None,
        email_ok=row["email_ok"] if known else True,
        sms_ok=row["sms_ok"] if known else False,
        active=row["donor_status"] != DonorStatus.withdrawn.value,
        ref=row["donor_id"],
    )
