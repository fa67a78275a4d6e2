"""From a domain event to the messages it causes: one table, read by pure functions.

Adding an event type that needs a message is one `Rule` in `RULES` (and its templates).
Who the audience is (a donor by id, the person who booked, the organiser, everyone booked
on an event) is resolved by the service layer from this service's own read models; what
each recipient gets, on which channels and when, is decided here.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pitchin_core.contracts.common import EventData
from pitchin_core.contracts.donors import DonorConfirmationRequestedV1, DonorRegisteredV1


class Channel(StrEnum):
    email = "email"
    sms = "sms"
    webhook = "webhook"


class Priority(IntEnum):
    """Lower goes first. Urgent ignores quiet hours; low is digested."""

    urgent = 0
    normal = 1
    low = 2


class Audience(StrEnum):
    donor = "donor"  # data.donor_id, looked up in the donors read model
    # The person the event itself names (data.name, data.email, data.language): who booked, or
    # who asked to sign up and must confirm it (no donor exists yet).
    booker = "booker"
    organiser = "organiser"  # data.organiser_email
    attendees = "attendees"  # everyone with a confirmed place at data.event_id
    booked = "booked"  # confirmed and waitlisted at data.event_id


# Links an event may carry itself; they hold a donor's credential, so never in webhooks or logs.
PRODUCER_LINKS = ("accept_url", "decline_url", "offers_url", "confirm_url")
SECRET_FIELDS = frozenset({*PRODUCER_LINKS, "offer_token"})
# The action of a rule whose link is one the event carries (a PRODUCER_LINKS name, not a path):
# the double opt-in link signups made, with its one-time token.
CONFIRM_LINK = "confirm_url"
# Types that name a person who has not (yet) agreed to be known to the federation's systems:
# their email only, never a tenant's webhook (a held sign-up is not a donor).
NOT_FOR_WEBHOOKS = frozenset({DonorConfirmationRequestedV1.event_type})
EVENT_WIDE = frozenset({Audience.attendees, Audience.booked})
# The action of a rule whose link is the donor's own signed page (their offers, bookings, record).
DONOR_PAGE = "/me"
# The action of a rule whose link is the attendee's signed booking page (view and cancel): a
# bare booking id opens nothing (issue 17), so the service signs `/bookings/b1.…` per booking.
BOOKING_PAGE = "/bookings"
# The action of a rule whose link is the feedback form on the attendee's signed booking page.
FEEDBACK_PAGE = "/bookings/feedback"
# The offer's page on the web front, opened with the offer's token when the event carries one.
OFFER_PAGE = "/offers/{offer_id}"
EMAIL_AND_SMS = (Channel.email, Channel.sms)
EMAIL = (Channel.email,)


@dataclass(frozen=True)
class Rule:
    """One row of the event → message table."""

    event_type: str
    template: str
    audience: Audience
    channels: tuple[Channel, ...]
    priority: Priority
    action: str  # path of the link back to the action, formatted with the event's fields; or a PRODUCER_LINKS name
    purpose: str | None = None  # consent purpose the donor must have agreed to
    send_by: str | None = None  # field (of the data, or "event.<field>") after which waiting is pointless
    applies: Callable[[Mapping[str, Any]], bool] | None = None
    urgent_if: Callable[[Mapping[str, Any]], bool] | None = None  # raises the priority for this event

    def priority_for(self, data: Mapping[str, Any]) -> Priority:
        return Priority.urgent if self.urgent_if is not None and self.urgent_if(data) else self.priority

    def key(self) -> str:
        return f"{self.event_type}:{self.template}"


def _by_organiser(data: Mapping[str, Any]) -> bool:
    return bool(data.get("by_organiser"))


def _by_themselves(data: Mapping[str, Any]) -> bool:
    return not data.get("by_organiser")


def _first_attendance(data: Mapping[str, Any]) -> bool:
    return data.get("first_time", True) is not False


def _critical(data: Mapping[str, Any]) -> bool:
    return data.get("urgency") == "critical"


def _where_changed(data: Mapping[str, Any]) -> bool:
    return bool({"venue_name", "venue_address", "online_url"} & set(data.get("changed") or ()))


U, N, L = Priority.urgent, Priority.normal, Priority.low
D, B, ORG, A, AB = Audience.donor, Audience.booker, Audience.organiser, Audience.attendees, Audience.booked

# fmt: off
RULES: tuple[Rule, ...] = (
    # donors: the donor's own action is answered at once. The confirmation of a public sign-up
    # (double opt-in) is transactional, like a password reset: urgent, so neither quiet hours
    # nor a digest hold it; email only, as the address is what it confirms.
    Rule("org.pitchin.donor.confirmation-requested.v1", "signup_confirm", B, EMAIL, U, CONFIRM_LINK),
    Rule("org.pitchin.donor.registered.v1", "donor_welcome", D, EMAIL, U, DONOR_PAGE),
    # matching: offers and assignments, to the donor (the offer page opens with the offer's token)
    Rule("org.pitchin.offer.made.v1", "offer_made", D, EMAIL_AND_SMS, N, OFFER_PAGE,
         purpose="matching", send_by="expires_at", urgent_if=_critical),
    Rule("org.pitchin.offer.expired.v1", "offer_expired", D, EMAIL, L, DONOR_PAGE),
    Rule("org.pitchin.offer.cancelled.v1", "offer_cancelled", D, EMAIL, N, DONOR_PAGE),
    Rule("org.pitchin.assignment.confirmed.v1", "assignment_confirmed", D, EMAIL, N, DONOR_PAGE),
    Rule("org.pitchin.assignment.released.v1", "assignment_released", D, EMAIL, N, DONOR_PAGE),
    Rule("org.pitchin.assignment.completed.v1", "assignment_completed", D, EMAIL, N, DONOR_PAGE),
    # bookings: to the person who booked
    Rule("org.pitchin.booking.confirmed.v1", "booking_confirmed", B, EMAIL, U, BOOKING_PAGE),
    Rule("org.pitchin.booking.waitlisted.v1", "booking_waitlisted", B, EMAIL, U, BOOKING_PAGE),
    Rule("org.pitchin.booking.promoted.v1", "booking_promoted", B, EMAIL_AND_SMS, U, BOOKING_PAGE),
    # waitlist offers (issue 22): the offer is urgent (it lapses) and pointless once expired; a
    # lapsed one is told at once too, while booking again may still find a place
    Rule("org.pitchin.booking.offered.v1", "booking_offered", B, EMAIL_AND_SMS, U, BOOKING_PAGE,
         send_by="expires_at"),
    Rule("org.pitchin.booking.offer-accepted.v1", "booking_offer_accepted", B, EMAIL, U, BOOKING_PAGE),
    Rule("org.pitchin.booking.offer-expired.v1", "booking_offer_expired", B, EMAIL, U, "/events/{event_id}"),
    Rule("org.pitchin.booking.cancelled.v1", "booking_cancelled", B, EMAIL, U, "/events/{event_id}",
         applies=_by_themselves),
    Rule("org.pitchin.booking.cancelled.v1", "booking_cancelled_by_organiser", B, EMAIL_AND_SMS, U,
         "/events/{event_id}", applies=_by_organiser),
    # after the event: the people who came are thanked once, with a short feedback link
    Rule("org.pitchin.booking.attended.v1", "attended_thanks", B, EMAIL, N, FEEDBACK_PAGE,
         applies=_first_attendance),
    # events: to the organiser, and event-wide to the people who booked
    Rule("org.pitchin.event.created.v1", "event_created", ORG, EMAIL, U, "/events/{event_id}"),
    Rule("org.pitchin.event.reminder-due.v1", "event_reminder", A, EMAIL_AND_SMS, N, "/events/{event_id}",
         send_by="starts_at"),
    Rule("org.pitchin.event.rescheduled.v1", "event_rescheduled", AB, EMAIL_AND_SMS, N, "/events/{event_id}",
         send_by="starts_at"),
    Rule("org.pitchin.event.updated.v1", "event_updated", A, EMAIL, N, "/events/{event_id}",
         applies=_where_changed, send_by="starts_at"),
    Rule("org.pitchin.event.cancelled.v1", "event_cancelled", AB, EMAIL_AND_SMS, U, "/events/{event_id}"),
    Rule("org.pitchin.livestream.started.v1", "livestream_started", A, EMAIL_AND_SMS, U, "/events/{event_id}"),
    Rule("org.pitchin.livestream.recording-available.v1", "recording_available", A, EMAIL, L,
         "/events/{event_id}"),
)
# fmt: on


def rules_for(event_type: str, data: Mapping[str, Any]) -> list[Rule]:
    return [r for r in RULES if r.event_type == event_type and (r.applies is None or r.applies(data))]


@dataclass(frozen=True)
class Recipient:
    """A person as this service knows them: contact details, preferences, consent, zone."""

    name: str
    email: str | None
    phone: str | None = None
    language: str = "en"
    time_zone: str | None = None
    email_ok: bool = True
    sms_ok: bool = False
    purposes: frozenset[str] | None = None  # None: not a donor, no consent record applies
    active: bool = True
    ref: str | None = None  # donor id, so an erasure finds their messages


@dataclass(frozen=True)
class PlannedMessage:
    """A message to send: which template, to whom, on which channel, with what context."""

    template: str
    channel: str
    recipient: str
    language: str
    context: dict[str, Any] = field(default_factory=dict)
    priority: Priority = Priority.normal
    time_zone: str | None = None
    send_by: datetime | None = None
    person_ref: str | None = None
    action_url: str | None = None

    def idempotency_key(self, event_id: str) -> str:
        return f"{event_id}:{self.recipient.lower()}:{self.channel}"


def link_holder(person_ref: str | None, address: str | None) -> str:
    """Whom a message's link references are bound to (pitchin_core.links.link_reference): the donor
    when the person is one, else their address. A person's email and SMS share one planned context,
    so it is the person, not the channel's address; the sender names a row's holder the same way."""
    if person_ref:
        return f"donor:{person_ref}"
    return f"address:{(address or '').strip().lower()}"


def channels_for(rule: Rule, person: Recipient, suppressed: frozenset[tuple[str, str]] = frozenset()) -> list[Channel]:
    """The rule's channels this person can and wants to be reached on."""
    if not person.active:
        return []
    if rule.purpose and person.purposes is not None and rule.purpose not in person.purposes:
        return []
    chosen: list[Channel] = []
    for channel in rule.channels:
        address = person.email if channel is Channel.email else person.phone if channel is Channel.sms else None
        wanted = person.email_ok if channel is Channel.email else person.sms_ok if channel is Channel.sms else False
        if address and wanted and (channel.value, address.lower()) not in suppressed:
            chosen.append(channel)
    return chosen


