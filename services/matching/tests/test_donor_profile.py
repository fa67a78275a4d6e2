from datetime import UTC, datetime

from pitchin_core.contracts.common import WeeklyWindow
from pitchin_core.contracts.donors import DonorRegisteredV1, DonorUpdatedV1
from pitchin_matching.domain.donors import (
    REGISTERED_VERSION,
    merge_intervals,
    primary_language,
    profile_of,
    supersedes,
    windows_in_utc,
)
from tests.unit.factories import donor_registered

WINTER = datetime(2026, 1, 14, 12, tzinfo=UTC)
SUMMER = datetime(2026, 7, 15, 12, tzinfo=UTC)


def test_profile_keeps_what_ranking_needs_and_no_contact_details() -> None:
    profile = profile_of(DonorRegisteredV1.model_validate(donor_registered()))
    assert profile.skills == {"social-media": 3, "graphic-design": 1}
    assert profile.time_zone == "Europe/London"
    assert profile.remote is True
    assert profile.version == REGISTERED_VERSION
    assert not any("@" in str(value) for value in vars(profile).values())


def test_saturday_morning_in_london_is_in_utc_minutes_of_the_week() -> None:
    windows = [WeeklyWindow.model_validate({"day": "sat", "start": "10:00", "end": "13:00"})]
    saturday = 5 * 1440
    assert windows_in_utc(windows, "Europe/London", WINTER) == ((saturday + 600, saturday + 780),)
    # British summer time is UTC+1: the same local window is an hour earlier in UTC.
    assert windows_in_utc(windows, "Europe/London", SUMMER) == ((saturday + 540, saturday + 720),)


def test_a_window_across_the_end_of_the_week_in_utc_wraps_to_monday() -> None:
    # Monday 01:00-03:00 in Auckland (UTC+13 in January) is Sunday 12:00-14:00 UTC.
    windows = [WeeklyWindow.model_validate({"day": "mon", "start": "01:00", "end": "03:00"})]
    sunday = 6 * 1440
    assert windows_in_utc(windows, "Pacific/Auckland", WINTER) == ((sunday + 720, sunday + 840),)
    # Sunday 23:00-24:00 in New York (UTC-5) is Monday 04:00-05:00 UTC.
    late = [WeeklyWindow.model_validate({"day": "sun", "start": "23:00", "end": "24:00"})]
    assert windows_in_utc(late, "America/New_York", WINTER) == ((240, 300),)
    # Half-hour zones keep their minutes: Sunday 22:00-24:00 in Kolkata (UTC+5:30) is 16:30-18:30 UTC.
    wrap = [WeeklyWindow.model_validate({"day": "sun", "start": "22:00", "end": "24:00"})]
    assert windows_in_utc(wrap, "Asia/Kolkata", WINTER) == ((sunday + 1320 - 330, sunday + 1440 - 330),)


def test_overlapping_windows_merge() -> None:
    assert merge_intervals([(10, 20), (15, 30), (40, 50)]) == ((10, 30), (40, 50))


def test_only_a_newer_version_supersedes_a_donor() -> None:
    assert supersedes(0, None)
    assert supersedes(2, 0)
    assert not supersedes(0, 2), "a registration arriving after an update changes nothing"
    assert not supersedes(2, 2), "a repeated update changes nothing"
    assert not supersedes(3, 2**31 - 1), "nothing revives a withdrawn donor"


def test_an_update_carries_its_version_and_languages_lose_their_region() -> None:
    body = donor_registered(languages=["en-GB", "cy"])
    body.pop("registered_at")
    update = DonorUpdatedV1.model_validate({**body, "version": 4, "status": "paused", "updated_at": SUMMER.isoformat()})
    profile = profile_of(update)
    assert (profile.version, profile.status, profile.languages) == (4, "paused", ("en", "cy"))
    assert primary_language("pt-BR") == "pt"
