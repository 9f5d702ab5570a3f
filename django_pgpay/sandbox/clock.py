"""The sandbox clock: real time plus an offset kept in the database.

Every time-based rule of an emulated PG (Toss's 10-minute confirm window,
virtual-account deadlines, webhook retries, idempotency-key lifetime) reads
:func:`now`, so a test moves all of them at once, in every server process::

    from django_pgpay.sandbox import clock
    clock.advance(minutes=11)      # the buyer "waited" eleven minutes
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from .models import SandboxClock

_ROW = 1


def offset() -> timedelta:
    """How far the sandbox clock is ahead of real time."""
    value = SandboxClock.objects.filter(pk=_ROW).values_list("offset_us", flat=True).first()
    return timedelta(microseconds=value or 0)


def now() -> datetime:
    """The sandbox's current time (aware, UTC)."""
    return timezone.now() + offset()


def set_offset(delta: timedelta) -> timedelta:
    """Put the clock ``delta`` ahead of real time (``timedelta(0)`` resets it)."""
    micros = int(delta / timedelta(microseconds=1))
    with transaction.atomic():
        updated = SandboxClock.objects.filter(pk=_ROW).update(offset_us=micros)
        if not updated:
            SandboxClock.objects.create(pk=_ROW, offset_us=micros)
    return delta


def advance(delta: timedelta | None = None, **kwargs) -> datetime:
    """Move the clock forward by ``delta`` (or ``timedelta(**kwargs)``); returns the new time."""
    step = delta if delta is not None else timedelta(**kwargs)
    if step < timedelta(0):
        raise ValueError("the sandbox clock only moves forward; use set_offset() to go back")
    with transaction.atomic():
        row = SandboxClock.objects.select_for_update().filter(pk=_ROW).first()
        if row is None:
            SandboxClock.objects.create(pk=_ROW, offset_us=int(step / timedelta(microseconds=1)))
        else:
            row.offset_us += int(step / timedelta(microseconds=1))
            row.save(update_fields=["offset_us", "updated_at"])
    return now()


def reset() -> None:
    """Back to real time."""
    set_offset(timedelta(0))
