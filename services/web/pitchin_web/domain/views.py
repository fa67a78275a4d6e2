"""View models: what a page shows, computed from the services' answers (pure; `now` passed in)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pitchin_web.domain import reasons as plain
from pitchin_web.domain.timefmt import as_datetime, format_span, format_when
from pitchin_web.messages import Translator

BOOKABLE = ("published", "live")


@dataclass(frozen=True)
class Places:
    capacity: int | None
    confirmed: int
    waitlisted: int
    offered: int = 0  # held for people on the waitlist who were offered a freed place (issue 22)

    @property
    def free(self) -> int | None:
        return None if self.capacity is None else max(self.capacity - self.confirmed - self.offered, 0)

    def waitlist_position(self, waitlist: bool) -> int | None:
        """The position a new booking would get, when the event is full and keeps a waitlist."""
        if self.free is None or self.free > 0 or not waitlist:
            return None
        return self.waitlisted + 1


@dataclass(frozen=True)
class PublicEventView:
    event_id: str
    title: str
    kind: str
    description: str
    status: str
    when: str
    when_event: str | None
    reader_zone: str
    starts_iso: str
    venue_name: str | None
    venue_address: str | None
    online_url: str | None
    hashtag: str | None
    live: bool
    cancelled: bool
    closed: bool
    places: Places
    full: bool
    waitlist_position: int | None
    can_book: bool
    free_places: bool
    co_hosts: list[str]
    calendar_url: str


def places_of(event: Mapping[str, Any], bookings: Mapping[str, Any] | None) -> Places:
    """Signups' live counts when it has them (`/places`); else scheduling's copy (learned from events)."""
    if bookings is not None:
        return Places(
            bookings.get("capacity", event.get("capacity")),
            int(bookings.get("confirmed") or 0),
            int(bookings.get("waitlisted") or 0),
            int(bookings.get("offered") or 0),
        )
    counts = event.get("attendees") or {}
    return Places(event.get("capacity"), int(counts.get("confirmed", 0)), int(counts.get("waitlisted", 0)))


def public_event(
    event: Mapping[str, Any], bookings: Mapping[str, Any] | None, reader_zone: str, now: datetime, language: str = "en"
) -> PublicEventView:
    zone = str(event["time_zone"])
    places = places_of(event, bookings)
    status = str(event["status"])
    starts = as_datetime(event["starts_at"])
    closes = as_datetime(event.get("booking_deadline")) or starts
    closed = closes is not None and now >= closes
    full = places.free == 0
    position = places.waitlist_position(bool(event.get("waitlist", True)))
    live = status == "live" or event.get("livestream_status") == "live"
    return PublicEventView(
        event_id=str(event["event_id"]),
        title=str(event["title"]),
        kind=str(event["kind"]),
        description=str(event.get("description") or ""),
        status=status,
        when=format_span(event["starts_at"], event["ends_at"], reader_zone, language),
        when_event=None if reader_zone == zone else format_span(event["starts_at"], event["ends_at"], zone, language),
        reader_zone=reader_zone,
        starts_iso=starts.isoformat() if starts else "",
        venue_name=event.get("venue_name"),
        venue_address=event.get("venue_address"),
        online_url=event.get("online_url"),
        hashtag=_hashtag(event.get("hashtag")),
        live=live,
        cancelled=status == "cancelled",
        closed=closed,
        places=places,
        full=full,
        waitlist_position=position,
        can_book=status in BOOKABLE and not closed and (not full or position is not None),
        free_places=bool(event.get("free_places", True)),
        co_hosts=list(event.get("co_hosts") or []),
        calendar_url=f"/v1/events/{event['event_id']}.ics",
    )


def _hashtag(tag: Any) -> str | None:
    if not tag:
        return None
    text = str(tag)
    return text if text.startswith("#") else f"#{text}"


@dataclass(frozen=True)
class Reason:
    name: str
    points: float
    why: str  # in the donor's words (domain.reasons), not the engine's


@dataclass(frozen=True)
class OfferView:
    offer_id: str
    need_title: str
    status: str
    hours: float | None
    deadline: str
    expires: str
    urgency: str
    reasons: list[Reason]
    open: bool
    # Who asks and for which fight, where the services give them (see pages/offers.py).
    organisation: str = ""
    fight_title: str = ""
    fight_story: str = ""
    task: str = ""
    contact: str = ""


def offer_view(
    offer: Mapping[str, Any],
    zone: str,
    now: datetime,
    language: str = "en",
    skill_labels: Mapping[str, str] | None = None,
) -> OfferView:
    """An offer as the donor reads it: the task, who asks, and the three or four reasons that mattered."""
    expires_at = as_datetime(offer.get("expires_at"))
    explanation = offer.get("explanation") or []
    said = plain.phrased(explanation, "donor", Translator(language), skill_labels)
    reasons = [Reason(c.name, c.points, why) for c, why in said]
    status = str(offer.get("status", "pending"))
    return OfferView(
        offer_id=str(offer["offer_id"]),
        need_title=str(offer.get("need_title") or offer.get("need_id") or ""),
        status=status,
        hours=offer.get("estimated_hours"),
        deadline=format_when(offer.get("deadline"), zone, language),
        expires=format_when(expires_at, zone, language),
        urgency=str(offer.get("urgency") or "normal"),
        reasons=reasons,
        open=status == "pending" and (expires_at is None or expires_at > now),
        organisation=_text(offer.get("organisation_name")),
        fight_title=_text(offer.get("fight_title")),
        fight_story=_text(offer.get("fight_description")),
        task=_text(offer.get("need_description") or offer.get("description")),
        contact=_text(offer.get("contact")),
    )


def _text(value: Any) -> str:
    return str(value).strip() if isinstance(value, str) else ""


# -- the organiser's need page: people by name, reasons in words, the escalation's steps ----------


@dataclass(frozen=True)
class Person:
    """A donor as an organiser may see them before they say yes: a name and a short profile, no contact."""

    donor_id: str
    name: str  # "" when signups did not give a profile (out of the need's lending scope, or unanswered)
    lent: bool = False
    skills: list[tuple[str, str]] = field(default_factory=list)  # (label, level), strongest first
    languages: list[str] = field(default_factory=list)
    remote: bool | None = None


TOP_SKILLS = 3


def people(profiles: Mapping[str, Any] | None, skill_labels: Mapping[str, str]) -> dict[str, Person]:
    """Signups' candidate profiles by donor id (an empty answer when it gave none)."""
    found: dict[str, Person] = {}
    for p in (profiles or {}).get("profiles") or []:
        if not isinstance(p, Mapping) or not p.get("donor_id") or not str(p.get("name") or "").strip():
            continue
        held = sorted(
            (s for s in p.get("skills") or [] if isinstance(s, Mapping) and s.get("skill")),
            key=lambda s: -_level_rank(s.get("level")),
        )
        found[str(p["donor_id"])] = Person(
            donor_id=str(p["donor_id"]),
            name=str(p["name"]).strip(),
            lent=bool(p.get("lent")),
            skills=[
                (plain.skill_label(str(s["skill"]), skill_labels), str(s.get("level") or "")) for s in held[:TOP_SKILLS]
            ],
            languages=[plain.language_name(str(tag)) for tag in p.get("languages") or []],
            remote=bool(p["remote"]) if "remote" in p else None,
        )
    return found


