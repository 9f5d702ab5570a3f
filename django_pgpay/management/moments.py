"""Points in time given to the management commands (``--since``, ``--until``, ``--deep-since``).

One parser for every command, so they all read the same spellings the same
way: an ISO date (``2026-01-31``, the whole day in the site's time zone), an
ISO datetime (``2026-01-31T09:00``, local time when naive), and where a
command allows it a duration back from now (``7d``, ``12h``, ``30m``).
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


def parse_moment(value: str, option: str, *, durations: bool = False) -> Moment:
    """Read ``value`` given to ``option``; a :class:`CommandError` naming the option when it is not a moment.

    Days outside :data:`~django_pgpay.filters.FIRST_DAY` to
    :data:`~django_pgpay.filters.LAST_DAY` are refused too: at the calendar's
    ends the next midnight, or the moment in UTC, does not exist.
    """
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