def links(data: Mapping[str, Any], base: str, booking_page: str | None = None) -> dict[str, str]:
    """Every link a message may offer, from the ids the event carries (`booking_page`: the
    attendee's signed booking path, made by the service that holds the secret)."""
    out: dict[str, str] = {}
    if event_id := data.get("event_id"):
        out["event_url"] = f"{base}/events/{event_id}"
        out["calendar_url"] = f"{base}/v1/events/{event_id}.ics"
    if booking_page:
        out["booking_url"] = f"{base}{booking_page}"
        out["cancel_url"] = f"{base}{booking_page}/cancel"
        out["feedback_url"] = f"{base}{booking_page}/feedback"
    if offer_id := data.get("offer_id"):
        out["offer_url"] = f"{base}/offers/{offer_id}"
        out["accept_url"] = f"{base}/offers/{offer_id}/accept"
        out["decline_url"] = f"{base}/offers/{offer_id}/decline"
    if need_id := data.get("need_id"):
        out["need_url"] = f"{base}/needs/{need_id}"
    return out


def format_when(moment: datetime | str | None, zone: str | None) -> str:
    """``Mon 4 Oct 2027, 13:30 BST`` in the given zone (the event's or the recipient's)."""
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    try:
        local = moment.astimezone(ZoneInfo(zone)) if zone else moment
    except (ZoneInfoNotFoundError, ValueError):
        local = moment
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} {local.tzname() or ''}".strip()