def _level_rank(level: Any) -> int:
    return plain.LEVELS.index(level) if level in plain.LEVELS else -1


def person(found: Mapping[str, Person], donor_id: Any) -> Person:
    """The donor by name where signups gave their profile, else a neutral stand-in (never the raw id)."""
    return found.get(str(donor_id)) or Person(donor_id=str(donor_id), name="")


@dataclass(frozen=True)
class CandidateView:
    who: Person
    score: float
    offer_status: str | None
    reasons: list[str]


def candidate_rows(
    answer: Mapping[str, Any] | None, found: Mapping[str, Person], language: str, skill_labels: Mapping[str, str]
) -> list[CandidateView]:
    """Matching's candidates by name, each with the three or four components that set them apart."""
    t = Translator(language)
    return [
        CandidateView(
            who=person(found, c.get("donor_id")),
            score=float(c.get("score") or 0),
            offer_status=c.get("offer_status"),
            reasons=plain.plain_reasons(c.get("components"), "organiser", t, skill_labels),
        )
        for c in (answer or {}).get("candidates") or []
    ]


@dataclass(frozen=True)
class AskedView:
    offer_id: str
    who: Person
    status: str
    assignment_status: str | None

    @property
    def awaiting_confirmation(self) -> bool:
        """Said yes, and the organiser has neither confirmed nor released them yet."""
        return self.status == "accepted" and self.assignment_status in (None, "accepted")

    @property
    def confirmed(self) -> bool:
        return self.assignment_status == "confirmed"


