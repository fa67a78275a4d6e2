"""Value types shared by every contract, and the base of every event's data."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator
from pydantic.networks import validate_email

Slug = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")]
Identifier = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]


def _check_time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone") from exc
    return name


@lru_cache(maxsize=65_536)
def _valid_email(address: str) -> str:
    return validate_email(address)[1]


# pydantic's EmailStr, with each address's check remembered: email_validator took 41% of the
# ingest door's CPU, as an ingested person's address is checked by the ingest contract and
# again by the donor.registered built from it. The same rule and the same JSON Schema.
Email = Annotated[str, AfterValidator(_valid_email), WithJsonSchema({"type": "string", "format": "email"})]
TimeZoneName = Annotated[str, Field(max_length=64, examples=["Europe/London"]), AfterValidator(_check_time_zone)]
# Every string and list in a contract has a maximum, so no request can make an event larger
# than Kafka takes (1 MB) or than a consumer should hold: tests/unit/test_bounded_inputs.py walks them all.
Label = Annotated[str, Field(max_length=200)]  # a name, title, room, platform or short reason
Url = Annotated[str, Field(max_length=2048)]
MAX_CAUSES = 30
MAX_LANGUAGES = 20
MAX_PURPOSES = 20

PhoneNumber = Annotated[str, Field(pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164")]
LanguageTag = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$", examples=["en", "cy", "es"])]


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SkillLevel(StrEnum):
    beginner = "beginner"
    intermediate = "intermediate"
    advanced = "advanced"
    expert = "expert"

    @property
    def rank(self) -> int:
        return list(SkillLevel).index(self)


class DonorSkill(Contract):
    skill: Slug
    level: SkillLevel


class Weekday(StrEnum):
    mon = "mon"
    tue = "tue"
    wed = "wed"
    thu = "thu"
    fri = "fri"
    sat = "sat"
    sun = "sun"


class WeeklyWindow(Contract):
    day: Weekday
    start: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    end: str = Field(pattern=r"^([01][0-9]|2[0-4]):[0-5][0-9]$")

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: str, info: object) -> str:
        start = getattr(info, "data", {}).get("start")
        if start is not None and end <= start:
            raise ValueError("end must be later than start")
        return end


class Availability(Contract):
    hours_per_week: float = Field(gt=0, le=80)
    time_zone: TimeZoneName
    windows: list[WeeklyWindow] = Field(default_factory=list, max_length=50)


class Place(Contract):
    remote: bool = True
    city: str | None = Field(default=None, max_length=120)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)


class ContactPreferences(Contract):
    email: bool = True
    sms: bool = False
    language: LanguageTag = "en"


class Consent(Contract):
    wording_version: str = Field(min_length=1, max_length=40)
    purposes: list[Slug] = Field(min_length=1, max_length=MAX_PURPOSES)
    agreed_at: datetime


class EventData(Contract):
    """Base of every event's data; `event_type` is the CloudEvents `type`."""

    event_type: ClassVar[str]
    federation_id: Identifier
    organisation_id: Identifier | None = None
