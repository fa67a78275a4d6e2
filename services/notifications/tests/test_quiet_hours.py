from datetime import UTC, datetime, time, timedelta

from pitchin_notifications.domain.messages import Priority
from pitchin_notifications.domain.quiet_hours import QuietHours, release_at

NIGHT = QuietHours(time(21), time(8))


def test_outside_quiet_hours_everything_goes_now() -> None:
    now = datetime(2027, 6, 1, 12, tzinfo=UTC)  # 13:00 in London
    assert release_at(now, "Europe/London", NIGHT, Priority.normal) == now


def test_non_urgent_waits_until_the_end_of_the_night_in_the_recipients_zone() -> None:
    now = datetime(2027, 6, 1, 21, 30, tzinfo=UTC)  # 22:30 BST
    assert release_at(now, "Europe/London", NIGHT, Priority.normal) == datetime(2027, 6, 2, 7, tzinfo=UTC)
    assert release_at(now, "Europe/London", NIGHT, Priority.low) == datetime(2027, 6, 2, 7, tzinfo=UTC)


def test_urgent_goes_at_once_even_at_night() -> None:
    now = datetime(2027, 6, 1, 23, tzinfo=UTC)
    assert release_at(now, "Europe/London", NIGHT, Priority.urgent) == now


def test_the_same_moment_is_night_in_one_zone_and_day_in_another() -> None:
    now = datetime(2027, 6, 1, 3, tzinfo=UTC)  # 23:00 in New York, 12:00 in Tokyo, 04:00 in London
    assert release_at(now, "Asia/Tokyo", NIGHT, Priority.normal) == now
    assert release_at(now, "America/New_York", NIGHT, Priority.normal) == datetime(2027, 6, 1, 12, tzinfo=UTC)
    assert release_at(now, "Europe/London", NIGHT, Priority.normal) == datetime(2027, 6, 1, 7, tzinfo=UTC)


def test_after_midnight_the_window_ends_the_same_morning() -> None:
    now = datetime(2027, 6, 1, 1, tzinfo=UTC)  # 02:00 BST
    assert release_at(now, "Europe/London", NIGHT, Priority.normal) == datetime(2027, 6, 1, 7, tzinfo=UTC)


def test_spring_forward_night_ends_at_eight_summer_time() -> None:
    # Clocks go from 01:00 GMT to 02:00 BST on 28 March 2027: 08:00 that morning is 07:00 UTC.
    now = datetime(2027, 3, 27, 23, tzinfo=UTC)  # 23:00 GMT
    assert release_at(now, "Europe/London", NIGHT, Priority.normal) == datetime(2027, 3, 28, 7, tzinfo=UTC)


def test_fall_back_night_ends_at_eight_winter_time() -> None:
    # Clocks go from 02:00 BST back to 01:00 GMT on 31 October 2027: 08:00 is 08:00 UTC.
    now = datetime(2027, 10, 30, 22, tzinfo=UTC)  # 23:00 BST
    released = release_at(now, "Europe/London", NIGHT, Priority.normal)
    assert released == datetime(2027, 10, 31, 8, tzinfo=UTC)
    assert released - now == timedelta(hours=10)


def test_a_window_ending_inside_the_spring_gap_still_ends_once_and_later() -> None:
    quiet = QuietHours(time(23), time(1, 30))  # 01:30 does not exist in London on 28 March 2027
    now = datetime(2027, 3, 28, 0, 30, tzinfo=UTC)  # 00:30 GMT, inside the window
    released = release_at(now, "Europe/London", quiet, Priority.normal)
    assert now < released <= now + timedelta(hours=2)


def test_a_message_that_would_miss_its_moment_goes_now() -> None:
    now = datetime(2027, 6, 1, 21, 30, tzinfo=UTC)
    starts = now + timedelta(hours=2)
    assert release_at(now, "Europe/London", NIGHT, Priority.normal, send_by=starts) == now


def test_daytime_windows_and_parsing() -> None:
    lunch = QuietHours.parse("12:00-13:30")
    assert lunch.contains(time(12, 59)) and not lunch.contains(time(13, 30)) and not lunch.contains(time(11))
    assert str(QuietHours.parse(" 21:00 - 08:00 ")) == "21:00-08:00"
    assert release_at(datetime(2027, 6, 1, 3, tzinfo=UTC), "Not/AZone", NIGHT, Priority.normal) == datetime(
        2027, 6, 1, 8, tzinfo=UTC
    )
