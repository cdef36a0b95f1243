"""Business hours: when staff are there to answer (BUSINESS_HOURS), in a time zone (TIME_ZONE).

Pure: no settings, no database. The text is groups separated by ";", each one days and then
time ranges:

    mon-fri 09:00-17:00; sat 10:00-13:00
    mon,wed,fri 08:00-12:00 13:00-17:00

Days are mon tue wed thu fri sat sun (or their full names), `daily`, a range of them (`fri-mon`
wraps over the weekend) or a comma list; a day named in several groups has all their ranges.
Ranges are HH:MM-HH:MM, several a day (commas or spaces between them); 24:00 ends a day, so a
night shift is two ranges ("fri 22:00-24:00; sat 00:00-02:00"). Times are wall-clock times in
the time zone: 09:00 is 09:00 on both sides of a daylight-saving change. Empty text: always open.
"""

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAYS = {name[:3].lower(): number for number, name in enumerate(DAY_NAMES)} | {
    name.lower(): number for number, name in enumerate(DAY_NAMES)
}
# The days of a group are what comes before its first digit: "mon - fri 09:00-17:00".
_GROUP = re.compile(r"(?P<days>[^\d]*)(?P<times>\d.*)?", re.DOTALL)
_RANGE = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")
_EXAMPLE = '"mon-fri 09:00-17:00"'


class BusinessHoursError(ValueError):
    """The text is not business hours; the message names the part that is wrong."""


@dataclass(frozen=True)
class BusinessHours:
    # Per weekday (Monday first), the open ranges in minutes after midnight, sorted and merged;
    # None when always open.
    week: tuple[tuple[tuple[int, int], ...], ...] | None
    time_zone: ZoneInfo

    @property
    def always_open(self) -> bool:
        return self.week is None

    def is_open(self, at: datetime) -> bool:
        if self.week is None:
            return True
        day = at.astimezone(self.time_zone).date()
        return any(start <= at < end for start, end in self._ranges(day))

    def next_opening(self, at: datetime) -> datetime:
        """`at` itself when open then, else the moment staff are next there (in UTC)."""
        if self.is_open(at):
            return at
        first_day = at.astimezone(self.time_zone).date()
        # Up to the same weekday a week on: every range of the week comes once after `at`.
        return next(
            start
            for offset in range(8)
            for start, _ in self._ranges(first_day + timedelta(days=offset))
            if start > at
        )

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """How much of the time from `start` to `end` was within business hours."""
        if self.week is None:
            return max(end - start, timedelta(0))
        total = timedelta(0)
        day, last = start.astimezone(self.time_zone).date(), end.astimezone(self.time_zone).date()
        while day <= last:
            for opens, closes in self._ranges(day):
                total += max(min(closes, end) - max(opens, start), timedelta(0))
            day += timedelta(days=1)
        return total

    def opening_words(self, opens: datetime, *, now: datetime) -> str:
        """When `opens` is, as a person reads it where the business is: "today at 14:00",
        "tomorrow at 09:00", "Monday at 09:00", "next Monday at 09:00"."""
        local = opens.astimezone(self.time_zone)
        days = (local.date() - now.astimezone(self.time_zone).date()).days
        clock = f"{local:%H:%M}"
        if days <= 0:
            return f"today at {clock}"
        if days == 1:
            return f"tomorrow at {clock}"
        name = DAY_NAMES[local.weekday()]
        if days < 7:
            return f"{name} at {clock}"
        return f"next {name} at {clock}" if days < 14 else f"{name} {local.date().isoformat()} at {clock}"

    def _ranges(self, day: date) -> list[tuple[datetime, datetime]]:
        """The open ranges of `day` (a date where the business is) as instants in UTC."""
        return [
            (self._instant(day, start), self._instant(day, end)) for start, end in self.week[day.weekday()]
        ]

    def _instant(self, day: date, minute: int) -> datetime:
        # In UTC, so that comparing and subtracting them counts real time across a DST change.
        wall = datetime.combine(day, time()) + timedelta(minutes=minute)
        return wall.replace(tzinfo=self.time_zone).astimezone(UTC)


@functools.lru_cache(maxsize=16)
def business_hours_parse(text: str, *, time_zone: str) -> BusinessHours:
    """The business hours `text` describes (see the module's docstring), in `time_zone`.

    Raises BusinessHoursError naming the offending part.
    """
    zone = ZoneInfo(time_zone)
    if not text.strip():
        return BusinessHours(week=None, time_zone=zone)
    week: list[list[tuple[int, int]]] = [[] for _ in DAY_NAMES]
    for group in filter(None, (part.strip() for part in text.replace("–", "-").split(";"))):
        match = _GROUP.fullmatch(group)
        if not match["days"].strip():
            raise BusinessHoursError(f'"{group}" names no day before its times (e.g. {_EXAMPLE})')
        if not match["times"]:
            raise BusinessHoursError(f'"{group}" has no time range after its days (e.g. {_EXAMPLE})')
        days = _days(match["days"], group=group)
        ranges = [
            _range(token, group=group)
            for token in re.split(r"[\s,]+", re.sub(r"\s*-\s*", "-", match["times"].strip()))
        ]
        for day in days:
            week[day].extend(ranges)
    if not any(week):
        raise BusinessHoursError(f"no days and hours in {text.strip()!r} (e.g. {_EXAMPLE})")
    return BusinessHours(week=tuple(_merged(ranges) for ranges in week), time_zone=zone)


def _days(text: str, *, group: str) -> list[int]:
    days = []
    for item in filter(None, re.sub(r"\s*-\s*", "-", text.strip().lower()).replace(" ", ",").split(",")):
        if item == "daily":
            days.extend(range(len(DAY_NAMES)))
            continue
        first, _, last = item.partition("-")
        for name in filter(None, (first, last)):
            if name not in _DAYS:
                raise BusinessHoursError(
                    f'unknown day "{name}" in "{group}" (days are mon, tue, wed, thu, fri, sat, sun)'
                )
        start, end = _DAYS[first], _DAYS[last or first]
        days.extend((start + offset) % 7 for offset in range((end - start) % 7 + 1))
    return days


def _range(token: str, *, group: str) -> tuple[int, int]:
    match = _RANGE.fullmatch(token)
    if not match:
        raise BusinessHoursError(f'"{token}" in "{group}" is not a time range like 09:00-17:00')
    start_hour, start_minute, end_hour, end_minute = map(int, match.groups())
    start, end = start_hour * 60 + start_minute, end_hour * 60 + end_minute
    for hour, minute, is_end in ((start_hour, start_minute, False), (end_hour, end_minute, True)):
        if minute > 59 or hour > 24 or (hour == 24 and (minute or not is_end)):
            raise BusinessHoursError(f'"{token}" in "{group}": {hour:02d}:{minute:02d} is not a time of day')
    if end <= start:
        raise BusinessHoursError(
            f'"{token}" in "{group}" ends before it starts (past midnight, write two ranges: '
            '"fri 22:00-24:00; sat 00:00-02:00")'
        )
    return start, end


def _merged(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """`ranges` sorted, overlapping and touching ones joined into one."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)