def _field(name: str, data: Mapping[str, Any], event: Mapping[str, Any]) -> Any:
    if name.startswith("event."):
        return event.get(name.removeprefix("event."))
    return data.get(name)


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def plan(
    rule: Rule,
    person: Recipient,
    data: Mapping[str, Any],
    *,
    event: Mapping[str, Any] | None = None,
    public_base_url: str,
    suppressed: frozenset[tuple[str, str]] = frozenset(),
    donor_page: str | None = None,
    booking_page: str | None = None,
) -> list[PlannedMessage]:
    """The messages ``rule`` sends to ``person`` (none if they cannot or will not be reached).

    ``donor_page`` is the path of the donor's own page with a reference to their link
    (``/me/~d1~…~``, signed when the message is sent), made by the service, which holds the
    secret; rules whose action is DONOR_PAGE link there. ``booking_page`` likewise
    (``/bookings/~b1~…~``) for the booking the message is about; without one, booking links fall
    back to the event's page.
    """
    event = event or {}
    base = public_base_url.rstrip("/")
    merged = {**event, **data}
    link_set = links(merged, base, booking_page)
    # A donor's own page, signed for them by the caller; without one, the front page.
    link_set["profile_url"] = base + (donor_page or "/")
    # Links the producer made (e.g. matching's signed accept/decline links) win over ours.
    link_set.update({k: str(data[k]) for k in PRODUCER_LINKS if data.get(k)})
    try:
        if rule.action == DONOR_PAGE:
            action_url = link_set["profile_url"]
        elif rule.action == BOOKING_PAGE:
            action_url = link_set.get("booking_url") or link_set.get("event_url", base)
        elif rule.action == FEEDBACK_PAGE:
            action_url = link_set.get("feedback_url") or link_set.get("event_url", base)
        elif rule.action in PRODUCER_LINKS:
            action_url = link_set.get(rule.action, base)
        else:
            action_url = base + rule.action.format(**merged)
    except (KeyError, IndexError):
        action_url = base
    if rule.action == OFFER_PAGE and data.get("offer_token"):
        action_url += "?token=" + quote(str(data["offer_token"]), safe="")
    zone = event.get("time_zone") or person.time_zone
    context: dict[str, Any] = {
        "data": dict(data),
        "event": dict(event),
        "name": person.name,
        "title": merged.get("title") or merged.get("need_title") or "",
        "action_url": action_url,
        **link_set,
        "starts": format_when(event.get("starts_at") or data.get("starts_at"), zone),
        "ends": format_when(event.get("ends_at") or data.get("ends_at"), zone),
        "until": format_when(data.get("expires_at") or data.get("offered_until"), zone),  # a waitlist offer's deadline
    }
    send_by = _as_datetime(_field(rule.send_by, data, event)) if rule.send_by else None
    priority = rule.priority_for(data)
    planned: list[PlannedMessage] = []
    for channel in channels_for(rule, person, suppressed):
        address = person.email if channel is Channel.email else person.phone
        assert address is not None
        planned.append(
            PlannedMessage(
                template=rule.template,
                channel=channel.value,
                recipient=address,
                language=person.language,
                context=context,
                priority=priority,
                time_zone=person.time_zone or event.get("time_zone"),
                send_by=send_by,
                person_ref=person.ref,
                action_url=action_url,
            )
        )
    return planned


