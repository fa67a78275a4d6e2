"""What people type into the pages, checked and turned into the services' API payloads.

Pure: a form is a mapping of field name to the values sent (HTML sends a name once per ticked
box); each function returns the payload (or the values to keep) and the errors by field, with
message keys from `messages/`. The services check everything again: these checks are there
to put a clear message beside the field before a round trip.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pitchin_web.domain.timefmt import end_of_day, is_zone, parse_date, parse_local, parse_time

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Z]{2})?$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
HASHTAG = re.compile(r"^#?[A-Za-z0-9_]{1,100}$")
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
LEVELS = ("beginner", "intermediate", "advanced", "expert")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
URGENCIES = ("critical", "high", "normal")
FIGHT_KINDS = ("strike", "organising-drive", "advocacy", "community")
EVENT_KINDS = ("conference", "training", "panel", "livestream", "book-launch", "meet-up", "action")
CAUSES = ("labour", "community", "housing", "climate", "migrants", "health", "education")


@dataclass(frozen=True)
class FieldError:
    """A message key and its values, rendered by the page in the reader's language."""

    key: str
    values: Mapping[str, Any] = field(default_factory=dict)


Errors = dict[str, FieldError]


class Form:
    """The fields of a submitted form (application/x-www-form-urlencoded)."""

    def __init__(self, fields: Mapping[str, Sequence[str]]) -> None:
        self.fields = {k: list(v) for k, v in fields.items()}

    def get(self, name: str) -> str:
        values = self.fields.get(name) or [""]
        return values[0].strip()

    def all(self, name: str) -> list[str]:
        return [v.strip() for v in self.fields.get(name, []) if v.strip()]

    def ticked(self, name: str) -> bool:
        return bool(self.fields.get(name))


def _text(form: Form, name: str, label: str, errors: Errors, *, required: bool = True, max_len: int = 200) -> str:
    value = form.get(name)
    if required and not value:
        errors[name] = FieldError("field.missing", {"label": label})
    elif len(value) > max_len:
        errors[name] = FieldError("field.too_long", {"label": label, "max": max_len})
    return value


def _number(form: Form, name: str, low: float, high: float, errors: Errors, *, required: bool = True) -> float | None:
    raw = form.get(name).replace(",", ".")
    if not raw and not required:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        errors[name] = FieldError("field.number", {"low": _plain(low), "high": _plain(high)})
        return None
    return value


def _plain(number: float) -> str:
    return str(int(number)) if number == int(number) else str(number)


def _choice(form: Form, name: str, choices: Sequence[str], errors: Errors, default: str | None = None) -> str:
    value = form.get(name) or (default or "")
    if value not in choices:
        errors[name] = FieldError("field.choice")
    return value


def _email(form: Form, name: str, errors: Errors) -> str:
    value = form.get(name)
    if not EMAIL.match(value) or len(value) > 254:
        errors[name] = FieldError("field.email")
    return value


# -- donor sign-up, in three steps --------------------------------------------------------------


def signup_step1(form: Form, labels: Mapping[str, str]) -> tuple[dict[str, Any], Errors]:
    errors: Errors = {}
    values: dict[str, Any] = {
        "name": _text(form, "name", labels["name"], errors),
        "email": _email(form, "email", errors),
        "phone": form.get("phone"),
        "time_zone": form.get("time_zone"),
        "languages": form.get("languages") or "en",
        "remote": form.ticked("remote"),
        "city": _text(form, "city", labels["city"], errors, required=False, max_len=120),
        "country": form.get("country").upper(),
    }
    if values["phone"] and not PHONE.match(values["phone"].replace(" ", "")):
        errors["phone"] = FieldError("field.phone")
    values["phone"] = values["phone"].replace(" ", "")
    if not is_zone(values["time_zone"]):
        errors["time_zone"] = FieldError("field.time_zone")
    languages = [part.strip() for part in re.split(r"[,\s]+", values["languages"]) if part.strip()]
    if not languages or not all(LANGUAGE.match(lang) for lang in languages):
        errors["languages"] = FieldError("field.language")
    values["languages"] = ", ".join(languages)
    if values["country"] and not COUNTRY.match(values["country"]):
        errors["country"] = FieldError("field.country")
    if not values["remote"] and not values["city"]:
        errors["city"] = FieldError("field.city_needed")
    return values, errors


