"""Points in time given to the management commands (``--since``, ``--until``, ``--deep-since``).

One parser for every command, so they all read the same spellings the same
way: an ISO date (``2026-01-31``, the whole day in the site's time zone), an
ISO datetime (``2026-01-31T09:00``, local time when naive), and where a
command allows it a duration back from now (``7d``, ``12h``, ``30m``).

An option given with no value (``--since ""``, a cron line whose variable is
unset) is refused like any other value that is not a moment, never read as
"not given"; :func:`parse_range` refuses a range whose end is before its start
(it would select nothing, silently).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.management.base import CommandError
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from ..filters import FIRST_DAY, LAST_DAY

_DURATION = re.compile(r"^(\d+)\s*([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


@dataclass(frozen=True)
class Moment:
    """What a time option named: an instant, or a whole day when a bare date was given."""

    #: The instant (midnight starting the day, for a date); always aware.
    start: datetime
    #: The instant just after it: the next midnight for a date, ``start`` otherwise.
    end: datetime
    #: True when a bare date was given.
    is_date: bool

    def since(self, field: str) -> Q:
        """``field`` at or after this moment."""
        return Q(**{f"{field}__gte": self.start})

    def until(self, field: str) -> Q:
        """``field`` at or before this moment; a date includes its whole day."""
        if self.is_date:
            return Q(**{f"{field}__lt": self.end})
        return Q(**{f"{field}__lte": self.start})


def parse_moment(value: str, option: str, *, durations: bool = False, past_only: bool = False) -> Moment:
    """Read ``value`` given to ``option``; a :class:`CommandError` naming the option when it is not a moment.

    Days outside :data:`~django_pgpay.filters.FIRST_DAY` to
    :data:`~django_pgpay.filters.LAST_DAY` are refused too: at the calendar's
    ends the next midnight, or the moment in UTC, does not exist. With
    ``past_only`` a moment after now is refused (``--deep-since 2062-01-01``,
    a mistyped year, would look back at nothing); today's date is not.
    """
    moment = _parse_moment(value, option, durations=durations)
    if past_only and moment.start > timezone.now():
        now = timezone.localtime()
        raise CommandError(f"{option} {value!r}: is after now ({now:%Y-%m-%d %H:%M %Z}); give a moment in the past")
    return moment


def parse_range(
    since: str | None, until: str | None, *, since_option: str = "--since", until_option: str = "--until"
) -> tuple[Moment | None, Moment | None]:
    """``(since, until)`` as :class:`Moment` objects, None for an option not given (``None``, not ``""``).

    A :class:`CommandError` when either is not a moment, or when the range is
    empty because its end is before its start (``--since 2030-01-01 --until
    2020-01-01``). One day (the same date twice) and one instant (the same
    datetime twice) are ranges.
    """
    start = parse_moment(since, since_option) if since is not None else None
    end = parse_moment(until, until_option) if until is not None else None
    if start is not None and end is not None and (start.start >= end.end if end.is_date else start.start > end.start):
        raise CommandError(f"{until_option} {until!r} is before {since_option} {since!r}: the end of the range is before its start")
    return start, end


def _parse_moment(value: str, option: str, *, durations: bool) -> Moment:
    text = (value or "").strip()
    outside = CommandError(f"{option} {value!r}: give a moment between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}")
    if durations:
        match = _DURATION.match(text)
        if match:
            try:
                instant = timezone.now() - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
            except OverflowError:
                raise outside from None
            if instant.date() < FIRST_DAY:
                raise outside
            return Moment(start=instant, end=instant, is_date=False)
    try:
        day = parse_date(text)
        instant = None if day is not None else parse_datetime(text)
    except ValueError:
        day = instant = None
    if not FIRST_DAY <= (day or (instant.date() if instant else FIRST_DAY)) <= LAST_DAY:
        raise outside
    if day is not None:
        start = timezone.make_aware(datetime.combine(day, datetime.min.time()))
        end = timezone.make_aware(datetime.combine(day + timedelta(days=1), datetime.min.time()))
        return Moment(start=start, end=end, is_date=True)
    if instant is None:
        spellings = "7d, 12h, 30m, " if durations else ""
        raise CommandError(f"{option} {value!r}: use {spellings}a date (2026-01-31) or a datetime (2026-01-31T09:00)")
    if timezone.is_naive(instant):
        instant = timezone.make_aware(instant)
    return Moment(start=instant, end=instant, is_date=False)