def plan_messages(data: EventData, *, public_base_url: str, donor_page: str | None = None) -> list[PlannedMessage]:
    """Messages for events whose recipient is in the event itself (a convenience for tests)."""
    dumped = data.model_dump(mode="json")
    person: Recipient
    if isinstance(data, DonorRegisteredV1):
        person = Recipient(
            name=data.name,
            email=str(data.email),
            phone=data.phone,
            language=data.contact.language,
            time_zone=data.availability.time_zone,
            email_ok=data.contact.email,
            sms_ok=data.contact.sms,
            purposes=frozenset(data.consent.purposes),
            ref=data.donor_id,
        )
    elif "organiser_email" in dumped:
        person = Recipient(name="", email=dumped["organiser_email"])
    elif "booking_id" in dumped or isinstance(data, DonorConfirmationRequestedV1):
        person = Recipient(name=dumped["name"], email=dumped["email"], language=dumped.get("language", "en"))
    else:
        return []
    out: list[PlannedMessage] = []
    for rule in rules_for(data.event_type, dumped):
        if rule.audience in EVENT_WIDE:
            continue
        out += plan(
            rule,
            person,
            dumped,
            event=dumped if "organiser_email" in dumped else None,
            public_base_url=public_base_url,
            donor_page=donor_page,
        )
    return out


def message_id(idempotency_key: str, domain: str) -> str:
    """The same Message-ID for every attempt, so a mail client folds a repeat into one."""
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


def next_attempt(now: datetime, attempts: int, rng: random.Random, base: float = 2.0, cap: float = 900.0) -> datetime:
    """Exponential backoff with full jitter (AWS architecture blog's variant)."""
    ceiling = min(cap, base * (2 ** max(attempts - 1, 0)))
    return now + timedelta(seconds=rng.uniform(base / 2, max(ceiling, base / 2)))