def signup_step2(form: Form, skills: Sequence[str]) -> tuple[dict[str, Any], Errors]:
    errors: Errors = {}
    chosen = {slug: form.get(f"skill-{slug}") for slug in skills if form.get(f"skill-{slug}")}
    if not chosen or not all(level in LEVELS for level in chosen.values()):
        errors["skills"] = FieldError("field.skills")
    hours = _number(form, "hours", 0.5, 80, errors)
    days = [d for d in form.all("days") if d in DAYS]
    start, end = form.get("from") or "18:00", form.get("to") or "21:00"
    if days:
        s, e = parse_time(start), parse_time(end)
        if s is None:
            errors["from"] = FieldError("field.time")
        if e is None:
            errors["to"] = FieldError("field.time")
        if s is not None and e is not None and e <= s:
            errors["to"] = FieldError("field.window")
    values = {
        "skills": chosen,
        "hours": form.get("hours") if hours is None else _plain(hours),
        "days": days,
        "from": start,
        "to": end,
        "causes": [c for c in form.all("causes") if c in CAUSES],
        "union_member": form.ticked("union_member"),
    }
    return values, errors


def signup_step3(form: Form, has_phone: bool) -> tuple[dict[str, Any], Errors]:
    errors: Errors = {}
    values: dict[str, Any] = {
        "contact_email": form.ticked("contact_email"),
        "contact_sms": form.ticked("contact_sms"),
        "contact_language": form.get("contact_language") or "en",
        "consent": form.ticked("consent"),
    }
    if values["contact_sms"] and not has_phone:
        errors["contact_sms"] = FieldError("field.sms_needs_phone")
    if not LANGUAGE.match(values["contact_language"]):
        errors["contact_language"] = FieldError("field.language")
    if not values["consent"]:
        errors["consent"] = FieldError("field.consent")
    return values, errors


def signup_payload(
    draft: Mapping[str, Any], *, consent_version: str, purposes: Sequence[str], now: datetime
) -> dict[str, Any]:
    """The body of signups' POST /v1/donors from the three steps' values."""
    place: dict[str, Any] = {"remote": bool(draft["remote"])}
    if draft.get("city"):
        place["city"] = draft["city"]
    if draft.get("country"):
        place["country"] = draft["country"]
    windows = [{"day": d, "start": draft["from"], "end": draft["to"]} for d in draft.get("days", [])]
    payload: dict[str, Any] = {
        "name": draft["name"],
        "email": draft["email"],
        "skills": [{"skill": s, "level": lvl} for s, lvl in draft["skills"].items()],
        "availability": {
            "hours_per_week": float(draft["hours"]),
            "time_zone": draft["time_zone"],
            "windows": windows,
        },
        "place": place,
        "languages": [lang.strip() for lang in str(draft["languages"]).split(",") if lang.strip()],
        "causes": list(draft.get("causes", [])),
        "union_member": bool(draft.get("union_member")),
        "contact": {
            "email": bool(draft["contact_email"]),
            "sms": bool(draft["contact_sms"]),
            "language": draft["contact_language"],
        },
        "consent": {"wording_version": consent_version, "purposes": list(purposes), "agreed_at": now.isoformat()},
    }
    if draft.get("phone"):
        payload["phone"] = draft["phone"]
    return payload


SIGNUP_FIELDS = {
    "name": ("name", 1),
    "email": ("email", 1),
    "phone": ("phone", 1),
    "availability.time_zone": ("time_zone", 1),
    "languages": ("languages", 1),
    "place.city": ("city", 1),
    "place.country": ("country", 1),
    "place": ("city", 1),
    "skills": ("skills", 2),
    "availability.hours_per_week": ("hours", 2),
    "availability.windows": ("to", 2),
    "availability": ("hours", 2),
    "causes": ("causes", 2),
    "contact.sms": ("contact_sms", 3),
    "contact.language": ("contact_language", 3),
    "contact": ("contact_email", 3),
    "consent": ("consent", 3),
}


def same_names(*names: str) -> dict[str, str]:
    """API fields that have the name of the form field they come from."""
    return {name: name for name in names}


def map_api_field(api_field: str, table: Mapping[str, Any]) -> Any:
    """The form field (and whatever else the table says) for an API's error path, longest prefix first."""
    path = api_field.removeprefix("body.")
    for key in sorted(table, key=len, reverse=True):
        if path == key or path.startswith(key + "."):
            return table[key]
    return None


# -- public RSVP --------------------------------------------------------------------------------


def rsvp(form: Form, labels: Mapping[str, str]) -> tuple[dict[str, Any], Errors]:
    errors: Errors = {}
    payload = {"name": _text(form, "name", labels["name"], errors), "email": _email(form, "email", errors)}
    return payload, errors


RSVP_FIELDS = same_names("name", "email")


# -- organisers ---------------------------------------------------------------------------------


def completion(form: Form, labels: Mapping[str, str]) -> tuple[dict[str, Any], Errors]:
    """Work marked done: hours given (tenths of an hour) and an optional word of thanks."""
    errors: Errors = {}
    hours = _number(form, "hours_given", 0.1, 1000, errors)
    thanks = _text(form, "thanks", labels["thanks"], errors, required=False, max_len=2000)
    return {"hours_given": None if hours is None else round(hours, 1), "thanks": thanks}, errors