def asked_rows(offers: Iterable[Mapping[str, Any]], found: Mapping[str, Person]) -> list[AskedView]:
    return [
        AskedView(
            offer_id=str(o["offer_id"]),
            who=person(found, o.get("donor_id")),
            status=str(o.get("status") or ""),
            assignment_status=o.get("assignment_status"),
        )
        for o in offers
    ]


def placed(offers: Iterable[Mapping[str, Any]]) -> int:
    """Donors confirmed on a need, as matching has them (it confirms them; signups learns it later)."""
    return sum(1 for o in offers if o.get("assignment_status") in ("confirmed", "completed"))


@dataclass(frozen=True)
class EscalationStep:
    when: str
    at_iso: str
    what: str


@dataclass(frozen=True)
class EscalationView:
    steps: list[EscalationStep]
    next_step: str  # when the next widening is due, in words; "" when none is planned


_REACH = re.compile(r"reach (\d+) km")


def escalation_view(answer: Mapping[str, Any] | None, zone: str, language: str = "en") -> EscalationView | None:
    """An urgent need's escalation in words, times in the reader's zone; None for a need without one."""
    if not answer:
        return None
    steps = [s for s in answer.get("steps") or [] if isinstance(s, Mapping)]
    due = answer.get("next_step_at")
    if not steps and not due:
        return None
    t = Translator(language)
    shown = [
        EscalationStep(
            when=format_when(s.get("taken_at"), zone, language),
            at_iso=(at.isoformat() if (at := as_datetime(s.get("taken_at"))) else ""),
            what=_step_words(s, t),
        )
        for s in steps
    ]
    stood_down = any(s.get("kind") == "stood-down" for s in steps)
    if due and not stood_down:
        next_step = t("escalation.next", when=format_when(due, zone, language))
    else:
        next_step = t("escalation.filled") if stood_down else t("escalation.no_next")
    return EscalationView(steps=shown, next_step=next_step)


def _step_words(step: Mapping[str, Any], t: Translator) -> str:
    kind = str(step.get("kind") or "")
    offers = int(step.get("offers_wanted") or 0)
    if kind == "widened":
        reach = _REACH.search(str(step.get("detail") or ""))
        if reach:
            return t("escalation.widened", step=step.get("step", ""), km=reach.group(1), offers=offers)
        return t("escalation.widened.plain", step=step.get("step", ""), offers=offers)
    if kind in ("first-wave", "replaced", "reclaimed", "stood-down"):
        return t(f"escalation.{kind}", offers=offers)
    return t("escalation.other")


@dataclass
class OrgTotals:
    organisation_id: str
    donors: int = 0
    open_needs: int = 0
    filled: int = 0
    hours: float = 0.0
    upcoming_events: int = 0


@dataclass
class FederationTotals:
    organisations: list[OrgTotals] = field(default_factory=list)


FILLED = ("filled", "partly-filled")
OPEN = ("open", "partly-filled")


