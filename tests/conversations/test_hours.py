"""Business hours: the syntax operators write, when staff are next there, in words a person reads,
and how much business time a wait took; across weekends, time zones and daylight-saving changes."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conversations.hours import BusinessHoursError, business_hours_parse

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
NEW_YORK = ZoneInfo("America/New_York")
WEEK = "mon-fri 09:00-17:00; sat 10:00-13:00"


def local(zone: ZoneInfo, *fields: int) -> datetime:
    return datetime(*fields, tzinfo=zone)


def opening(hours_text: str, at: datetime, *, zone: str = "Europe/Copenhagen") -> str:
    hours = business_hours_parse(hours_text, time_zone=zone)
    return hours.opening_words(hours.next_opening(at), now=at)


@pytest.mark.parametrize(
    ("text", "week"),
    [
        (WEEK, [[(540, 1020)]] * 5 + [[(600, 780)], []]),
        (
            "Mon,Wed 08:00-12:00 13:00-17:00",
            [[(480, 720), (780, 1020)], [], [(480, 720), (780, 1020)]] + [[]] * 4,
        ),
        ("fri-mon 9:00-12:00", [[(540, 720)]] + [[]] * 3 + [[(540, 720)]] * 3),
        ("monday – tuesday 09:00 - 12:00, 12:00-14:00;", [[(540, 840)]] * 2 + [[]] * 5),
        ("daily 00:00-24:00", [[(0, 1440)]] * 7),
        ("sat 10:00-12:00; sat 11:00-13:00", [[]] * 5 + [[(600, 780)], []]),
    ],
)
def test_the_syntax_days_then_ranges(text, week):
    assert [list(day) for day in business_hours_parse(text, time_zone="UTC").week] == week


def test_empty_means_always_open():
    hours = business_hours_parse("  ", time_zone="UTC")
    at = datetime(2025, 3, 30, 3, 0, tzinfo=UTC)
    assert hours.always_open and hours.is_open(at) and hours.next_opening(at) == at
    assert hours.elapsed(at, at + timedelta(hours=30)) == timedelta(hours=30)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("mon-fry 09:00-17:00", 'unknown day "fry" in "mon-fry 09:00-17:00"'),
        ("mon-fri 9-17", '"9-17" in "mon-fri 9-17" is not a time range like 09:00-17:00'),
        ("mon-fri 09:00-17:00; sat", '"sat" has no time range after its days'),
        ("09:00-17:00", '"09:00-17:00" names no day before its times'),
        ("mon 17:00-09:00", '"17:00-09:00" in "mon 17:00-09:00" ends before it starts'),
        ("tue 08:00-25:00", '"08:00-25:00" in "tue 08:00-25:00": 25:00 is not a time of day'),
        ("tue 08:60-09:00", "08:60 is not a time of day"),
        (";", "no days and hours in ';'"),
    ],
)
def test_bad_syntax_names_the_offending_part(text, named):
    with pytest.raises(BusinessHoursError) as error:
        business_hours_parse(text, time_zone="UTC")
    assert named in str(error.value)


@pytest.mark.parametrize(
    ("at", "words"),
    [
        (local(COPENHAGEN, 2025, 6, 2, 8, 0), "today at 09:00"),  # Monday morning
        (local(COPENHAGEN, 2025, 6, 3, 17, 0), "tomorrow at 09:00"),  # Tuesday, as it closes
        (local(COPENHAGEN, 2025, 6, 6, 18, 30), "tomorrow at 10:00"),  # Friday night: Saturday
        (local(COPENHAGEN, 2025, 6, 7, 13, 0), "Monday at 09:00"),  # Saturday afternoon
        (local(COPENHAGEN, 2025, 6, 8, 23, 59), "tomorrow at 09:00"),  # Sunday night
    ],
)
def test_the_next_opening_across_the_weekend(at, words):
    hours = business_hours_parse(WEEK, time_zone="Europe/Copenhagen")
    assert not hours.is_open(at)
    assert opening(WEEK, at) == words


def test_open_now_is_now():
    hours = business_hours_parse(WEEK, time_zone="Europe/Copenhagen")
    at = local(COPENHAGEN, 2025, 6, 4, 16, 59)
    assert hours.is_open(at) and hours.next_opening(at) == at
    assert not hours.is_open(local(COPENHAGEN, 2025, 6, 4, 17, 0))  # a range ends before its end


def test_a_weekday_this_week_and_the_same_weekday_next_week():
    assert opening("thu 09:00-12:00", local(COPENHAGEN, 2025, 6, 2, 12, 0)) == "Thursday at 09:00"
    assert opening("mon 09:00-12:00", local(COPENHAGEN, 2025, 6, 2, 12, 0)) == "next Monday at 09:00"


def test_days_and_words_are_the_business_time_zones_not_utc():
    # Friday 23:30 in New York is already Saturday in UTC: staff are back on Monday, New York time.
    at = datetime(2025, 6, 7, 3, 30, tzinfo=UTC)
    hours = business_hours_parse("mon-fri 09:00-17:00", time_zone="America/New_York")
    opens = hours.next_opening(at)
    assert opens == local(NEW_YORK, 2025, 6, 9, 9, 0)
    assert hours.opening_words(opens, now=at) == "Monday at 09:00"
    # Thursday 23:30 there (Friday in UTC): "tomorrow", Friday.
    assert (
        opening("mon-fri 09:00-17:00", at - timedelta(days=1), zone="America/New_York") == "tomorrow at 09:00"
    )


def test_the_next_opening_across_a_daylight_saving_change():
    # Copenhagen moves its clocks forward on Sunday 30 March 2025: Monday's 09:00 is 07:00 UTC, not 08:00.
    hours = business_hours_parse(WEEK, time_zone="Europe/Copenhagen")
    opens = hours.next_opening(local(COPENHAGEN, 2025, 3, 29, 14, 0))
    assert opens == datetime(2025, 3, 31, 7, 0, tzinfo=UTC)
    assert hours.opening_words(opens, now=local(COPENHAGEN, 2025, 3, 29, 14, 0)) == "Monday at 09:00"
    # And back on Sunday 26 October: Monday's 09:00 is 08:00 UTC again.
    assert hours.next_opening(local(COPENHAGEN, 2025, 10, 25, 14, 0)) == datetime(
        2025, 10, 27, 8, 0, tzinfo=UTC
    )


def test_a_range_through_the_hour_the_clocks_skip_is_an_hour_shorter():
    hours = business_hours_parse("sun 01:00-04:00", time_zone="Europe/Copenhagen")
    day_start, day_end = local(COPENHAGEN, 2025, 3, 30, 0, 0), local(COPENHAGEN, 2025, 3, 31, 0, 0)
    assert hours.elapsed(day_start, day_end) == timedelta(hours=2)
    assert hours.is_open(datetime(2025, 3, 30, 1, 30, tzinfo=UTC))  # 03:30 summer time


@pytest.mark.parametrize(
    ("start", "end", "elapsed"),
    [
        # Friday 16:00 to Monday 10:00: an hour on Friday, Saturday's three, an hour on Monday.
        (local(COPENHAGEN, 2025, 6, 6, 16, 0), local(COPENHAGEN, 2025, 6, 9, 10, 0), timedelta(hours=5)),
        # Within one range.
        (local(COPENHAGEN, 2025, 6, 4, 10, 0), local(COPENHAGEN, 2025, 6, 4, 10, 25), timedelta(minutes=25)),
        # All of a closed Sunday.
        (local(COPENHAGEN, 2025, 6, 8, 0, 0), local(COPENHAGEN, 2025, 6, 9, 0, 0), timedelta(0)),
        # A whole week: five days of eight hours and a Saturday of three.
        (local(COPENHAGEN, 2025, 6, 2, 0, 0), local(COPENHAGEN, 2025, 6, 9, 0, 0), timedelta(hours=43)),
        # Over the night the clocks go forward: Saturday 12:00 to Monday 09:30.
        (local(COPENHAGEN, 2025, 3, 29, 12, 0), local(COPENHAGEN, 2025, 3, 31, 9, 30), timedelta(minutes=90)),
        # The end before the start.
        (local(COPENHAGEN, 2025, 6, 4, 12, 0), local(COPENHAGEN, 2025, 6, 4, 11, 0), timedelta(0)),
    ],
)
def test_business_time_elapsed_between_two_instants(start, end, elapsed):
    assert business_hours_parse(WEEK, time_zone="Europe/Copenhagen").elapsed(start, end) == elapsed