COMPLETION_FIELDS = same_names("hours_given", "thanks")


def fight(
    form: Form, skills: Sequence[str], labels: Mapping[str, str], zone: str, now: datetime
) -> tuple[dict[str, Any], Errors]:
    errors: Errors = {}
    kind = _choice(form, "kind", FIGHT_KINDS, errors)
    title = _text(form, "title", labels["title"], errors)
    description = _text(form, "description", labels["description"], errors, required=False, max_len=20_000)
    need_title = _text(form, "need_title", labels["need_title"], errors)
    skill = _choice(form, "skill", skills, errors)
    level = _choice(form, "level", LEVELS, errors, default="beginner")
    hours = _number(form, "hours", 0.5, 2000, errors)
    urgency = _choice(form, "urgency", URGENCIES, errors, default="normal")
    remote = form.ticked("remote")
    city = _text(form, "city", labels["city"], errors, required=False, max_len=120)
    if not remote and not city:
        errors["city"] = FieldError("field.city_needed")
    day = parse_date(form.get("deadline"))
    deadline = None
    if day is None:
        errors["deadline"] = FieldError("field.date")
    else:
        deadline = end_of_day(day, zone)
        if deadline <= now:
            errors["deadline"] = FieldError("field.deadline_past")
    place: dict[str, Any] = {"remote": remote}
    if city:
        place["city"] = city
    need = {
        "title": need_title,
        "required_skills": [{"skill": skill, "min_level": level}],
        "estimated_hours": hours,
        "deadline": deadline.isoformat() if deadline else None,
        "urgency": urgency,
        "place": place,
    }
    return {"kind": kind, "title": title, "description": description, "needs": [need]}, errors


FIGHT_FIELDS = {
    **same_names("kind", "title", "description"),
    "needs.0.title": "need_title",
    "needs.0.required_skills": "skill",
    "needs.0.estimated_hours": "hours",
    "needs.0.deadline": "deadline",
    "needs.0.urgency": "urgency",
    "needs.0.place": "city",
    "needs": "need_title",
}


def situation(form: Form, labels: Mapping[str, str], zone: str) -> tuple[dict[str, Any], Errors]:
    errors: Errors = {}
    text = form.get("situation")
    if len(text) < 3:
        errors["situation"] = FieldError("field.situation")
    elif len(text) > 5000:
        errors["situation"] = FieldError("field.too_long", {"label": labels["situation"], "max": 5000})
    payload: dict[str, Any] = {"situation": text, "remote": True}
    if form.get("deadline"):
        day = parse_date(form.get("deadline"))
        if day is None:
            errors["deadline"] = FieldError("field.date")
        else:
            payload["deadline"] = end_of_day(day, zone).isoformat()
    return payload, errors


def picked_needs(form: Form, suggestions: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], Errors]:
    """The suggested needs the organiser ticked (``pick`` = ``<suggestion>:<need>`` indexes)."""
    chosen: list[dict[str, Any]] = []
    for value in form.all("pick"):
        a, _, b = value.partition(":")
        if a.isdigit() and b.isdigit() and int(a) < len(suggestions):
            needs = suggestions[int(a)].get("needs", [])
            if int(b) < len(needs):
                chosen.append(dict(needs[int(b)]))
    errors: Errors = {} if chosen else {"pick": FieldError("field.pick")}
    return chosen, errors


def _span(form: Form, zone: str, errors: Errors) -> tuple[str | None, str | None]:
    """When something starts and ends, as the local times in `zone` the services take (no offset)."""
    starts, ends = parse_local(form.get("starts"), zone), parse_local(form.get("ends"), zone)
    if starts is None:
        errors["starts"] = FieldError("field.datetime")
    if ends is None:
        errors["ends"] = FieldError("field.datetime")
    if starts and ends and ends <= starts:
        errors["ends"] = FieldError("field.ends_before")
    return (
        starts.replace(tzinfo=None).isoformat() if starts else None,
        ends.replace(tzinfo=None).isoformat() if ends else None,
    )