def federation_totals(
    donors: Iterable[Mapping[str, Any]],
    needs: Iterable[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
    now: datetime,
    hours_given: Iterable[Mapping[str, Any]] | None = None,
) -> list[OrgTotals]:
    """Per member organisation: donors, open and filled needs, hours given, upcoming events.

    Hours given are what organisations marked done (matching's totals); when those are not to
    be had, the estimated hours of each need times the donors assigned to it stand in.
    Donors who signed up directly (no organisation) are totalled under "".
    """
    rows: dict[str, OrgTotals] = defaultdict(lambda: OrgTotals(""))
    for d in donors:
        if d.get("status", "active") != "withdrawn":
            rows[str(d.get("organisation_id") or "")].donors += 1
    for n in needs:
        row = rows[str(n.get("organisation_id") or "")]
        status = str(n.get("status", "open"))
        assigned = len(n.get("assigned_donors") or ())  # signups lists the assigned donors' ids
        if status in OPEN:
            row.open_needs += 1
        if status in FILLED:
            row.filled += 1
        if hours_given is None:
            row.hours += float(n.get("estimated_hours") or 0) * assigned
    for h in hours_given or ():
        rows[str(h.get("organisation_id") or "")].hours = float(h.get("hours_given") or 0.0)
    for e in events:
        ends = as_datetime(e.get("ends_at"))
        if e.get("status") in BOOKABLE and ends is not None and ends > now:
            rows[str(e.get("organisation_id") or "")].upcoming_events += 1
    for key, row in rows.items():
        row.organisation_id = key
    return sorted(rows.values(), key=lambda r: (r.organisation_id == "", r.organisation_id))


@dataclass(frozen=True)
class BookingRow:
    booking_id: str
    name: str
    email: str
    status: str
    checked_in: bool
    position: int
    # A waitlist offer's deadline (issue 22): when the held place moves on to the next in line.
    offer_expires_at: str | None = None


@dataclass(frozen=True)
class EventBookings:
    """An event's bookings as the organiser reads them: who has a place, who has been offered
    one and until when, and who is waiting, in the order they will be offered."""

    confirmed: list[BookingRow]
    offered: list[BookingRow]
    waiting: list[BookingRow]


def booking_rows(items: Iterable[Mapping[str, Any]]) -> EventBookings:
    """Confirmed (by name), offered (soonest deadline first) and waitlisted (in waitlist order)."""
    confirmed, offered, waiting = [], [], []
    for item in items:
        row = BookingRow(
            booking_id=str(item["booking_id"]),
            name=str(item.get("name") or ""),
            email=str(item.get("email") or ""),
            status=str(item.get("status")),
            checked_in=item.get("checked_in_at") is not None,
            position=int(item.get("waitlist_seq") or 0),
            offer_expires_at=str(item["offer_expires_at"]) if item.get("offer_expires_at") else None,
        )
        if row.status == "confirmed":
            confirmed.append(row)
        elif row.status == "offered":
            offered.append(row)
        elif row.status == "waitlisted":
            waiting.append(row)
    confirmed.sort(key=lambda r: r.name.lower())
    offered.sort(key=lambda r: r.offer_expires_at or "")
    waiting.sort(key=lambda r: r.position)
    return EventBookings(
        confirmed=confirmed,
        offered=offered,
        waiting=[replace(r, position=i + 1) for i, r in enumerate(waiting)],
    )


@dataclass(frozen=True)
class WorkDone:
    need_title: str
    organisation_id: str
    hours_given: float
    thanks: str
    when: str


@dataclass(frozen=True)
class DonorRecordView:
    hours_given: float
    completed: int
    organisations: int
    work: list[WorkDone]
    thanks: list[WorkDone]  # the pieces of work that came with a word of thanks


def donor_record(record: Mapping[str, Any], zone: str, language: str = "en") -> DonorRecordView:
    """What a donor gave, from matching's record: totals, and each piece of work with its thanks."""
    work = [
        WorkDone(
            need_title=str(w.get("need_title") or ""),
            organisation_id=str(w.get("organisation_id") or ""),
            hours_given=float(w.get("hours_given") or 0.0),
            thanks=str(w.get("thanks") or "").strip(),
            when=format_when(w.get("completed_at"), zone, language),
        )
        for w in record.get("work") or []
    ]
    return DonorRecordView(
        # Matching's total: confirmed hours on work still going on count too (issue 22), not only work done.
        hours_given=round(float(record.get("hours_given", sum(w.hours_given for w in work))), 1),
        completed=len(work),
        organisations=len({w.organisation_id for w in work if w.organisation_id}),
        work=work,
        thanks=[w for w in work if w.thanks],
    )


@dataclass(frozen=True)
class PublisherRow:
    source: str
    label: str
    scope: list[str]  # the organisations it may publish for; empty when any
    any_organisation: bool
    rate_per_second: float
    accepted_24h: int
    rejected_24h: int
    last_seen: str
    revoked: str


def publisher_rows(items: Iterable[Mapping[str, Any]], zone: str, language: str = "en") -> list[PublisherRow]:
    """Registered publishing systems as signups lists them (active first), times in the reader's zone."""
    return [
        PublisherRow(
            source=str(p["source"]),
            label=str(p.get("label") or ""),
            scope=[str(o) for o in p.get("organisations") or []],
            any_organisation=bool(p.get("any_organisation")),
            rate_per_second=float(p.get("rate_per_second") or 0),
            accepted_24h=int(p.get("accepted_24h") or 0),
            rejected_24h=int(p.get("rejected_24h") or 0),
            last_seen=format_when(p.get("last_seen_at"), zone, language) if p.get("last_seen_at") else "",
            revoked=format_when(p.get("revoked_at"), zone, language) if p.get("revoked_at") else "",
        )
        for p in items
    ]