def event(form: Form, labels: Mapping[str, str]) -> tuple[dict[str, Any], Errors]:
    errors: Errors = {}
    zone = form.get("time_zone")
    if not is_zone(zone):
        errors["time_zone"] = FieldError("field.time_zone")
        zone = "UTC"
    starts, ends = _span(form, zone, errors)
    payload: dict[str, Any] = {
        "kind": _choice(form, "kind", EVENT_KINDS, errors),
        "title": _text(form, "title", labels["title"], errors),
        "description": _text(form, "description", labels["description"], errors, required=False, max_len=20_000),
        "starts_at": starts,
        "ends_at": ends,
        "time_zone": zone,
        "organiser_email": _email(form, "organiser_email", errors),
        "status": "published",
    }
    venue = _text(form, "venue", labels["venue"], errors, required=False)
    address = _text(form, "address", labels["address"], errors, required=False, max_len=500)
    online = form.get("online_url")
    if online and not re.match(r"^https?://[^\s/]+\.[^\s]+$", online):
        errors["online_url"] = FieldError("field.url")
    if not venue and not online:
        errors["venue"] = FieldError("field.where")
    hashtag = form.get("hashtag")
    if hashtag and not HASHTAG.match(hashtag):
        errors["hashtag"] = FieldError("field.hashtag")
    capacity = _number(form, "capacity", 1, 1_000_000, errors, required=False)
    optional = {
        "venue_name": venue,
        "venue_address": address,
        "online_url": online,
        "hashtag": hashtag,
        "capacity": int(capacity) if capacity else None,
    }
    payload.update({k: v for k, v in optional.items() if v})
    return payload, errors


EVENT_FIELDS = {
    **same_names("kind", "title", "description", "time_zone", "online_url", "hashtag", "capacity", "organiser_email"),
    "starts_at": "starts",
    "ends_at": "ends",
    "venue_name": "venue",
    "venue_address": "address",
}


def session(form: Form, labels: Mapping[str, str], zone: str) -> tuple[dict[str, Any], Errors]:
    errors: Errors = {}
    starts, ends = _span(form, zone, errors)
    payload: dict[str, Any] = {
        "title": _text(form, "title", labels["title"], errors),
        "starts_at": starts,
        "ends_at": ends,
    }
    room = _text(form, "room", labels["room"], errors, required=False, max_len=120)
    if room:
        payload["room"] = room
    return payload, errors


SESSION_FIELDS = {**same_names("title", "room"), "starts_at": "starts", "ends_at": "ends", "": "title"}


# -- federation staff ---------------------------------------------------------------------------

SOURCE = re.compile(r"^(/|[a-z][a-z0-9+.-]*:)[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]*$")


def publisher(form: Form, labels: Mapping[str, str]) -> tuple[dict[str, Any], Errors]:
    """A publishing system to register: its source, a label, whom it may publish for, its rate."""
    errors: Errors = {}
    source = _text(form, "source", labels["source"], errors, max_len=255)
    if source and "source" not in errors and not SOURCE.match(source):
        errors["source"] = FieldError("field.source")
    label = _text(form, "label", labels["label"], errors)
    any_organisation = form.ticked("any_organisation")
    organisations = [o.strip() for o in form.get("organisations").split(",") if o.strip()]
    if not organisations and not any_organisation:
        errors["organisations"] = FieldError("field.organisations")
    rate = _number(form, "rate_per_second", 0.1, 10_000, errors, required=False)
    payload: dict[str, Any] = {
        "source": source,
        "label": label,
        "organisations": organisations,
        "any_organisation": any_organisation,
    }
    if rate is not None:
        payload["rate_per_second"] = rate
    return payload, errors


PUBLISHER_FIELDS = same_names("source", "label", "organisations", "rate_per_second")


# -- after the event: feedback, and the hours donors log (issue 22) ----------------------------------

RATINGS = ("1", "2", "3", "4", "5")


def feedback(form: Form, labels: Mapping[str, str]) -> tuple[dict[str, Any], Errors]:
    """A rating from 1 to 5 and, if the person likes, a comment."""
    errors: Errors = {}
    rating = _choice(form, "rating", RATINGS, errors)
    comment = _text(form, "comment", labels["comment"], errors, required=False, max_len=2000)
    return {"rating": int(rating) if rating in RATINGS else None, "comment": comment}, errors


FEEDBACK_FIELDS = same_names("rating", "comment")


def hours_log(form: Form, labels: Mapping[str, str]) -> tuple[dict[str, Any], Errors]:
    """Hours the donor gave on a day (the day checked against the calendar by matching)."""
    errors: Errors = {}
    worked_on = form.get("worked_on")
    try:
        date.fromisoformat(worked_on)
    except ValueError:
        errors["worked_on"] = FieldError("field.date")
    hours = _number(form, "hours", 0.1, 24, errors)
    note = _text(form, "note", labels["note"], errors, required=False, max_len=1000)
    return {"worked_on": worked_on, "hours": None if hours is None else round(hours, 1), "note": note}, errors


HOURS_FIELDS = same_names("worked_on", "hours", "note")


def hours_confirmation(form: Form, labels: Mapping[str, str]) -> tuple[dict[str, Any], Errors]:
    """The organisation confirms logged hours; a figure (0 to 24) adjusts them, with a reason."""
    errors: Errors = {}
    body: dict[str, Any] = {"reason": _text(form, "reason", labels["reason"], errors, required=False, max_len=1000)}
    hours = _number(form, "hours", 0, 24, errors, required=False)
    if hours is not None:
        body["hours"] = round(hours, 1)
    return body, errors
